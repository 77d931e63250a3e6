/// Writes GGUF v3 files: the inverse of `GGUFFile`. Used to build tiny test models and fixtures
/// (and later by `sparrow quantize`).
public struct GGUFWriter {
    public struct Tensor {
        public var name: String
        public var type: GGMLType
        /// ggml order: shape[0] is the row length.
        public var shape: [Int]
        public var bytes: [UInt8]
        public init(name: String, type: GGMLType, shape: [Int], bytes: [UInt8]) {
            self.name = name; self.type = type; self.shape = shape; self.bytes = bytes
        }
    }

    public var metadata: [(String, GGUFValue)] = []
    public var tensors: [Tensor] = []
    public var alignment = 32

    public init() {}

    public mutating func set(_ key: String, _ value: GGUFValue) { metadata.append((key, value)) }

    /// Adds an f32 tensor.
    public mutating func add(_ name: String, shape: [Int], values: [Float]) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 4)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        tensors.append(Tensor(name: name, type: .f32, shape: shape, bytes: bytes))
    }

    /// The file's bytes.
    public func serialize() -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); out += Array(s.utf8) }
        func typeCode(_ v: GGUFValue) -> UInt32 {
            switch v {
            case .uint8: return 0
            case .int8: return 1
            case .uint16: return 2
            case .int16: return 3
            case .uint32: return 4
            case .int32: return 5
            case .float32: return 6
            case .bool: return 7
            case .string: return 8
            case .array: return 9
            case .uint64: return 10
            case .int64: return 11
            case .float64: return 12
            }
        }
        func value(_ v: GGUFValue) {
            switch v {
            case let .uint8(x): out.append(x)
            case let .int8(x): out.append(UInt8(bitPattern: x))
            case let .uint16(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .int16(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .uint32(x): u32(x)
            case let .int32(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .uint64(x): u64(x)
            case let .int64(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .float32(x): u32(x.bitPattern)
            case let .float64(x): u64(x.bitPattern)
            case let .bool(b): out.append(b ? 1 : 0)
            case let .string(s): str(s)
            case let .array(a): array(a)
            }
        }
        func array(_ a: GGUFArray) {
            switch a {
            case let .ints(v, t):
                u32(t); u64(UInt64(v.count))
                for x in v {
                    switch t {
                    case 0, 1: out.append(UInt8(truncatingIfNeeded: x))
                    case 2, 3: withUnsafeBytes(of: UInt16(truncatingIfNeeded: x).littleEndian) { out += $0 }
                    case 4, 5: u32(UInt32(truncatingIfNeeded: x))
                    default: u64(UInt64(bitPattern: x))
                    }
                }
            case let .floats(v, t):
                u32(t); u64(UInt64(v.count))
                for x in v { if t == 12 { u64(x.bitPattern) } else { u32(Float(x).bitPattern) } }
            case let .bools(v):
                u32(7); u64(UInt64(v.count)); for b in v { out.append(b ? 1 : 0) }
            case let .strings(v):
                u32(8); u64(UInt64(v.count)); for s in v { str(s) }
            case let .arrays(v):
                u32(9); u64(UInt64(v.count)); for x in v { array(x) }
            }
        }
        out += Array("GGUF".utf8)
        u32(3)
        u64(UInt64(tensors.count))
        var meta = metadata
        if alignment != 32 && !meta.contains(where: { $0.0 == "general.alignment" }) {
            meta.append(("general.alignment", .uint32(UInt32(alignment))))
        }
        u64(UInt64(meta.count))
        for (k, v) in meta { str(k); u32(typeCode(v)); value(v) }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += (t.bytes.count + alignment - 1) / alignment * alignment
        }
        for (t, off) in zip(tensors, offsets) {
            str(t.name)
            u32(UInt32(t.shape.count))
            for d in t.shape { u64(UInt64(d)) }
            u32(t.type.rawValue)
            u64(UInt64(off))
        }
        while out.count % alignment != 0 { out.append(0) }
        for t in tensors {
            out += t.bytes
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }
}
