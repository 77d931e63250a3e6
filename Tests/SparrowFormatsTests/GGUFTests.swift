import Testing
@testable import SparrowFormats

/// A small file with every metadata value type and a few tensors.
func sampleGGUF() -> GGUFWriter {
    var w = GGUFWriter()
    w.set("general.architecture", .string("llama"))
    w.set("u8", .uint8(200)); w.set("i8", .int8(-5)); w.set("u16", .uint16(60000)); w.set("i16", .int16(-300))
    w.set("u32", .uint32(4_000_000_000)); w.set("i32", .int32(-70000)); w.set("u64", .uint64(1 << 40)); w.set("i64", .int64(-(1 << 40)))
    w.set("f32", .float32(1.5)); w.set("f64", .float64(-2.25)); w.set("bool", .bool(true)); w.set("str", .string("héllo ✓"))
    w.set("ints", .array(.ints([1, -2, 3], elementType: 5)))
    w.set("floats", .array(.floats([0.5, 0.25], elementType: 6)))
    w.set("strings", .array(.strings(["a", "", "ü"])))
    w.set("nested", .array(.arrays([.ints([1, 2], elementType: 4), .strings(["x"])])))
    w.add("a.weight", shape: [4, 2], values: [1, 2, 3, 4, 5, 6, 7, 8])
    w.add("b.bias", shape: [3], values: [-1, 0, 1])
    return w
}

@Suite("GGUF reader")
struct GGUFTests {
    @Test("reads every metadata value type and the tensor table")
    func roundTrip() throws {
        let g = try GGUFFile(file: MappedFile(copying: sampleGGUF().serialize()))
        #expect(g.version == 3)
        #expect(g.architecture == "llama")
        #expect(g.metadata["u8"] == .uint8(200))
        #expect(g.metadata["i8"] == .int8(-5))
        #expect(g.metadata["u16"] == .uint16(60000))
        #expect(g.metadata["i16"] == .int16(-300))
        #expect(g.metadata["u32"] == .uint32(4_000_000_000))
        #expect(g.metadata["i32"] == .int32(-70000))
        #expect(g.metadata["u64"] == .uint64(1 << 40))
        #expect(g.metadata["i64"] == .int64(-(1 << 40)))
        #expect(g.metadata["f32"] == .float32(1.5))
        #expect(g.metadata["f64"] == .float64(-2.25))
        #expect(g.metadata["bool"] == .bool(true))
        #expect(try g.string("str") == "héllo ✓")
        #expect(try g.ints("ints") == [1, -2, 3])
        #expect(try g.numbers("floats") == [0.5, 0.25])
        #expect(try g.strings("strings") == ["a", "", "ü"])
        #expect(g.metadata["nested"] == .array(.arrays([.ints([1, 2], elementType: 4), .strings(["x"])])))
        #expect(g.metadataKeys.first == "general.architecture")
        #expect(g.tensors.map(\.name) == ["a.weight", "b.bias"])
        let a = try #require(g.tensorsByName["a.weight"])
        #expect(a.shape == [4, 2] && a.type == .f32 && a.byteCount == 32)
        #expect(a.fileOffset % 32 == 0)
        #expect(a.data.load(fromByteOffset: 28, as: Float.self) == 8)
        let b = try #require(g.tensorsByName["b.bias"])
        #expect(b.data.load(fromByteOffset: 0, as: Float.self) == -1)
    }

    @Test("honours general.alignment")
    func alignment() throws {
        var w = sampleGGUF()
        w.alignment = 64
        let g = try GGUFFile(file: MappedFile(copying: w.serialize()))
        #expect(g.alignment == 64)
        #expect(g.tensors.allSatisfy { $0.fileOffset % 64 == 0 })
    }

    @Test("rejects bad magic and versions with typed errors")
    func badHeader() throws {
        var bytes = sampleGGUF().serialize()
        bytes[0] = UInt8(ascii: "X")
        #expect(throws: FormatError.self) { try GGUFFile(file: MappedFile(copying: bytes)) }
        bytes = sampleGGUF().serialize()
        bytes[4] = 1
        #expect(throws: FormatError.unsupportedVersion(1)) { try GGUFFile(file: MappedFile(copying: bytes)) }
    }

    @Test("a truncated file names the offset and what was expected")
    func truncated() throws {
        let full = sampleGGUF().serialize()
        do {
            // The last tensor (12 bytes) is padded to 32: cutting 24 bytes reaches into its data.
            _ = try GGUFFile(file: MappedFile(copying: Array(full.prefix(full.count - 24))))
            Issue.record("expected an error")
        } catch {
            guard case let .truncated(_, _, size, what) = error else { Issue.record("wrong error \(error)"); return }
            #expect(size == full.count - 24)
            #expect(what.contains("b.bias"))
        }
        #expect(throws: FormatError.self) { try GGUFFile(file: MappedFile(copying: Array(full.prefix(10)))) }
        #expect(throws: FormatError.self) { try GGUFFile(file: MappedFile(copying: [])) }
    }

    @Test("an unknown tensor type is a typed error naming the tensor")
    func unknownType() throws {
        var w = GGUFWriter()
        w.tensors = [.init(name: "x", type: .f32, shape: [4], bytes: Array(repeating: 0, count: 16))]
        var bytes = w.serialize()
        // Header 24 bytes; tensor info: name (8 + 1), n_dims 4, one dim 8, then the u32 type at 45.
        #expect(bytes[45] == 0)
        bytes[45] = 99
        #expect(throws: FormatError.unknownTensorType(tensor: "x", code: 99)) { try GGUFFile(file: MappedFile(copying: bytes)) }
    }

    @Test("fuzz: thousands of mutated and truncated files give typed errors only")
    func fuzz() throws {
        let base = sampleGGUF().serialize()
        var rng = Xorshift(seed: 42)
        var parsed = 0, rejected = 0
        for i in 0..<5000 {
            var bytes = base
            switch i % 4 {
            case 0:
                bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))
            case 1:
                for _ in 0..<(1 + Int(rng.next() % 8)) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            case 2:
                // Overwrite an 8-byte field with an extreme value (lengths, counts, dims, offsets).
                let at = Int(rng.next() % UInt64(bytes.count - 8))
                let extreme: [UInt64] = [0, 1, UInt64.max, UInt64(Int64.max), 1 << 32, 0xFFFF_FFFF]
                let v = extreme[Int(rng.next() % UInt64(extreme.count))]
                for k in 0..<8 { bytes[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
            default:
                let at = Int(rng.next() % UInt64(bytes.count))
                bytes.insert(contentsOf: (0..<Int(rng.next() % 16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
            }
            do {
                let g = try GGUFFile(file: MappedFile(copying: bytes))
                // Whatever parsed must describe only bytes inside the file.
                for t in g.tensors { #expect(t.fileOffset + t.byteCount <= bytes.count) }
                parsed += 1
            } catch {
                rejected += 1
            }
        }
        #expect(parsed + rejected == 5000)
        #expect(rejected > 1000)
    }
}

struct Xorshift {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9 : seed }
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
}
