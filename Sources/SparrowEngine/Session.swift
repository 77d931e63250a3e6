#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import SparrowModels
import SparrowSampling
import SparrowTokenizer

/// What to generate and when to stop.
public struct GenerationParameters: Sendable {
    /// Most tokens to generate. Default 256. Bounds ≥ 0.
    public var maxTokens: Int = 256
    public var sampling: SamplingParameters = SamplingParameters()
    /// Generation stops before the first occurrence of any of these strings (not included in the text).
    public var stop: [String] = []
    /// Keep going past end-of-generation tokens (benchmarks). Default false.
    public var ignoreEndOfGeneration = false

    public init() {}
}

/// Why generation ended, named as the OpenAI API names it.
public enum FinishReason: String, Sendable {
    case stop, length
}

/// One finished generation.
public struct GenerationResult: Sendable {
    public var promptTokens: [Int32]
    public var tokens: [Int32]
    public var text: String
    public var finishReason: FinishReason
    /// Prompt tokens that were reused from the cache instead of recomputed.
    public var cachedPromptTokens: Int
    public var prefillSeconds: Double
    public var decodeSeconds: Double

    /// Generated tokens per second after the first (decode speed).
    public var decodeTokensPerSecond: Double { tokens.count > 1 ? Double(tokens.count - 1) / decodeSeconds : 0 }
    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens.count - cachedPromptTokens) / prefillSeconds : 0 }
}

/// One sequence: a KV cache and the tokens in it. Successive `generate` calls reuse the longest
/// common prefix of the cached tokens (multi-turn chat recomputes only the new turn).
public final class Session: @unchecked Sendable {
    public let engine: Engine
    let cache: KVCache
    /// Tokens whose keys/values are in `cache`.
    public private(set) var cachedTokens: [Int32] = []

    init(engine: Engine) {
        self.engine = engine
        cache = engine.model.makeCache(capacity: engine.contextLength, type: engine.kvCacheType)
    }

    /// Generates a continuation of `prompt`. `onText` receives each new piece of text as soon as
    /// it is complete UTF-8 and cannot be the start of a stop string; return false to stop early.
    public func generate(prompt: [Int32], parameters: GenerationParameters,
                         onText: (String) -> Bool = { _ in true }) throws(EngineError) -> GenerationResult {
        guard !prompt.isEmpty else { throw .invalidParameter("the prompt is empty (no tokens)") }
        guard parameters.maxTokens >= 0 else { throw .invalidParameter("max_tokens \(parameters.maxTokens) must be ≥ 0") }
        do { try parameters.sampling.validate() } catch { throw .sampling(error) }
        let ctx = engine.contextLength
        guard prompt.count < ctx else { throw .promptTooLong(promptTokens: prompt.count, context: ctx) }

        // Reuse the common prefix, but always recompute at least the last prompt token for its logits.
        // A hybrid model's cache may go back less far than asked (to its latest state snapshot).
        var common = 0
        while common < min(cachedTokens.count, prompt.count - 1), cachedTokens[common] == prompt[common] { common += 1 }
        common = cache.truncate(to: common)
        cachedTokens.removeLast(cachedTokens.count - common)
        // Keep the recurrent state before the last prompt token, so this prompt or one extending it can resume there.
        cache.requestSnapshot(at: prompt.count - 1)

        var sampler = Sampler(parameters.sampling)
        for t in prompt { sampler.accept(t) }
        let eog = engine.tokenizer.endOfGenerationTokens

        let t0 = now()
        var logits = try forward(Array(prompt[common...]))
        let t1 = now()
        var result = GenerationResult(promptTokens: prompt, tokens: [], text: "", finishReason: .length,
                                      cachedPromptTokens: common, prefillSeconds: t1 - t0, decodeSeconds: 0)
        var decoder = IncrementalDecoder(tokenizer: engine.tokenizer)
        var pending = ""  // decoded text not yet emitted (could start a stop string)
        let maxStop = parameters.stop.map(\.count).max() ?? 0
        var matchedStopString = false

        generation: while result.tokens.count < parameters.maxTokens {
            let token = sampler.sample(logits)
            if eog.contains(token) && !parameters.ignoreEndOfGeneration {
                result.finishReason = .stop
                break
            }
            result.tokens.append(token)
            sampler.accept(token)
            pending += decoder.append(token)
            for s in parameters.stop where !s.isEmpty {
                if let r = pending.range(of: s) {
                    let before = String(pending[..<r.lowerBound])
                    result.text += before
                    if !before.isEmpty { _ = onText(before) }
                    pending = ""
                    result.finishReason = .stop
                    matchedStopString = true
                    break generation
                }
            }
            // Emit all but the tail that might still grow into a stop string.
            let keep = min(pending.count, max(0, maxStop - 1))
            let emitEnd = pending.index(pending.endIndex, offsetBy: -keep)
            if emitEnd > pending.startIndex {
                let piece = String(pending[..<emitEnd])
                result.text += piece
                pending = String(pending[emitEnd...])
                if !onText(piece) { result.finishReason = .stop; break }
            }
            if result.tokens.count == parameters.maxTokens { break }
            guard cachedTokens.count < ctx else { break }
            logits = try forward([token])
        }
        if !matchedStopString {
            let rest = pending + decoder.flush()
            if !rest.isEmpty {
                result.text += rest
                _ = onText(rest)
            }
        }
        result.decodeSeconds = now() - t1
        return result
    }

    /// Runs tokens through the model, appending them to the cache; returns the last token's logits.
    func forward(_ tokens: [Int32]) throws(EngineError) -> [Float] {
        guard cachedTokens.count + tokens.count <= cache.capacity else {
            throw .promptTooLong(promptTokens: cachedTokens.count + tokens.count, context: cache.capacity)
        }
        do {
            let logits = try engine.model.forward(tokens, cache: cache, allLogits: false)
            cachedTokens += tokens
            return logits
        } catch {
            throw .model(error)
        }
    }

    /// Forgets the cached tokens.
    public func reset() {
        cache.truncate(to: 0)
        cachedTokens = []
    }
}

/// Monotonic seconds.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
