import ArgumentParser
import Foundation
import SparrowEngine
import SparrowKernels
import SparrowModels

@main
struct Sparrow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sparrow",
        abstract: "Run small and sparse open-weight models on the CPU.",
        subcommands: [Run.self, Chat.self, Serve.self, Pull.self, Inspect.self, Tokenize.self, Render.self, Bench.self, Quantize.self])
}

/// Options shared by the commands that load a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A GGUF file, or a model name from `sparrow pull --list` (pulled on first use).")
    var model: String = ModelStore.defaultModel

    @Option(name: .long, help: "Context length in tokens (default: the model's, at most 4096).")
    var context: Int?

    @Option(name: .long, help: "Worker threads (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "KV cache precision: f16 (default, as llama.cpp) or f32.")
    var kvType: String = "f16"

    @OptionGroup var memory: MemoryOptions

    func load() throws -> Engine {
        try Self.loadEngine(model: model, context: context, threads: threads, kvType: try Self.kvCacheType(kvType), memory: memory)
    }

    /// Sets the thread count, resolves (pulling if needed) and loads the model; shared with
    /// `serve`, whose values may come from a configuration file.
    static func loadEngine(model: String, context: Int?, threads: Int?, kvType: KVCacheType, memory: MemoryOptions) throws -> Engine {
        try loadEngine(model: model, context: context, threads: threads, kvType: kvType, offload: try memory.configuration())
    }

    static func loadEngine(model: String, context: Int?, threads: Int?, kvType: KVCacheType,
                           offload: OffloadConfiguration?) throws -> Engine {
        if let threads {
            guard threads > 0 else { throw ValidationError("--threads must be ≥ 1") }
            Engine.setThreadCount(threads)
        }
        let path = try ModelStore().resolve(model, pullIfMissing: true)
        return try MemoryOptions.load(path: path, contextLength: context, kvCacheType: kvType, offload: offload)
    }

    static func kvCacheType(_ name: String) throws -> KVCacheType {
        guard let kv = KVCacheType(rawValue: name) else { throw ValidationError("--kv-type must be f16 or f32, got '\(name)'") }
        return kv
    }
}

/// `--memory-budget` and the expert cache's settings, shared by every command that loads a model.
struct MemoryOptions: ParsableArguments {
    static let budgetVariable = "SPARROW_MEMORY_BUDGET"

    @Option(help: ArgumentHelp(
        "Resident weight memory at most, e.g. 8GiB, 512MiB (default: $SPARROW_MEMORY_BUDGET, else no limit).",
        discussion: "Dense weights stay resident; routed experts are paged from the file into a cache that fills the rest."))
    var memoryBudget: String?

    @Option(help: "Half-life of the expert cache's usage scores in tokens (with a memory budget; default 16).")
    var expertHalfLife: Double?

    @Option(help: "on|off: read ahead the experts the next layer's router predicts (with a memory budget; default off).")
    var expertPrefetch: String?

    /// The offload settings, or nil when no budget is set (flag or environment).
    func configuration() throws -> OffloadConfiguration? {
        try Self.offload(budget: try budgetBytes(), halfLife: expertHalfLife, prefetch: try prefetch())
    }

    /// `--memory-budget` in bytes, if given.
    func budgetBytes() throws -> Int? {
        guard let memoryBudget else { return nil }
        do { return try MemorySize.parse(memoryBudget) } catch { throw ValidationError("--memory-budget: \(error)") }
    }

    /// `--expert-prefetch` as a switch, if given.
    func prefetch() throws -> Bool? {
        guard let expertPrefetch else { return nil }
        guard ["on", "off"].contains(expertPrefetch) else {
            throw ValidationError("--expert-prefetch must be on or off, got '\(expertPrefetch)'")
        }
        return expertPrefetch == "on"
    }

    /// Offload settings from values already merged (flags over a configuration file); the
    /// budget falls back to `$SPARROW_MEMORY_BUDGET`. Nil when there is no budget.
    static func offload(budget: Int?, halfLife: Double?, prefetch: Bool?) throws -> OffloadConfiguration? {
        var bytes = budget
        if bytes == nil, let text = ProcessInfo.processInfo.environment[budgetVariable], !text.isEmpty {
            do { bytes = try MemorySize.parse(text) } catch { throw ValidationError("$\(budgetVariable): \(error)") }
        }
        guard let bytes else {
            if halfLife != nil || prefetch != nil {
                throw ValidationError("the expert cache settings (--expert-half-life, --expert-prefetch) need a memory budget (--memory-budget or $\(budgetVariable))")
            }
            return nil
        }
        if let halfLife, !(halfLife > 0 && halfLife.isFinite) {
            throw ValidationError("--expert-half-life must be a positive number of tokens, got \(halfLife)")
        }
        return OffloadConfiguration(memoryBudget: bytes, halfLifeTokens: halfLife ?? 16, prefetchNextLayer: prefetch ?? false)
    }

    /// Loads the engine under the budget, if any, and says on stderr where the budget goes.
    func load(path: String, contextLength: Int? = nil, kvCacheType: KVCacheType = .f16) throws -> Engine {
        try Self.load(path: path, contextLength: contextLength, kvCacheType: kvCacheType, offload: try configuration())
    }

    static func load(path: String, contextLength: Int? = nil, kvCacheType: KVCacheType = .f16,
                     offload: OffloadConfiguration?) throws -> Engine {
        let engine = try Engine(path: path, contextLength: contextLength, kvCacheType: kvCacheType, offload: offload)
        if let plan = engine.offloadPlan { writeStderr("sparrow: \(plan.summary)\n") }
        return engine
    }
}

/// Sampling and stopping options shared by `run` and `chat`.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Tokens to generate at most.") var maxTokens: Int = 256
    @Option(help: "Temperature; 0 = greedy.") var temperature: Float = 0.8
    @Option(help: "Top-k (0 = off).") var topK: Int = 40
    @Option(help: "Top-p (1 = off).") var topP: Float = 0.95
    @Option(help: "Min-p (0 = off).") var minP: Float = 0.05
    @Option(help: "Repetition penalty (1 = off).") var repeatPenalty: Float = 1
    @Option(help: "Presence penalty.") var presencePenalty: Float = 0
    @Option(help: "Frequency penalty.") var frequencyPenalty: Float = 0
    @Option(help: "Tokens the penalties look back over (-1 = all).") var repeatLastN: Int = 64
    @Option(help: "Random seed (same seed, same output).") var seed: UInt64?
    @Option(help: "Stop before this string (repeatable).") var stop: [String] = []
    @Option(help: "Logit bias as TOKEN=BIAS (repeatable).") var logitBias: [String] = []

    func parameters() throws -> GenerationParameters {
        var g = GenerationParameters()
        g.maxTokens = maxTokens
        g.stop = stop
        var s = g.sampling
        s.temperature = temperature
        s.topK = topK
        s.topP = topP
        s.minP = minP
        s.repetitionPenalty = repeatPenalty
        s.presencePenalty = presencePenalty
        s.frequencyPenalty = frequencyPenalty
        s.penaltyLastN = repeatLastN
        s.seed = seed
        for item in logitBias {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let id = Int32(parts[0]), let b = Float(parts[1]) else {
                throw ValidationError("--logit-bias expects TOKEN=BIAS, got '\(item)'")
            }
            s.logitBias[id] = b
        }
        g.sampling = s
        return g
    }
}

func writeStderr(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }

func writeStdout(_ s: String) {
    FileHandle.standardOutput.write(Data(s.utf8))
}

/// Reads all of standard input as UTF-8.
func readStdin() -> String {
    String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
}

/// A JSON string literal (for the stable `--json` outputs and chat requests).
func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where u.value < 0x20:
            let h = String(u.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}
