#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Hugging Face safetensors reader: single files and sharded checkpoints
/// (`model.safetensors.index.json`), memory-mapped, zero-copy.
///
/// Layout (huggingface/safetensors, docs "Format"): u64 little-endian header length N, N bytes of
/// UTF-8 JSON, then the data buffer. The JSON maps each tensor name to
/// `{"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}` (offsets relative to
/// the data buffer, row-major, outermost dimension first as PyTorch writes it), plus an optional
/// `"__metadata__"` map of strings to strings.

/// One tensor inside a mapped safetensors file.
public struct SafetensorsTensor: @unchecked Sendable {
    public let name: String
    /// The dtype string as written ("F32", "F16", "BF16", ...).
    public let dtype: String
    /// The same element type in ggml's numbering (F32, F16, BF16, F64, I8–I64).
    public let type: GGMLType
    /// PyTorch order: `shape[0]` is the outermost dimension, the last is contiguous.
    public let shape: [Int]
    public let byteCount: Int
    /// Bytes of the tensor inside the mapped file (not necessarily aligned beyond 1 byte).
    public let data: UnsafeRawPointer

    public var elementCount: Int { shape.reduce(1, *) }
    /// ggml order (`ggmlShape[0]` contiguous), as a GGUF file of the same tensor would give it.
    public var ggmlShape: [Int] { shape.reversed() }
}

/// One `.safetensors` file over one memory map.
public final class SafetensorsFile: @unchecked Sendable {
    public let file: MappedFile
    /// `__metadata__` (e.g. `{"format": "pt"}`), empty when absent.
    public let metadata: [String: String]
    /// Tensors in data-offset order.
    public let tensors: [SafetensorsTensor]
    public let tensorsByName: [String: SafetensorsTensor]

    /// Header JSON larger than this is rejected as implausible (the reference implementation
    /// caps it at 100 MB).
    public static let maxHeaderBytes = 100_000_000

    /// dtype strings this reader maps to ggml types.
    public static let dtypes: [String: GGMLType] = [
        "F32": .f32, "F16": .f16, "BF16": .bf16, "F64": .f64,
        "I8": .i8, "I16": .i16, "I32": .i32, "I64": .i64,
    ]

    public convenience init(path: String) throws(FormatError) {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws(FormatError) {
        self.file = file
        let bytes = file.bytes
        guard bytes.count >= 8, let base = bytes.baseAddress else {
            throw .truncated(offset: 0, needed: 8, fileSize: bytes.count, what: "safetensors header length")
        }
        let headerLength = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(Self.maxHeaderBytes), headerLength <= UInt64(bytes.count - 8) else {
            throw .implausible(offset: 0, what: "safetensors header length (file has \(bytes.count) bytes)", value: headerLength)
        }
        let dataStart = 8 + Int(headerLength)
        let dataSize = bytes.count - dataStart
        var parser = JSONParser(UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart]), baseOffset: 8)
        guard case let .object(entries) = try parser.parseDocument() else {
            throw .badTensor(tensor: "<safetensors header>", reason: "the header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var tensors: [SafetensorsTensor] = []
        var byName: [String: SafetensorsTensor] = [:]
        var ranges: [(begin: Int, end: Int, name: String)] = []
        for (name, value) in entries {
            if name == "__metadata__" {
                guard case let .object(pairs) = value else {
                    throw .badTensor(tensor: name, reason: "__metadata__ must be an object of strings")
                }
                for (k, v) in pairs {
                    guard case let .string(s) = v else { throw .badTensor(tensor: name, reason: "__metadata__ value for '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard byName[name] == nil else { throw .duplicate(name) }
            guard case let .object(fields) = value else { throw .badTensor(tensor: name, reason: "entry is not an object") }
            let f = Dictionary(fields, uniquingKeysWith: { a, _ in a })
            guard case let .string(dtype)? = f["dtype"] else { throw .badTensor(tensor: name, reason: "missing string 'dtype'") }
            guard let type = Self.dtypes[dtype] else {
                throw .badTensor(tensor: name, reason: "dtype \(dtype) is not supported (supported: \(Self.dtypes.keys.sorted().joined(separator: ", ")))")
            }
            guard case let .array(dims)? = f["shape"] else { throw .badTensor(tensor: name, reason: "missing array 'shape'") }
            var shape: [Int] = []
            for d in dims {
                guard case let .integer(n) = d, n >= 0 else { throw .badTensor(tensor: name, reason: "shape \(dims) has a non-integer or negative dimension") }
                shape.append(n)
            }
            guard case let .array(offsets)? = f["data_offsets"], offsets.count == 2,
                  case let .integer(begin) = offsets[0], case let .integer(end) = offsets[1] else {
                throw .badTensor(tensor: name, reason: "missing 'data_offsets' [begin, end]")
            }
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw .badTensor(tensor: name, reason: "data_offsets [\(begin), \(end)] outside the \(dataSize)-byte data buffer")
            }
            var elements = 1
            for d in shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else { throw .badTensor(tensor: name, reason: "shape \(shape) overflows") }
                elements = product
            }
            let (needed, overflow) = elements.multipliedReportingOverflow(by: type.typeSize)
            guard !overflow, needed == end - begin else {
                throw .badTensor(tensor: name, reason: "shape \(shape) of \(dtype) needs \(elements) × \(type.typeSize) bytes, data_offsets give \(end - begin)")
            }
            let t = SafetensorsTensor(name: name, dtype: dtype, type: type, shape: shape, byteCount: end - begin,
                                      data: base + dataStart + begin)
            byName[name] = t
            tensors.append(t)
            ranges.append((begin, end, name))
        }
        // The spec requires tensors not to overlap (an overlap would alias two weights).
        ranges.sort { $0.begin < $1.begin }
        for (a, b) in zip(ranges, ranges.dropFirst()) where b.begin < a.end {
            throw .badTensor(tensor: b.name, reason: "data overlaps tensor '\(a.name)'")
        }
        self.metadata = metadata
        self.tensors = tensors.sorted { $0.data < $1.data }
        self.tensorsByName = byName
    }
}

/// A Hugging Face checkpoint: one `.safetensors` file or the shards an index names.
public final class SafetensorsCheckpoint: @unchecked Sendable {
    /// The files, in the order the index first names them.
    public let shards: [SafetensorsFile]
    /// Every tensor of every shard; names are unique across shards.
    public let tensorsByName: [String: SafetensorsTensor]
    /// The index's `"metadata"` (e.g. `total_size`) as text; empty for a single file.
    public let indexMetadata: [String: String]

    /// Opens `path`: a `.safetensors` file, a `*.safetensors.index.json`, or a directory holding
    /// `model.safetensors.index.json` or `model.safetensors`.
    public init(path: String) throws(FormatError) {
        var target = path
        if Self.isDirectory(path) {
            let index = path + "/model.safetensors.index.json", single = path + "/model.safetensors"
            if Self.exists(index) { target = index }
            else if Self.exists(single) { target = single }
            else { throw .io(path: path, reason: "no model.safetensors.index.json or model.safetensors in this directory") }
        }
        guard target.hasSuffix(".json") else {
            let file = try SafetensorsFile(path: target)
            shards = [file]
            tensorsByName = file.tensorsByName
            indexMetadata = [:]
            return
        }
        let indexFile = try MappedFile(path: target)
        var parser = JSONParser(indexFile.bytes, baseOffset: 0)
        guard case let .object(top) = try parser.parseDocument(),
              case let .object(weightMap)? = top.first(where: { $0.0 == "weight_map" })?.1 else {
            throw .missingKey("weight_map", expected: "an object mapping tensor names to shard files in \(target)")
        }
        var meta: [String: String] = [:]
        if case let .object(pairs)? = top.first(where: { $0.0 == "metadata" })?.1 {
            for (k, v) in pairs { meta[k] = v.text }
        }
        let directory = target.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        var order: [String] = [], files: [String: SafetensorsFile] = [:]
        var byName: [String: SafetensorsTensor] = [:]
        for (tensor, value) in weightMap {
            guard case let .string(shard) = value, !shard.hasPrefix("/"), !shard.contains("..") else {
                throw .badTensor(tensor: tensor, reason: "weight_map entry is not a relative file name")
            }
            if files[shard] == nil {
                files[shard] = try SafetensorsFile(path: directory.isEmpty ? shard : directory + "/" + shard)
                order.append(shard)
            }
            guard let t = files[shard]?.tensorsByName[tensor] else {
                throw .badTensor(tensor: tensor, reason: "the index names \(shard), which does not contain it")
            }
            guard byName[tensor] == nil else { throw .duplicate(tensor) }
            byName[tensor] = t
        }
        // A tensor in a shard but not in the index would be silently unreachable: refuse it.
        for shard in order {
            for t in files[shard]?.tensors ?? [] where byName[t.name] == nil {
                throw .badTensor(tensor: t.name, reason: "present in \(shard) but missing from the index's weight_map")
            }
        }
        shards = order.compactMap { files[$0] }
        tensorsByName = byName
        indexMetadata = meta
    }

    private static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
    private static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }
}

// MARK: - JSON (the subset safetensors headers and index files use, which is all of JSON)

/// A parsed JSON value (safetensors headers, index files, Hugging Face `config.json`).
/// Objects keep their key order; integers stay exact.
public enum ParsedJSON: Sendable {
    case object([(String, ParsedJSON)])
    case array([ParsedJSON])
    case string(String)
    case integer(Int)
    case number(Double)
    case bool(Bool)
    case null

    /// Parses one JSON document (RFC 8259; whitespace may follow it).
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(FormatError) -> ParsedJSON {
        var parser = JSONParser(bytes, baseOffset: 0)
        return try parser.parseDocument()
    }

    /// The value of `key` when this is an object (the first occurrence), else nil.
    public subscript(key: String) -> ParsedJSON? {
        guard case let .object(entries) = self else { return nil }
        return entries.first { $0.0 == key }?.1
    }

    public var intValue: Int? {
        switch self {
        case let .integer(n): return n
        case let .number(d): return d == d.rounded() && abs(d) < 9e15 ? Int(d) : nil
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case let .integer(n): return Double(n)
        case let .number(d): return d
        default: return nil
        }
    }

    public var stringValue: String? { if case let .string(s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case let .bool(b) = self { return b } else { return nil } }
    public var arrayValue: [ParsedJSON]? { if case let .array(a) = self { return a } else { return nil } }

    /// Scalars as text (for metadata maps); nil-like values as "".
    public var text: String {
        switch self {
        case let .string(s): return s
        case let .integer(n): return String(n)
        case let .number(d): return String(d)
        case let .bool(b): return String(b)
        case .null, .object, .array: return ""
        }
    }
}

/// A strict recursive-descent JSON parser over bytes (RFC 8259). Errors carry the byte offset
/// in the file (`baseOffset` + position).
struct JSONParser {
    let bytes: UnsafeRawBufferPointer
    let baseOffset: Int
    var i = 0
    var depth = 0

    init(_ bytes: UnsafeRawBufferPointer, baseOffset: Int) {
        self.bytes = bytes
        self.baseOffset = baseOffset
    }

    /// One value followed only by whitespace (safetensors pads headers with spaces).
    mutating func parseDocument() throws(FormatError) -> ParsedJSON {
        let v = try value()
        skipSpace()
        guard i == bytes.count else { throw error("trailing bytes after the JSON value") }
        return v
    }

    private func error(_ what: String) -> FormatError {
        .implausible(offset: baseOffset + i, what: "JSON: \(what)", value: UInt64(i < bytes.count ? bytes[i] : 0))
    }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func expect(_ literal: String) throws(FormatError) {
        for b in literal.utf8 {
            guard i < bytes.count, bytes[i] == b else { throw error("expected '\(literal)'") }
            i += 1
        }
    }

    private mutating func value() throws(FormatError) -> ParsedJSON {
        skipSpace()
        guard i < bytes.count else { throw error("unexpected end") }
        depth += 1
        defer { depth -= 1 }
        guard depth < 64 else { throw error("nesting deeper than 64") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1
            var entries: [(String, ParsedJSON)] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(entries) }
            while true {
                skipSpace()
                let key = try string()
                skipSpace()
                try expect(":")
                entries.append((key, try value()))
                skipSpace()
                guard i < bytes.count else { throw error("unterminated object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(entries) }
                throw error("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [ParsedJSON] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                items.append(try value())
                skipSpace()
                guard i < bytes.count else { throw error("unterminated array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw error("expected ',' or ']'")
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default: return try number()
        }
    }

    private mutating func number() throws(FormatError) -> ParsedJSON {
        let start = i
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        var isInteger = true
        while i < bytes.count {
            let c = bytes[i]
            if c >= 0x30 && c <= 0x39 { i += 1; continue }
            if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                isInteger = false; i += 1; continue
            }
            break
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        if isInteger, let n = Int(text) { return .integer(n) }
        if let d = Double(text), !text.isEmpty, text != "-" { return .number(d) }
        i = start
        throw error("invalid value")
    }

    private mutating func hex4() throws(FormatError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard i < bytes.count else { throw error("truncated \\u escape") }
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw error("bad hex digit in \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private mutating func string() throws(FormatError) -> String {
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a string") }
        i += 1
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw error("unterminated string") }
            let c = bytes[i]
            i += 1
            if c == UInt8(ascii: "\"") { break }
            if c < 0x20 { throw error("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); continue }
            guard i < bytes.count else { throw error("unterminated escape") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    try expect("\\u")
                    let low = try hex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw error("unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default: throw error("unknown escape")
            }
        }
        let s = String(decoding: out, as: UTF8.self)
        guard s.utf8.elementsEqual(out) else { throw .badString(offset: baseOffset + i) }
        return s
    }
}
