#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SparrowKernels

/// The experts chosen for a batch of tokens and the weight each expert's output gets.
public struct ExpertRouting: Sendable, Equatable {
    /// Experts per token (top-k).
    public let k: Int
    /// [n, k] expert indices, most probable first.
    public var experts: [Int]
    /// [n, k] f32 weights of those experts (after optional renormalisation and scale).
    public var weights: [Float]
}

/// A sparse feed-forward layer (mixture of experts) as llama.cpp's `build_moe_ffn` computes it
/// with softmax gating, plus the optional shared expert of qwen2moe:
///
///     probs   = softmax(router · x)                          // [nExperts]
///     top     = the k largest probs (ties: lower index first)
///     w       = top / sum(top) if normalizeTopK, then × weightsScale
///     y       = Σ_slot w[slot] · expert[top[slot]](x)        // summed in slot order
///     y      += sigmoid(sharedGate · x) · shared(x)          // qwen2moe only
///
/// where every expert is a SwiGLU MLP (`GatedMLP`). Hugging Face's `Qwen2MoeSparseMoeBlock` /
/// `Qwen3MoeSparseMoeBlock` compute the same function.
public struct MoEBlock: Sendable {
    /// [nExperts ← d] router (`ffn_gate_inp`).
    public let router: WeightMatrix
    /// The routed experts, views into the stacked `ffn_{gate,up,down}_exps` tensors
    /// (gate/up [ffExp ← d], down [d ← ffExp]).
    public let experts: [GatedMLP]
    /// The shared expert every token goes through (`ffn_{gate,up,down}_shexp`), if any.
    public let shared: GatedMLP?
    /// [d] f32 weights of the shared expert's scalar sigmoid gate (`ffn_gate_inp_shexp`).
    public let sharedGate: FloatBuffer?
    /// Experts per token (top-k).
    public let expertUsedCount: Int
    /// Renormalise the top-k probabilities to sum to 1 (HF `norm_topk_prob`).
    public let normalizeTopK: Bool
    /// Factor on the routing weights (1 = none).
    public let weightsScale: Float
    /// Where the routed experts' weights are read when they are paged into an expert cache
    /// (`--memory-budget`); nil: read in place from the mapped file (`experts`).
    public let offload: ExpertOffload?

    public init(router: WeightMatrix, experts: [GatedMLP], shared: GatedMLP? = nil, sharedGate: FloatBuffer? = nil,
                expertUsedCount: Int, normalizeTopK: Bool, weightsScale: Float = 1, offload: ExpertOffload? = nil) {
        self.router = router
        self.experts = experts
        self.shared = shared
        self.sharedGate = sharedGate
        self.expertUsedCount = expertUsedCount
        self.normalizeTopK = normalizeTopK
        self.weightsScale = weightsScale
        self.offload = offload
    }

    /// Softmax over each row of router logits, then top-k with optional renormalisation.
    ///
    /// Order and ties: experts come out most probable first; equal probabilities go to the
    /// lower expert index first. The renormalising sum is clamped below at 2⁻¹⁴ (the smallest
    /// normal f16) as llama.cpp does, so a row of zeros cannot divide by zero.
    /// - logits: [n, nExperts] f32, overwritten with the probabilities
    public static func route(logits: UnsafeMutablePointer<Float>, n: Int, expertCount: Int, k: Int,
                             normalize: Bool, scale: Float) -> ExpertRouting {
        var experts = [Int](repeating: 0, count: n * k)    // [n, k]
        var weights = [Float](repeating: 0, count: n * k)  // [n, k]
        var taken = [Bool](repeating: false, count: expertCount)
        for t in 0..<n {
            let p = logits + t * expertCount  // [nExperts]
            Ops.softmax(p, count: expertCount)
            for e in 0..<expertCount { taken[e] = false }
            var sum: Float = 0
            for s in 0..<k {
                var best = -1
                for e in 0..<expertCount where !taken[e] && (best < 0 || p[e] > p[best]) { best = e }
                taken[best] = true
                experts[t * k + s] = best
                weights[t * k + s] = p[best]
                sum += p[best]
            }
            if normalize {
                let divisor = max(sum, 6.103515625e-5)
                for s in 0..<k { weights[t * k + s] /= divisor }
            }
            if scale != 1 {
                for s in 0..<k { weights[t * k + s] *= scale }
            }
        }
        return ExpertRouting(k: k, experts: experts, weights: weights)
    }

    /// - x: [n, d] f32 (normalised input); out: [n, d] f32
    /// - Throws: only when offloaded experts cannot be read from the file.
    func forward(_ x: UnsafePointer<Float>, n: Int, out: UnsafeMutablePointer<Float>) throws(ModelError) {
        let nExperts = experts.count, k = expertUsedCount, d = router.cols
        let logits = FloatBuffer(count: n * nExperts, zeroed: false)  // [n, nExperts]
        router.matmul(x, nTokens: n, into: logits.pointer)
        let routing = Self.route(logits: logits.pointer, n: n, expertCount: nExperts, k: k,
                                 normalize: normalizeTopK, scale: weightsScale)

        // Slots (t·k + s) each expert serves, so each expert runs once on all its tokens.
        var slotsOf = [[Int]](repeating: [], count: nExperts)
        for (slot, e) in routing.experts.enumerated() { slotsOf[e].append(slot) }

        let weighted = FloatBuffer(count: n * k * d, zeroed: false)  // [n, k, d] weighted expert outputs
        let xe = FloatBuffer(count: n * d, zeroed: false)            // [m, d] the tokens of one expert
        let ye = FloatBuffer(count: n * d, zeroed: false)            // [m, d] that expert's outputs
        // Each expert's weighted outputs go to their own slots, so the order experts run in
        // (an expert cache runs resident ones first) does not change the sum below.
        func run(_ e: Int, _ expert: GatedMLP) {
            let slots = slotsOf[e]
            for (i, slot) in slots.enumerated() {
                (xe.pointer + i * d).update(from: x + (slot / k) * d, count: d)
            }
            expert.forward(xe.pointer, n: slots.count, out: ye.pointer)
            for (i, slot) in slots.enumerated() {
                let w = routing.weights[slot], src = ye.pointer + i * d, dst = weighted.pointer + slot * d
                for j in 0..<d { dst[j] = src[j] * w }
            }
        }
        if let offload {
            offload.store.prefetchNext(after: offload.layer, x: x, n: n, k: k)
            let used = slotsOf.indices.filter { !slotsOf[$0].isEmpty }
            try offload.store.withExperts(layer: offload.layer, experts: used, run)
        } else {
            for (e, slots) in slotsOf.enumerated() where !slots.isEmpty { run(e, experts[e]) }
        }
        // Sum the k weighted outputs of each token in slot order, as ggml adds the expert views.
        for t in 0..<n {
            let o = out + t * d
            o.update(from: weighted.pointer + t * k * d, count: d)
            for s in 1..<max(k, 1) { Ops.addInPlace(o, weighted.pointer + (t * k + s) * d, count: d) }
        }

        if let shared, let sharedGate {
            let y = FloatBuffer(count: n * d, zeroed: false)  // [n, d] shared expert output
            shared.forward(x, n: n, out: y.pointer)
            for t in 0..<n {
                let xt = x + t * d, yt = y.pointer + t * d, o = out + t * d
                var g: Float = 0
                for j in 0..<d { g += xt[j] * sharedGate[j] }
                let gate = 1 / (1 + expf(-g))
                for j in 0..<d { o[j] += yt[j] * gate }
            }
        }
    }
}
