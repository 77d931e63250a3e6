import Foundation
import Testing
@testable import SparrowFormats

/// The safetensors reader against files written by the reference `safetensors` library
/// (scripts/make_safetensors_fixtures.py), and against malformed headers.
@Suite("Safetensors reader")
struct SafetensorsTests {
    struct Expected: Decodable { var shape: [Int]; var values: [Double] }

    static func fixtureURL(_ name: String, _ ext: String) throws -> URL {
        try #require(Bundle.module.url(forResource: "Fixtures/safetensors/\(name)", withExtension: ext))
    }

    /// A file with `header` as its JSON and `data` as its buffer.
    static func file(header: String, data: [UInt8] = []) -> [UInt8] {
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { out += $0 }
        return out + Array(header.utf8) + data
    }

    @Test("reads F32, F16, BF16, I32 and 0-d tensors and the metadata written by the safetensors library")
    func dtypes() throws {
        let st = try SafetensorsFile(path: try Self.fixtureURL("dtypes", "safetensors").path)
        let expected = try JSONDecoder().decode([String: Expected].self, from: Data(contentsOf: try Self.fixtureURL("dtypes", "json")))
        #expect(st.metadata == ["format": "pt", "note": "made by make_safetensors_fixtures.py"])
        #expect(Set(st.tensorsByName.keys) == Set(expected.keys))
        #expect(st.tensors.map(\.name) == ["a.f32", "e.scalar", "d.i32", "c.bf16", "b.f16"])  // data order
        for (name, want) in expected {
            let t = try #require(st.tensorsByName[name])
            #expect(t.shape == want.shape, "\(name)")
            #expect(t.ggmlShape == want.shape.reversed(), "\(name)")
            #expect(t.elementCount == want.values.count, "\(name)")
            var got = [Double]()
            if t.type == .i32 {
                got = (0..<t.elementCount).map { Double(t.data.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
            } else {
                var f = [Float](repeating: .nan, count: t.elementCount)
                try f.withUnsafeMutableBufferPointer { try dequantizeRow(t.type, t.data, $0.baseAddress!, count: t.elementCount) }
                got = f.map(Double.init)
            }
            #expect(got == want.values, "\(name)")
        }
        #expect(st.tensorsByName["b.f16"]?.type == .f16 && st.tensorsByName["c.bf16"]?.type == .bf16)
    }

    @Test("every truncation of a valid file is a typed error, never a crash")
    func truncations() throws {
        let bytes = try [UInt8](Data(contentsOf: try Self.fixtureURL("dtypes", "safetensors")))
        for n in 0..<bytes.count {
            #expect(throws: FormatError.self) { _ = try SafetensorsFile(file: MappedFile(copying: Array(bytes.prefix(n)))) }
        }
        _ = try SafetensorsFile(file: MappedFile(copying: bytes))
    }

    @Test("malformed headers are rejected with what is wrong")
    func malformed() throws {
        func open(_ bytes: [UInt8]) throws { _ = try SafetensorsFile(file: MappedFile(copying: bytes)) }
        let eight = [UInt8](repeating: 0, count: 8)
        // Header length beyond the file.
        var huge = Self.file(header: "{}")
        huge[0] = 0xFF
        #expect(throws: FormatError.implausible(offset: 0, what: "safetensors header length (file has 10 bytes)", value: 255)) { try open(huge) }
        // Size disagrees with shape × dtype.
        #expect(throws: FormatError.badTensor(tensor: "w", reason: "shape [3] of F32 needs 3 × 4 bytes, data_offsets give 8")) {
            try open(Self.file(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: eight))
        }
        // Offsets outside the buffer.
        #expect(throws: FormatError.badTensor(tensor: "w", reason: "data_offsets [4, 12] outside the 8-byte data buffer")) {
            try open(Self.file(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: eight))
        }
        // Overlapping tensors.
        #expect(throws: FormatError.self) {
            try open(Self.file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: eight))
        }
        // A dtype we cannot compute with is named, not skipped.
        #expect(throws: FormatError.badTensor(tensor: "w", reason: "dtype F8_E4M3 is not supported (supported: BF16, F16, F32, F64, I16, I32, I64, I8)")) {
            try open(Self.file(header: #"{"w":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}"#, data: eight))
        }
        // Not JSON, duplicate names, trailing garbage.
        #expect(throws: FormatError.self) { try open(Self.file(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, data: eight)) }
        #expect(throws: FormatError.duplicate("w")) {
            try open(Self.file(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: eight))
        }
        #expect(throws: FormatError.self) { try open(Self.file(header: #"{} x"#)) }
        // Whitespace padding after the JSON (what the writer adds for alignment) is fine, and escapes decode.
        let ok = try SafetensorsFile(file: MappedFile(copying: Self.file(header: #"{"__metadata__":{"k":"\u00e9\n"},"w\"1":{"dtype":"I8","shape":[2,4],"data_offsets":[0,8]}}   "#, data: eight)))
        #expect(ok.metadata == ["k": "é\n"])
        #expect(ok.tensorsByName["w\"1"]?.shape == [2, 4])
    }
}
