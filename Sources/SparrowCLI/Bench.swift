import ArgumentParser
import Foundation
import SparrowEngine
import SparrowModels

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prefill and decode speed like llama-bench (pp = prompt processing, tg = text generation).")

    @Option(help: "A GGUF file or pulled model name.") var model: String = ModelStore.defaultModel
    @Option(name: .customShort("p"), help: "Prompt tokens to prefill.") var prompt: Int = 128
    @Option(name: .customShort("n"), help: "Tokens to generate.") var generate: Int = 64
    @Option(name: .customShort("t"), help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(name: .customShort("r"), help: "Repetitions.") var repetitions: Int = 5
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        guard prompt >= 0, generate >= 0, prompt + generate > 0, repetitions > 0, threads > 0 else {
            throw ValidationError("-p, -n must be ≥ 0 (not both 0), -r and -t ≥ 1")
        }
        Engine.setThreadCount(threads)
        let path = try ModelStore().resolve(model, pullIfMissing: true)
        let engine = try Engine(path: path)
        let vocab = Int32(engine.model.config.vocabularySize)
        var rng = SystemRandomNumberGenerator()
        var pp: [Double] = [], tg: [Double] = []
        // One warm-up pass pages the weights in.
        for rep in 0...repetitions {
            if prompt > 0 {
                let cache = engine.model.makeCache(capacity: prompt + 1)
                let tokens = (0..<prompt).map { _ in Int32.random(in: 0..<vocab, using: &rng) }
                let t0 = Date()
                _ = try engine.model.forward(tokens, cache: cache, allLogits: false)
                if rep > 0 { pp.append(Double(prompt) / Date().timeIntervalSince(t0)) }
            }
            if generate > 0 {
                let cache = engine.model.makeCache(capacity: generate + 1)
                var token = Int32.random(in: 0..<vocab, using: &rng)
                let t0 = Date()
                for _ in 0..<generate {
                    let logits = try engine.model.forward([token], cache: cache, allLogits: false)
                    token = Int32(logits.indices.max { logits[$0] < logits[$1] } ?? 0)
                }
                if rep > 0 { tg.append(Double(generate) / Date().timeIntervalSince(t0)) }
            }
        }
        func stats(_ xs: [Double]) -> (median: Double, min: Double, max: Double) {
            let s = xs.sorted()
            guard !s.isEmpty else { return (0, 0, 0) }
            let m = s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
            return (m, s[0], s[s.count - 1])
        }
        let p = stats(pp), g = stats(tg)
        let name = URL(fileURLWithPath: path).lastPathComponent
        if json {
            print("{\"model\":\"\(name)\",\"threads\":\(threads),\"repetitions\":\(repetitions),"
                + "\"pp\":{\"tokens\":\(prompt),\"median_tps\":\(p.median),\"min_tps\":\(p.min),\"max_tps\":\(p.max),\"samples\":\(pp)},"
                + "\"tg\":{\"tokens\":\(generate),\"median_tps\":\(g.median),\"min_tps\":\(g.min),\"max_tps\":\(g.max),\"samples\":\(tg)}}")
        } else {
            print("model: \(name), threads: \(threads), repetitions: \(repetitions)")
            if prompt > 0 { print(String(format: "pp%d: %.2f tok/s (min %.2f, max %.2f)", prompt, p.median, p.min, p.max)) }
            if generate > 0 { print(String(format: "tg%d: %.2f tok/s (min %.2f, max %.2f)", generate, g.median, g.min, g.max)) }
        }
    }
}
