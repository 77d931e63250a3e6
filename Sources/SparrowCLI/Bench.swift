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
    @Option(help: "Sequences decoded together in each tg step, as the server's continuous batching does (tg tok/s counts all of them).")
    var parallel: Int = 1
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var memory: MemoryOptions

    func run() throws {
        guard prompt >= 0, generate >= 0, prompt + generate > 0, repetitions > 0, threads > 0, parallel > 0 else {
            throw ValidationError("-p, -n must be ≥ 0 (not both 0), -r, -t and --parallel ≥ 1")
        }
        Engine.setThreadCount(threads)
        let path = try ModelStore().resolve(model, pullIfMissing: true)
        let engine = try memory.load(path: path)
        let vocab = Int32(engine.model.config.vocabularySize)
        var rng = SystemRandomNumberGenerator()
        var pp: [Double] = [], tg: [Double] = []
        // Expert cache and storage counters over the measured decode runs (not the warm-up).
        var tgExperts = ExpertStoreStatistics(), tgStorage = 0, tgTokens = 0
        func finite(_ logits: [Float]) throws {
            guard logits.allSatisfy(\.isFinite) else {
                throw ValidationError("the model produced non-finite logits (NaN or infinity); its weights are broken")
            }
        }
        // One warm-up pass pages the weights in.
        for rep in 0...repetitions {
            if prompt > 0 {
                let cache = engine.model.makeCache(capacity: prompt + 1)
                let tokens = (0..<prompt).map { _ in Int32.random(in: 0..<vocab, using: &rng) }
                let t0 = Date()
                try finite(try engine.model.forward(tokens, cache: cache, allLogits: false))
                if rep > 0 { pp.append(Double(prompt) / Date().timeIntervalSince(t0)) }
            }
            if generate > 0 {
                let caches = (0..<parallel).map { _ in engine.model.makeCache(capacity: generate + 1) }
                var tokens = (0..<parallel).map { _ in Int32.random(in: 0..<vocab, using: &rng) }
                let experts0 = engine.expertStore?.statistics(), storage0 = ProcessMemory.current().storageReadBytes
                let t0 = Date()
                for _ in 0..<generate {
                    if parallel == 1 {
                        try finite(try engine.model.forward(tokens, cache: caches[0], allLogits: false))
                    } else {
                        let batch = zip(tokens, caches).map { BatchSequence(tokens: [$0], cache: $1) }
                        for logits in try engine.model.forwardBatch(batch) { try finite(logits) }
                    }
                    // A random next token, as llama-bench feeds: a sparse model's routing then
                    // depends on varied inputs, not on whatever token a random model repeats.
                    for i in tokens.indices { tokens[i] = Int32.random(in: 0..<vocab, using: &rng) }
                }
                if rep > 0 {
                    tg.append(Double(generate * parallel) / Date().timeIntervalSince(t0))
                    if let store = engine.expertStore, let experts0 { tgExperts = tgExperts + (store.statistics() - experts0) }
                    if let s0 = storage0, let s1 = ProcessMemory.current().storageReadBytes { tgStorage += s1 - s0 }
                    tgTokens += generate * parallel
                }
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
        let mem = ProcessMemory.current()
        let perToken = { (bytes: Int) in tgTokens > 0 ? Double(bytes) / Double(tgTokens) : 0 }
        if json {
            var memoryJSON = "\"peak_rss_bytes\":\(mem.peakResidentBytes ?? -1),\"rss_bytes\":\(mem.residentBytes ?? -1),"
                + "\"rss_file_bytes\":\(mem.fileBytes ?? -1),\"rss_anon_bytes\":\(mem.anonymousBytes ?? -1),"
                + "\"tg_storage_read_bytes_per_token\":\(perToken(tgStorage))"
            if let plan = engine.offloadPlan, let store = engine.expertStore {
                let u = Self.routingSkew(store.usage(), slots: plan.slots)
                memoryJSON += ",\"offload\":{\"budget_bytes\":\(plan.budget),\"dense_bytes\":\(plan.denseBytes),"
                    + "\"experts_used_fraction\":\(u.touched),\"top_slots_access_share\":\(u.topShare),"
                    + "\"expert_bytes\":\(plan.expertBytes),\"cache_bytes\":\(plan.cacheBytes),\"cache_slots\":\(plan.slots),"
                    + "\"experts\":\(plan.expertCount),\"tg_hit_rate\":\(tgExperts.hitRate),\"tg_hits\":\(tgExperts.hits),"
                    + "\"tg_misses\":\(tgExperts.misses),\"tg_evictions\":\(tgExperts.evictions),\"tg_predicted_misses\":\(tgExperts.predictedMisses),"
                    + "\"tg_paged_in_bytes_per_token\":\(perToken(tgExperts.bytesPagedIn))}"
            }
            print("{\"model\":\"\(name)\",\"threads\":\(threads),\"parallel\":\(parallel),\"repetitions\":\(repetitions),"
                + "\"pp\":{\"tokens\":\(prompt),\"median_tps\":\(p.median),\"min_tps\":\(p.min),\"max_tps\":\(p.max),\"samples\":\(pp)},"
                + "\"tg\":{\"tokens\":\(generate),\"median_tps\":\(g.median),\"min_tps\":\(g.min),\"max_tps\":\(g.max),\"samples\":\(tg)},"
                + memoryJSON + "}")
        } else {
            print("model: \(name), threads: \(threads), repetitions: \(repetitions)" + (parallel > 1 ? ", tg sequences per step: \(parallel)" : ""))
            if prompt > 0 { print(String(format: "pp%d: %.2f tok/s (min %.2f, max %.2f)", prompt, p.median, p.min, p.max)) }
            if generate > 0 { print(String(format: "tg%d: %.2f tok/s (min %.2f, max %.2f)", generate, g.median, g.min, g.max)) }
            if engine.expertStore != nil, generate > 0 {
                print(String(format: "tg expert cache: hit rate %.1f%% (%d hits, %d misses of which %d predicted a layer ahead, %d evictions), paged in %.1f MiB/token",
                             tgExperts.hitRate * 100, tgExperts.hits, tgExperts.misses, tgExperts.predictedMisses, tgExperts.evictions,
                             perToken(tgExperts.bytesPagedIn) / 1_048_576))
                if let plan = engine.offloadPlan, let store = engine.expertStore {
                    let u = Self.routingSkew(store.usage(), slots: plan.slots)
                    print(String(format: "routing (whole run): %.1f%% of experts used; the %d most used took %.1f%% of the picks",
                                 u.touched * 100, plan.slots, u.topShare * 100))
                }
            }
            let f = { (b: Int?) in b.map(MemorySize.format) ?? "n/a" }
            if generate > 0 { print(String(format: "tg storage reads: %.1f MiB/token", perToken(tgStorage) / 1_048_576)) }
            print("peak RSS: \(f(mem.peakResidentBytes)), RSS now: \(f(mem.residentBytes)) (mapped file pages \(f(mem.fileBytes)), anonymous \(f(mem.anonymousBytes)))")
        }
    }

    /// How skewed the router's picks were: the share of experts picked at least once, and the
    /// share of all picks that went to the `slots` most picked experts (what a cache of that size
    /// holding exactly those would hit).
    static func routingSkew(_ usage: [[Int]], slots: Int) -> (touched: Double, topShare: Double) {
        let all = usage.flatMap { $0 }.sorted(by: >)
        let total = all.reduce(0, +)
        guard total > 0 else { return (0, 0) }
        let touched = Double(all.filter { $0 > 0 }.count) / Double(all.count)
        return (touched, Double(all.prefix(slots).reduce(0, +)) / Double(total))
    }
}
