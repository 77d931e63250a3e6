import SparrowEngine
import SparrowSampling

/// Typed reads from a JSON request object that remember which keys were read, so that any key
/// left over can be refused (`rejectUnknown`) instead of silently ignored. A `null` value counts
/// as absent, as OpenAI's API treats it.
package struct RequestFields {
    package let pairs: [(String, JSONValue)]
    package private(set) var used: Set<String> = []
    /// Prefix for parameter names in errors (`messages[2].`).
    package let path: String

    package init(_ value: JSONValue, path: String = "", what: String = "the request body") throws(APIError) {
        guard case let .object(p) = value else {
            throw APIError.invalidRequest("\(what) must be a JSON object, got \(value.typeName)", param: path.isEmpty ? nil : String(path.dropLast()))
        }
        pairs = p
        self.path = path
    }

    package func name(_ key: String) -> String { path + key }

    package mutating func value(_ key: String) -> JSONValue? {
        used.insert(key)
        guard let v = pairs.last(where: { $0.0 == key })?.1, v != .null else { return nil }
        return v
    }

    package mutating func string(_ key: String) throws(APIError) -> String? {
        guard let v = value(key) else { return nil }
        guard case let .string(s) = v else { throw APIError.invalidParameter(name(key), "\(name(key)) must be a string, got \(v.typeName)") }
        return s
    }

    package mutating func bool(_ key: String) throws(APIError) -> Bool? {
        guard let v = value(key) else { return nil }
        guard case let .bool(b) = v else { throw APIError.invalidParameter(name(key), "\(name(key)) must be a boolean, got \(v.typeName)") }
        return b
    }

    package mutating func int(_ key: String, in range: ClosedRange<Int>) throws(APIError) -> Int? {
        guard let v = value(key) else { return nil }
        let i: Int
        switch v {
        case let .int(x): i = x
        case let .double(d) where d == d.rounded() && abs(d) < 1e15: i = Int(d)
        default: throw APIError.invalidParameter(name(key), "\(name(key)) must be an integer, got \(v.serialized.prefix(40))")
        }
        guard range.contains(i) else {
            throw APIError.invalidParameter(name(key), "\(name(key)) is \(i); it must be in \(range.lowerBound)...\(range.upperBound)")
        }
        return i
    }

    package mutating func number(_ key: String, in range: ClosedRange<Double>, open lower: Bool = false) throws(APIError) -> Double? {
        guard let v = value(key) else { return nil }
        let d: Double
        switch v {
        case let .int(x): d = Double(x)
        case let .double(x): d = x
        default: throw APIError.invalidParameter(name(key), "\(name(key)) must be a number, got \(v.typeName)")
        }
        guard range.contains(d), !(lower && d == range.lowerBound) else {
            let l = lower ? "(\(range.lowerBound)" : "[\(range.lowerBound)"
            throw APIError.invalidParameter(name(key), "\(name(key)) is \(d); it must be in \(l), \(range.upperBound)]")
        }
        return d
    }

    package mutating func array(_ key: String) throws(APIError) -> [JSONValue]? {
        guard let v = value(key) else { return nil }
        guard case let .array(a) = v else { throw APIError.invalidParameter(name(key), "\(name(key)) must be an array, got \(v.typeName)") }
        return a
    }

    /// Refuses keys nobody read: `ignorable` ones (metadata that does not change the output)
    /// are accepted as they are.
    package func rejectUnknown(ignorable: Set<String> = []) throws(APIError) {
        for (k, v) in pairs where !used.contains(k) && !ignorable.contains(k) && v != .null {
            throw APIError.unsupported(name(k), "\(name(k)) is not supported by this server")
        }
    }
}

/// The sampling and stopping parameters chat and completions requests share.
package enum SamplingFields {
    /// Reads temperature, top_p, top_k, min_p, repetition_penalty, presence/frequency penalties,
    /// seed, logit_bias and stop. Defaults: OpenAI's temperature 1 and top_p 1; llama.cpp's
    /// top_k 40 and min_p 0.05 (which OpenAI does not have).
    package static func read(_ f: inout RequestFields, vocabularySize: Int) throws(APIError) -> GenerationParameters {
        var g = GenerationParameters()
        var s = SamplingParameters()
        s.temperature = 1
        s.topP = 1
        if let t = try f.number("temperature", in: 0...2) { s.temperature = Float(t) }
        if let p = try f.number("top_p", in: 0...1, open: true) { s.topP = Float(p) }
        if let k = try f.int("top_k", in: 0...Int(Int32.max)) { s.topK = k }
        if let m = try f.number("min_p", in: 0...0.999_999) { s.minP = Float(m) }
        if let r = try f.number("repetition_penalty", in: 0...10, open: true) { s.repetitionPenalty = Float(r) }
        if let p = try f.number("presence_penalty", in: -2...2) { s.presencePenalty = Float(p) }
        if let p = try f.number("frequency_penalty", in: -2...2) { s.frequencyPenalty = Float(p) }
        if let seed = try f.int("seed", in: Int.min...Int.max) { s.seed = UInt64(bitPattern: Int64(seed)) }
        if let bias = f.value("logit_bias") {
            guard case let .object(pairs) = bias else { throw APIError.invalidParameter("logit_bias", "logit_bias must be an object mapping token ids to biases") }
            for (k, v) in pairs {
                guard let id = Int32(k), id >= 0, Int(id) < vocabularySize else {
                    throw APIError.invalidParameter("logit_bias", "logit_bias key '\(k)' is not a token id in 0..<\(vocabularySize)")
                }
                let b: Double
                switch v {
                case let .int(x): b = Double(x)
                case let .double(x): b = x
                default: throw APIError.invalidParameter("logit_bias", "logit_bias['\(k)'] must be a number")
                }
                guard (-100...100).contains(b) else { throw APIError.invalidParameter("logit_bias", "logit_bias['\(k)'] is \(b); it must be in [-100, 100]") }
                s.logitBias[id] = Float(b)
            }
        }
        if let stop = f.value("stop") {
            switch stop {
            case let .string(x): g.stop = [x]
            case let .array(items):
                guard items.count <= 16 else { throw APIError.invalidParameter("stop", "stop has \(items.count) strings; at most 16 are allowed") }
                for item in items {
                    guard case let .string(x) = item else { throw APIError.invalidParameter("stop", "stop must be a string or an array of strings") }
                    g.stop.append(x)
                }
            default: throw APIError.invalidParameter("stop", "stop must be a string or an array of strings")
            }
            if g.stop.contains(where: \.isEmpty) { throw APIError.invalidParameter("stop", "stop strings must not be empty") }
        }
        // llama-server's extension: keep generating past end-of-generation tokens (benchmarks).
        if let b = try f.bool("ignore_eos") { g.ignoreEndOfGeneration = b }
        do { try s.validate() } catch { throw APIError.invalidRequest(error.description, code: "invalid_parameter") }
        g.sampling = s
        return g
    }

    /// `stream_options` (only `include_usage`), which OpenAI allows only with `stream: true`.
    package static func streamOptions(_ f: inout RequestFields, stream: Bool) throws(APIError) -> Bool {
        guard let v = f.value("stream_options") else { return false }
        guard stream else { throw APIError.invalidParameter("stream_options", "stream_options is only allowed when stream is true") }
        var o = try RequestFields(v, path: "stream_options.", what: "stream_options")
        let include = try o.bool("include_usage") ?? false
        try o.rejectUnknown()
        return include
    }
}
