import SparrowTokenizer

/// Turns generated tokens into text that is safe to show as it arrives: only complete UTF-8,
/// and never a tail that could still grow into one of the stop strings.
///
/// When a stop string appears, the text before it is released, the stop string and anything
/// after it are dropped, and `stopped` becomes true. The scheduler owns one per sequence.
public struct TextStream: Sendable {
    private var decoder: IncrementalDecoder
    private let stop: [String]
    /// Characters to hold back: one less than the longest stop string.
    private let holdBack: Int
    /// Decoded text not yet released (could be the start of a stop string).
    private var pending = ""
    /// True once a stop string matched; later tokens are ignored.
    public private(set) var stopped = false

    public init(tokenizer: Tokenizer, stop: [String]) {
        decoder = IncrementalDecoder(tokenizer: tokenizer)
        self.stop = stop.filter { !$0.isEmpty }
        holdBack = max(0, (self.stop.map(\.count).max() ?? 0) - 1)
    }

    /// Adds one generated token; returns the text that can be released now (often empty).
    public mutating func append(_ token: Int32) -> String {
        guard !stopped else { return "" }
        pending += decoder.append(token)
        for s in stop {
            if let r = pending.range(of: s) {
                let before = String(pending[..<r.lowerBound])
                pending = ""
                stopped = true
                return before
            }
        }
        let keep = min(pending.count, holdBack)
        let end = pending.index(pending.endIndex, offsetBy: -keep)
        let out = String(pending[..<end])
        pending = String(pending[end...])
        return out
    }

    /// The text still held back, once generation ended without a stop string.
    public mutating func finish() -> String {
        guard !stopped else { return "" }
        let rest = pending + decoder.flush()
        pending = ""
        return rest
    }
}
