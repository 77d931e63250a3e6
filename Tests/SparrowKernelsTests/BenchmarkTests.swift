import SparrowFormats
import SparrowKernels
import Testing

/// Rough timings, printed rather than asserted (machines differ). Meaningful only in a
/// release build: `swift test -c release --filter SparrowKernelsTests.Benchmarks`.
#if DEBUG
let isOptimizedBuild = false
#else
let isOptimizedBuild = true
#endif

/// Nanoseconds per call of `body`: the best of `rounds` timed batches, which filters out
/// other processes on a shared machine.
func bestOf(rounds: Int = 15, iterations: Int = 1_000, _ body: () -> Void) -> Double {
    var best = Double.infinity
    for _ in 0..<rounds {
        let t = ContinuousClock().measure { for _ in 0..<iterations { body() } }
        let ns = Double(t.components.seconds) * 1e9 + Double(t.components.attoseconds) / 1e9
        best = min(best, ns / Double(iterations))
    }
    return best
}

@Suite("Benchmarks (printed, not asserted)")
struct Benchmarks {
    @Test("ns per dot call on a 1536-long row, every weight type",
          .enabled(if: isOptimizedBuild, "timings only mean something in a release build"))
    func dotTimings() {
        let n = 1536
        var rng = SplitMix64(seed: 1)
        var lines: [String] = []
        for type in weightTypes {
            let row = randomRow(type, count: n, rng: &rng)
            let act = quantizedActivations(randomActivations(count: n, rng: &rng), for: type)
            var sink: Float = 0
            let ns = row.withUnsafeBytes { r in
                act.withUnsafeBytes { a in
                    bestOf { sink += QuantKernels.dot(type, row: r.baseAddress!, activations: a.baseAddress!, count: n) }
                }
            }
            lines.append("\(type): \(Int(ns)) ns/dot (sink \(sink.isFinite))")
        }
        let x = randomActivations(count: n, rng: &rng)
        for type in [GGMLType.q8_0, .q8_1, .q4_K] {
            var act = [UInt8](repeating: 0, count: QuantKernels.activationRowBytes(for: type == .q8_1 ? .q4_1 : type, count: n))
            let ns = x.withUnsafeBufferPointer { xp in
                act.withUnsafeMutableBytes { a in
                    bestOf { QuantKernels.quantizeActivations(xp.baseAddress!, count: n, for: type == .q8_1 ? .q4_1 : type, into: a.baseAddress!) }
                }
            }
            lines.append("quantize \(QuantKernels.activationType(for: type == .q8_1 ? .q4_1 : type)): \(Int(ns)) ns/row")
        }
        print("SparrowKernels timings, n = \(n):\n  " + lines.joined(separator: "\n  "))
    }
}
