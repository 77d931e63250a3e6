import SparrowFormats
import SparrowKernels
import Testing

/// Rough timings, printed rather than asserted (machines differ). Meaningful only in a
/// release build: `swift test -c release --filter SparrowKernelsTests.Benchmarks`.
@Suite("Benchmarks (printed, not asserted)")
struct Benchmarks {
    @Test("ns per dot call on a 1536-long row, every weight type")
    func dotTimings() {
        let n = 1536
        var rng = SplitMix64(seed: 1)
        var lines: [String] = []
        for type in weightTypes {
            let row = randomRow(type, count: n, rng: &rng)
            let act = quantizedActivations(randomActivations(count: n, rng: &rng), for: type)
            let iterations = 20_000
            var sink: Float = 0
            let elapsed = row.withUnsafeBytes { r in
                act.withUnsafeBytes { a in
                    ContinuousClock().measure {
                        for _ in 0..<iterations {
                            sink += QuantKernels.dot(type, row: r.baseAddress!, activations: a.baseAddress!, count: n)
                        }
                    }
                }
            }
            let ns = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
            lines.append("\(type): \(Int(ns / Double(iterations))) ns/dot (sink \(sink.isFinite))")
        }
        let x = randomActivations(count: n, rng: &rng)
        for type in [GGMLType.q8_0, .q8_1, .q4_K] {
            var act = [UInt8](repeating: 0, count: QuantKernels.activationRowBytes(for: type == .q8_1 ? .q4_1 : type, count: n))
            let elapsed = x.withUnsafeBufferPointer { xp in
                act.withUnsafeMutableBytes { a in
                    ContinuousClock().measure {
                        for _ in 0..<2_000 {
                            QuantKernels.quantizeActivations(xp.baseAddress!, count: n, for: type == .q8_1 ? .q4_1 : type, into: a.baseAddress!)
                        }
                    }
                }
            }
            let ns = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
            lines.append("quantize \(QuantKernels.activationType(for: type == .q8_1 ? .q4_1 : type)): \(Int(ns / 2_000)) ns/row")
        }
        print("SparrowKernels timings, n = \(n):\n  " + lines.joined(separator: "\n  "))
    }
}
