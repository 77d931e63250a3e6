/// GGUF reader (versions 2 and 3), after ggml's `gguf.cpp` and docs/gguf.md.
///
/// Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata
/// key/value pairs, the tensor infos, padding to `general.alignment` (default 32), then
/// the tensor data. All little-endian. Tensor data is never copied: `GGUFTensor.data`
/// points into the mapped file.

/// One metadata value. Arrays keep their element type so 150k-token vocabularies stay
/// compact typed Swift arrays.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double), bool(Bool), string(String)
    case array(GGUFArray)

    /// The value as an integer, when it is one of the integer types.
    public var intValue: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return v <= UInt64(Int.max) ? Int(v) : nil
        case let .int64(v): return Int(v)
        case let .bool(v): return v ? 1 : 0
        default: return nil
        }
    }

    /// The value as a floating-point number, when it is numeric.
    public var doubleValue: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return intValue.map(Double.init)
        }
    }

    public var stringValue: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case let .bool(b) = self { return b }
        return nil
    }

    /// A short human-readable rendering (arrays abbreviated) for `sparrow inspect`.
    public var summary: String {
        switch self {
        case let .string(s):
            let oneLine = s.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\\n")
            return oneLine.count > 80 ? "\"\(oneLine.prefix(77))...\" (\(s.utf8.count) bytes)" : "\"\(oneLine)\""
        case let .array(a): return a.summary
        case let .bool(b): return String(b)
        case let .float32(f): return String(f)
        case let .float64(f): return String(f)
        default: return intValue.map(String.init) ?? "?"
        }
    }
}

/// A typed metadata array.
public enum GGUFArray: Sendable, Equatable {
    case ints([Int64], elementType: UInt32)
    case floats([Double], elementType: UInt32)
    case bools([Bool])
    case strings([String])
    case arrays([GGUFArray])

    public var count: Int {
        switch self {
        case let .ints(v, _): return v.count
        case let .floats(v, _): return v.count
        case let .bools(v): return v.count
        case let .strings(v): return v.count
        case let .arrays(v): return v.count
        }
    }

    var summary: String {
        switch self {
        case let .ints(v, _): return "[\(v.prefix(8).map(String.init).joined(separator: ", "))\(v.count > 8 ? ", ..." : "")] (\(v.count) ints)"
        case let .floats(v, _): return "[\(v.prefix(8).map { String($0) }.joined(separator: ", "))\(v.count > 8 ? ", ..." : "")] (\(v.count) floats)"
        case let .bools(v): return "(\(v.count) bools)"
        case let .strings(v): return "[\(v.prefix(5).map { "\"\($0)\"" }.joined(separator: ", "))\(v.count > 5 ? ", ..." : "")] (\(v.count) strings)"
        case let .arrays(v): return "(\(v.count) arrays)"
        }
    }
}

/// One tensor: its name, type, shape and a zero-copy view of its bytes.
public struct GGUFTensor: @unchecked Sendable {
    public let name: String
    public let type: GGMLType
    /// ggml order: `shape[0]` is the contiguous (row) dimension.
    public let shape: [Int]
    /// Offset of the data from the start of the file.
    public let fileOffset: Int
    public let byteCount: Int
    /// Bytes of the tensor inside the mapped file.
    public let data: UnsafeRawPointer

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A parsed GGUF file: metadata and tensors over one memory map.
public final class GGUFFile: @unchecked Sendable {
    public let file: MappedFile
    public let version: UInt32
    /// Metadata in file order.
    public let metadataKeys: [String]
    public let metadata: [String: GGUFValue]
    /// Tensors in file order.
    public let tensors: [GGUFTensor]
    public let tensorsByName: [String: GGUFTensor]
    public let alignment: Int
    public let dataOffset: Int

    public convenience init(path: String) throws(FormatError) {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws(FormatError) {
        self.file = file
        var r = ByteReader(bytes: file.bytes)
        let magic = try r.u32("magic")
        guard magic == 0x4655_4747 else { throw .badMagic(found: magic) }
        version = try r.u32("version")
        guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }
        let tensorCount = try r.u64("tensor count")
        let kvCount = try r.u64("metadata count")
        // Each KV needs at least 12 bytes, each tensor info at least 24: reject absurd counts early.
        guard kvCount <= UInt64(file.bytes.count / 12) else {
            throw .truncated(offset: 24, needed: Int(min(kvCount, 1 << 40)) * 12, fileSize: file.bytes.count, what: "\(kvCount) metadata entries")
        }
        guard tensorCount <= UInt64(file.bytes.count / 24) else {
            throw .truncated(offset: 24, needed: Int(min(tensorCount, 1 << 40)) * 24, fileSize: file.bytes.count, what: "\(tensorCount) tensor infos")
        }

        var keys: [String] = []
        var meta: [String: GGUFValue] = [:]
        for _ in 0..<Int(kvCount) {
            let key = try r.string("metadata key")
            let typeOffset = r.offset
            let code = try r.u32("value type of '\(key)'")
            let value = try r.value(type: code, key: key, typeOffset: typeOffset, depth: 0)
            guard meta[key] == nil else { throw .duplicate(key) }
            keys.append(key)
            meta[key] = value
        }
        metadataKeys = keys
        metadata = meta

        var align = 32
        if let a = meta["general.alignment"] {
            guard let v = a.intValue, v > 0, v & (v - 1) == 0, v <= 1 << 16 else {
                throw .implausible(offset: 0, what: "general.alignment", value: UInt64(a.intValue ?? 0))
            }
            align = v
        }
        alignment = align

        struct Info { let name: String; let type: GGMLType; let shape: [Int]; let offset: UInt64 }
        var infos: [Info] = []
        infos.reserveCapacity(Int(tensorCount))
        for _ in 0..<Int(tensorCount) {
            let name = try r.string("tensor name")
            let nDimsOffset = r.offset
            let nDims = try r.u32("dimension count of '\(name)'")
            guard (1...4).contains(nDims) else { throw .implausible(offset: nDimsOffset, what: "dimension count of '\(name)'", value: UInt64(nDims)) }
            var shape: [Int] = []
            for _ in 0..<nDims {
                let dimOffset = r.offset
                let d = try r.u64("shape of '\(name)'")
                guard d > 0, d < 1 << 40 else { throw .implausible(offset: dimOffset, what: "dimension of '\(name)'", value: d) }
                shape.append(Int(d))
            }
            let code = try r.u32("type of '\(name)'")
            guard let type = GGMLType(rawValue: code) else { throw .unknownTensorType(tensor: name, code: code) }
            let off = try r.u64("data offset of '\(name)'")
            infos.append(Info(name: name, type: type, shape: shape, offset: off))
        }
        let start = (r.offset + align - 1) / align * align
        dataOffset = start

        var list: [GGUFTensor] = []
        var byName: [String: GGUFTensor] = [:]
        let size = file.bytes.count
        for info in infos {
            var elements = 1
            for d in info.shape {
                let (p, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow, p < 1 << 44 else { throw .badTensor(tensor: info.name, reason: "shape \(info.shape) is too large") }
                elements = p
            }
            guard info.shape[0] % info.type.blockSize == 0 else {
                throw .badTensor(tensor: info.name, reason: "row length \(info.shape[0]) is not a multiple of the \(info.type) block size \(info.type.blockSize)")
            }
            let bytes = elements / info.type.blockSize * info.type.typeSize
            guard info.offset % UInt64(align) == 0 else {
                throw .badTensor(tensor: info.name, reason: "data offset \(info.offset) is not aligned to \(align)")
            }
            guard info.offset <= UInt64(size), start + Int(info.offset) + bytes <= size else {
                throw .truncated(offset: start + Int(min(info.offset, UInt64(size))), needed: bytes, fileSize: size, what: "data of tensor '\(info.name)'")
            }
            guard let base = file.bytes.baseAddress else { throw .truncated(offset: 0, needed: bytes, fileSize: 0, what: "tensor data") }
            let t = GGUFTensor(name: info.name, type: info.type, shape: info.shape, fileOffset: start + Int(info.offset),
                               byteCount: bytes, data: base + start + Int(info.offset))
            guard byName[info.name] == nil else { throw .duplicate(info.name) }
            byName[info.name] = t
            list.append(t)
        }
        tensors = list
        tensorsByName = byName
    }

    // MARK: typed metadata access

    public func string(_ key: String) throws(FormatError) -> String {
        guard let s = metadata[key]?.stringValue else { throw .missingKey(key, expected: "a string") }
        return s
    }

    public func int(_ key: String) throws(FormatError) -> Int {
        guard let v = metadata[key]?.intValue else { throw .missingKey(key, expected: "an integer") }
        return v
    }

    public func double(_ key: String) throws(FormatError) -> Double {
        guard let v = metadata[key]?.doubleValue else { throw .missingKey(key, expected: "a number") }
        return v
    }

    public func strings(_ key: String) throws(FormatError) -> [String] {
        guard case let .array(.strings(v))? = metadata[key] else { throw .missingKey(key, expected: "an array of strings") }
        return v
    }

    /// An integer or float array as `[Double]` (token scores, token types).
    public func numbers(_ key: String) throws(FormatError) -> [Double] {
        switch metadata[key] {
        case let .array(.floats(v, _))?: return v
        case let .array(.ints(v, _))?: return v.map(Double.init)
        default: throw .missingKey(key, expected: "an array of numbers")
        }
    }

    public func ints(_ key: String) throws(FormatError) -> [Int] {
        switch metadata[key] {
        case let .array(.ints(v, _))?: return v.map { Int($0) }
        default: throw .missingKey(key, expected: "an array of integers")
        }
    }

    /// The model architecture (`general.architecture`).
    public var architecture: String? { metadata["general.architecture"]?.stringValue }
}

/// Bounds-checked little-endian reader over the mapped bytes.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws(FormatError) {
        guard n >= 0, offset <= bytes.count, bytes.count - offset >= n else {
            throw .truncated(offset: offset, needed: n, fileSize: bytes.count, what: what())
        }
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(FormatError) -> T {
        try need(MemoryLayout<T>.size, what())
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func u32(_ what: @autoclosure () -> String) throws(FormatError) -> UInt32 { try load(UInt32.self, what()) }
    mutating func u64(_ what: @autoclosure () -> String) throws(FormatError) -> UInt64 { try load(UInt64.self, what()) }

    mutating func string(_ what: @autoclosure () -> String) throws(FormatError) -> String {
        let lenOffset = offset
        let len = try u64("length of \(what())")
        guard len <= UInt64(bytes.count - offset) else {
            throw .truncated(offset: lenOffset, needed: Int(min(len, UInt64(Int.max / 2))), fileSize: bytes.count, what: what())
        }
        let n = Int(len)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
        // Vocabularies hold byte tokens that are not valid UTF-8 on their own; ggml keeps them
        // as raw bytes, so we repair rather than reject (the tokenizer maps them by bytes).
        let s = String(decoding: slice, as: UTF8.self)
        offset += n
        return s
    }

    mutating func value(type code: UInt32, key: String, typeOffset: Int, depth: Int) throws(FormatError) -> GGUFValue {
        switch code {
        case 0: return .uint8(try load(UInt8.self, key))
        case 1: return .int8(try load(Int8.self, key))
        case 2: return .uint16(try load(UInt16.self, key))
        case 3: return .int16(try load(Int16.self, key))
        case 4: return .uint32(try load(UInt32.self, key))
        case 5: return .int32(try load(Int32.self, key))
        case 6: return .float32(Float(bitPattern: try load(UInt32.self, key)))
        case 7:
            let b = try load(UInt8.self, key)
            return .bool(b != 0)
        case 8: return .string(try string("value of '\(key)'"))
        case 10: return .uint64(try load(UInt64.self, key))
        case 11: return .int64(try load(Int64.self, key))
        case 12: return .float64(Double(bitPattern: try load(UInt64.self, key)))
        case 9:
            guard depth < 4 else { throw .implausible(offset: typeOffset, what: "array nesting of '\(key)'", value: UInt64(depth)) }
            return .array(try array(key: key, depth: depth))
        default:
            throw .badValueType(offset: typeOffset, code: code, key: key)
        }
    }

    mutating func array(key: String, depth: Int) throws(FormatError) -> GGUFArray {
        let typeOffset = offset
        let elementType = try u32("array type of '\(key)'")
        let countOffset = offset
        let count = try u64("array length of '\(key)'")
        // Every element takes at least one byte.
        guard count <= UInt64(bytes.count - offset) else { throw .implausible(offset: countOffset, what: "array length of '\(key)'", value: count) }
        let n = Int(count)
        func ints<T: FixedWidthInteger>(_ t: T.Type) throws(FormatError) -> [Int64] {
            try need(n * MemoryLayout<T>.size, "array '\(key)'")
            var out = [Int64](repeating: 0, count: n)
            for i in 0..<n {
                out[i] = Int64(truncatingIfNeeded: T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + i * MemoryLayout<T>.size, as: T.self)))
            }
            offset += n * MemoryLayout<T>.size
            return out
        }
        switch elementType {
        case 0: return .ints(try ints(UInt8.self), elementType: elementType)
        case 1: return .ints(try ints(Int8.self), elementType: elementType)
        case 2: return .ints(try ints(UInt16.self), elementType: elementType)
        case 3: return .ints(try ints(Int16.self), elementType: elementType)
        case 4: return .ints(try ints(UInt32.self), elementType: elementType)
        case 5: return .ints(try ints(Int32.self), elementType: elementType)
        case 10, 11: return .ints(try ints(Int64.self), elementType: elementType)
        case 6:
            let raw = try ints(UInt32.self)
            return .floats(raw.map { Double(Float(bitPattern: UInt32(truncatingIfNeeded: $0))) }, elementType: elementType)
        case 12:
            let raw = try ints(Int64.self)
            return .floats(raw.map { Double(bitPattern: UInt64(bitPattern: $0)) }, elementType: elementType)
        case 7:
            try need(n, "array '\(key)'")
            let out = (0..<n).map { bytes[offset + $0] != 0 }
            offset += n
            return .bools(out)
        case 8:
            var out: [String] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try string("element of '\(key)'")) }
            return .strings(out)
        case 9:
            guard depth < 4 else { throw .implausible(offset: typeOffset, what: "array nesting of '\(key)'", value: UInt64(depth)) }
            var out: [GGUFArray] = []
            for _ in 0..<n {
                _ = try u32("nested array type of '\(key)'")
                offset -= 4
                out.append(try array(key: key, depth: depth + 1))
            }
            return .arrays(out)
        default:
            throw .badValueType(offset: typeOffset, code: elementType, key: key)
        }
    }
}
