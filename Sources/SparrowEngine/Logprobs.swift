#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SparrowTokenizer

/// Log-probabilities for the OpenAI `logprobs` / `top_logprobs` outputs: a log-softmax of the
/// model's raw logits (before logit bias, penalties and truncation, as the model saw it).
public enum Logprobs {
    /// The chosen token's entry and the `top` most likely tokens, most likely first.
    /// - logits: [vocab] f32
    public static func compute(_ logits: [Float], token: Int32, top: Int, tokenizer: Tokenizer) -> (TokenLogprob, [TokenLogprob]) {
        var m = -Float.infinity
        for v in logits where v > m { m = v }
        var sum = 0.0
        for v in logits { sum += Double(expf(v - m)) }
        let logZ = m + Float(log(sum))
        func entry(_ id: Int32) -> TokenLogprob {
            let bytes = tokenizer.piece(id)
            let lp = Int(id) < logits.count ? logits[Int(id)] - logZ : -Float.infinity
            return TokenLogprob(token: id, text: String(decoding: bytes, as: UTF8.self), bytes: bytes, logprob: lp)
        }
        guard top > 0 else { return (entry(token), []) }
        // Keep the k best in a small sorted array: O(vocab · k) with k ≤ 20.
        var best: [(Int32, Float)] = []
        best.reserveCapacity(top + 1)
        for (i, v) in logits.enumerated() where best.count < top || v > best[best.count - 1].1 {
            var j = best.count
            while j > 0 && best[j - 1].1 < v { j -= 1 }
            best.insert((Int32(i), v), at: j)
            if best.count > top { best.removeLast() }
        }
        return (entry(token), best.map { entry($0.0) })
    }
}
