import Foundation
import SparrowFormats

/// Deterministic random numbers (SplitMix64), so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Standard normal (Box–Muller).
    mutating func normal() -> Float {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let u2 = Double.random(in: 0..<1, using: &self)
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }
}

/// The weight types Sparrow computes with.
let weightTypes: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

/// Byte offsets of the f16 scale fields in one block (ggml-common.h), for random blocks.
func halfFieldOffsets(_ type: GGMLType) -> [Int] {
    switch type {
    case .q4_0, .q5_0, .q8_0: return [0]
    case .q4_1, .q5_1, .q4_K, .q5_K: return [0, 2]
    case .q2_K: return [80, 82]
    case .q3_K: return [108]
    case .q6_K: return [208]
    default: return []
    }
}

/// A random row of `count` values of `type`: random quant bytes with finite random f16
/// scales (~N(0, scale)), or random normal values for the float types.
func randomRow(_ type: GGMLType, count: Int, rng: inout SplitMix64, scale: Float = 0.02) -> [UInt8] {
    switch type {
    case .f32:
        return (0..<count).flatMap { _ in withUnsafeBytes(of: rng.normal().bitPattern.littleEndian, Array.init) }
    case .f16:
        return (0..<count).flatMap { _ in withUnsafeBytes(of: floatToFP16(rng.normal()).littleEndian, Array.init) }
    case .bf16:
        return (0..<count).flatMap { _ in withUnsafeBytes(of: floatToBF16(rng.normal()).littleEndian, Array.init) }
    default:
        let blocks = count / type.blockSize
        var bytes = (0..<blocks * type.typeSize).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for b in 0..<blocks {
            for off in halfFieldOffsets(type) {
                let h = floatToFP16(rng.normal() * scale)
                bytes[b * type.typeSize + off] = UInt8(truncatingIfNeeded: h)
                bytes[b * type.typeSize + off + 1] = UInt8(truncatingIfNeeded: h >> 8)
            }
        }
        return bytes
    }
}

/// Random activations: normal values with a few outliers, as hidden states look.
func randomActivations(count: Int, rng: inout SplitMix64) -> [Float] {
    (0..<count).map { _ in
        let v = rng.normal()
        return UInt8.random(in: 0...255, using: &rng) < 4 ? v * 20 : v
    }
}

/// Dequantizes a row into a fresh array (test convenience).
func dequantized(_ type: GGMLType, _ bytes: [UInt8], count: Int) throws -> [Float] {
    var out = [Float](repeating: .nan, count: count)
    try bytes.withUnsafeBytes { src in
        try out.withUnsafeMutableBufferPointer { dst in
            guard let s = src.baseAddress, let d = dst.baseAddress else { return }
            try dequantizeRow(type, s, d, count: count)
        }
    }
    return out
}

// MARK: - Fixtures

/// One case of Fixtures/manifest.tsv (see scripts/make_quant_fixtures.py).
struct Fixture: CustomStringConvertible, Sendable {
    var name: String
    /// "dequant": `src` bytes → expected `values`; "quant": `values` → expected `src` bytes.
    var direction: String
    var type: GGMLType
    var count: Int
    var source: String
    var src: [UInt8]
    var values: [Float]
    var description: String { name }
}

enum FixtureError: Error, CustomStringConvertible {
    case missing(String), bad(String)
    var description: String {
        switch self {
        case let .missing(s): return "fixture missing: \(s)"
        case let .bad(s): return "bad fixture: \(s)"
        }
    }
}

enum Fixtures {
    static func directory() throws -> URL {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else { throw FixtureError.missing("Fixtures directory") }
        return url
    }

    static func load() throws -> [Fixture] {
        let dir = try directory()
        let manifest = try String(contentsOf: dir.appendingPathComponent("manifest.tsv"), encoding: .utf8)
        var result: [Fixture] = []
        for line in manifest.split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 5, let count = Int(f[3]), let type = GGMLType.allCases.first(where: { $0.description == f[2] }) else {
                throw FixtureError.bad(String(line))
            }
            let src = [UInt8](try Data(contentsOf: dir.appendingPathComponent(f[0] + ".src")))
            let raw = [UInt8](try Data(contentsOf: dir.appendingPathComponent(f[0] + ".f32")))
            guard raw.count == 4 * count else { throw FixtureError.bad("\(f[0]).f32 has \(raw.count) bytes for \(count) values") }
            let values = (0..<count).map { i in
                Float(bitPattern: UInt32(raw[4 * i]) | UInt32(raw[4 * i + 1]) << 8 | UInt32(raw[4 * i + 2]) << 16 | UInt32(raw[4 * i + 3]) << 24)
            }
            result.append(Fixture(name: f[0], direction: f[1], type: type, count: count, source: f[4], src: src, values: values))
        }
        return result
    }

    /// Names of all cases, for parameterized tests (empty if the manifest cannot be read;
    /// the manifest test then fails loudly).
    static let names: [String] = ((try? load()) ?? []).map(\.name)
}
