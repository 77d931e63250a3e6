/// How the next token is chosen. Defaults match llama.cpp's `common_params_sampling` where
/// the OpenAI API is silent.
public struct SamplingParameters: Sendable, Equatable {
    /// Softmax temperature; ≤ 0 means greedy (argmax). Default 0.8. Bounds: ≥ 0.
    public var temperature: Float = 0.8
    /// Keep only the k most likely tokens; ≤ 0 disables. Default 40.
    public var topK: Int = 40
    /// Nucleus sampling: keep the smallest set whose probability reaches p; 1 disables. Bounds (0, 1]. Default 0.95.
    public var topP: Float = 0.95
    /// Drop tokens whose probability is below minP × the top probability; 0 disables. Bounds [0, 1). Default 0.05.
    public var minP: Float = 0.05
    /// Divides positive (multiplies negative) logits of tokens seen in the last `penaltyLastN`; 1 disables. Default 1.
    public var repetitionPenalty: Float = 1
    /// Subtracted once from the logit of every token seen (OpenAI `presence_penalty`). Bounds [-2, 2]. Default 0.
    public var presencePenalty: Float = 0
    /// Subtracted per occurrence (OpenAI `frequency_penalty`). Bounds [-2, 2]. Default 0.
    public var frequencyPenalty: Float = 0
    /// How many recent tokens the penalties look at; -1 = all, 0 = none. Default 64.
    public var penaltyLastN: Int = 64
    /// Added to the logits of given token ids (OpenAI `logit_bias`, -100 bans a token).
    public var logitBias: [Int32: Float] = [:]
    /// Random seed; the same seed, prompt and parameters give the same output. nil = random.
    public var seed: UInt64? = nil

    public init() {}

    /// Greedy decoding: always the most likely token.
    public static var greedy: SamplingParameters {
        var p = SamplingParameters()
        p.temperature = 0
        return p
    }

    /// Checks bounds; the error names the parameter, its value and the valid range.
    public func validate() throws(SamplingError) {
        guard temperature >= 0, temperature.isFinite else { throw .invalid("temperature", "\(temperature)", "must be ≥ 0") }
        guard topP > 0, topP <= 1 else { throw .invalid("top_p", "\(topP)", "must be in (0, 1]") }
        guard minP >= 0, minP < 1 else { throw .invalid("min_p", "\(minP)", "must be in [0, 1)") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else { throw .invalid("repetition_penalty", "\(repetitionPenalty)", "must be > 0") }
        guard (-2...2).contains(presencePenalty) else { throw .invalid("presence_penalty", "\(presencePenalty)", "must be in [-2, 2]") }
        guard (-2...2).contains(frequencyPenalty) else { throw .invalid("frequency_penalty", "\(frequencyPenalty)", "must be in [-2, 2]") }
        guard penaltyLastN >= -1 else { throw .invalid("penalty_last_n", "\(penaltyLastN)", "must be ≥ -1") }
        for (id, b) in logitBias where !b.isFinite || id < 0 {
            throw .invalid("logit_bias", "\(id): \(b)", "token ids must be ≥ 0 and biases finite")
        }
    }
}

/// Invalid sampling parameters.
public enum SamplingError: Error, Equatable, CustomStringConvertible {
    case invalid(_ parameter: String, _ value: String, _ rule: String)

    public var description: String {
        switch self {
        case let .invalid(p, v, rule): return "invalid \(p) \(v): \(rule)"
        }
    }
}
