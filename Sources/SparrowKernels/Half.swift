import SparrowFormats

/// Row conversions between f32 and the 16-bit float formats, as ggml's CPU backend does them.
///
/// The scalar conversions live in SparrowFormats (`fp16ToFloat`, `floatToFP16`, `bf16ToFloat`,
/// `floatToBF16`, ports of ggml-impl.h); these loop them over rows. Pointers need no alignment.
public enum HalfRows {
    /// Rounds `count` floats to IEEE binary16 (round-to-nearest-even), like ggml's
    /// `ggml_cpu_fp32_to_fp16` / `from_float` of `GGML_TYPE_F16`.
    ///
    /// One difference, on NaN only: ggml's x86 path (F16C `vcvtps2ph`) keeps the top NaN payload
    /// bits, while this writes the canonical quiet NaN of ggml's portable `GGML_FP32_TO_FP16`.
    public static func toF16(_ x: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
        for i in 0..<count {
            dst.storeBytes(of: floatToFP16(x[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
        }
    }

    /// Rounds `count` floats to bfloat16 (round-to-nearest-even, NaNs quieted), like ggml's
    /// `ggml_cpu_fp32_to_bf16` / `GGML_FP32_TO_BF16`.
    public static func toBF16(_ x: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
        for i in 0..<count {
            dst.storeBytes(of: floatToBF16(x[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
        }
    }

    /// Widens `count` binary16 values to f32, exactly.
    public static func fromF16(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for i in 0..<count {
            dst[i] = fp16ToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        }
    }

    /// Widens `count` bfloat16 values to f32, exactly.
    public static func fromBF16(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for i in 0..<count {
            dst[i] = bf16ToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        }
    }
}
