import SparrowKernels

/// SwiGLU feed-forward: down(silu(gate(x)) ⊙ up(x)), llama.cpp's `build_ffn(..., LLM_FFN_SILU, LLM_FFN_PAR)`.
public struct GatedMLP: Sendable {
    public let gate: WeightMatrix  // [ff ← d]
    public let up: WeightMatrix    // [ff ← d]
    public let down: WeightMatrix  // [d ← ff]

    public init(gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix) {
        self.gate = gate; self.up = up; self.down = down
    }

    /// - x: [n, d] f32; out: [n, d] f32
    func forward(_ x: UnsafePointer<Float>, n: Int, out: UnsafeMutablePointer<Float>) {
        let ff = gate.rows
        let g = FloatBuffer(count: n * ff, zeroed: false)  // [n, ff]
        let u = FloatBuffer(count: n * ff, zeroed: false)  // [n, ff]
        WeightMatrix.matmul([gate, up], x, nTokens: n, into: [g.pointer, u.pointer])
        Ops.siluMul(gate: g.pointer, up: u.pointer, count: n * ff)
        down.matmul(g.pointer, nTokens: n, into: out)
    }
}
