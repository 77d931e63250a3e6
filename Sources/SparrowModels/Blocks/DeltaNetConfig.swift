import SparrowFormats
import SparrowKernels

/// Hyper-parameters of the linear-attention (Gated DeltaNet) layers of a hybrid Qwen model, read
/// from the GGUF keys llama.cpp uses (`LLM_KV_SSM_*`, `attention.recurrent_layers`,
/// `full_attention_interval` in `src/llama-arch.cpp`), which `convert_hf_to_gguf.py` writes from
/// the Hugging Face config (`linear_*`, `layer_types`, `full_attention_interval`).
public struct DeltaNetConfig: Sendable, Equatable {
    /// `{arch}.ssm.conv_kernel` (HF `linear_conv_kernel_dim`): taps of the causal convolution.
    public var convKernel: Int
    /// `{arch}.ssm.group_count` (HF `linear_num_key_heads`): query/key heads.
    public var keyHeads: Int
    /// `{arch}.ssm.state_size` (HF `linear_key_head_dim`): query/key head dimension.
    public var keyDim: Int
    /// `{arch}.ssm.time_step_rank` (HF `linear_num_value_heads`): value heads (a multiple of keyHeads).
    public var valueHeads: Int
    /// `{arch}.ssm.inner_size` / valueHeads (HF `linear_value_head_dim`): value head dimension.
    public var valueDim: Int
    /// recurrent[l] is true when layer l is a linear-attention layer: `{arch}.attention.recurrent_layers`
    /// when the file has it, else every layer but each `{arch}.full_attention_interval`-th
    /// (default 4), as llama.cpp's loaders decide.
    public var recurrentLayers: [Bool]
    /// Which key head each value head reads (fixed per architecture: see `DeltaNet.HeadGrouping`).
    public var grouping: DeltaNet.HeadGrouping

    /// Channels of the causal convolution: q, k (keyHeads × keyDim each) and v (valueHeads × valueDim).
    public var convChannels: Int { 2 * keyHeads * keyDim + valueHeads * valueDim }

    /// The per-sequence state these layers need.
    public var stateLayout: RecurrentStateLayout {
        RecurrentStateLayout(layerCount: recurrentLayers.filter { $0 }.count,
                             convSize: (convKernel - 1) * convChannels,
                             ssmSize: valueHeads * valueDim * keyDim)
    }

    /// Reads the keys of `arch` for a model of `blockCount` layers.
    public init(gguf: GGUFFile, architecture arch: String, blockCount: Int, grouping: DeltaNet.HeadGrouping) throws(ModelError) {
        func int(_ key: String) throws(ModelError) -> Int {
            guard let v = gguf.metadata["\(arch).\(key)"]?.intValue else {
                throw .format(.missingKey("\(arch).\(key)", expected: "an integer"))
            }
            return v
        }
        convKernel = try int("ssm.conv_kernel")
        keyHeads = try int("ssm.group_count")
        keyDim = try int("ssm.state_size")
        valueHeads = try int("ssm.time_step_rank")
        let inner = try int("ssm.inner_size")
        valueDim = valueHeads > 0 ? inner / valueHeads : 0
        guard valueHeads > 0, inner % valueHeads == 0 else {
            throw .invalidConfig("\(arch).ssm.inner_size \(inner) must be a positive multiple of ssm.time_step_rank \(valueHeads)")
        }
        switch gguf.metadata["\(arch).attention.recurrent_layers"] {
        case let .array(.bools(flags))?:
            recurrentLayers = flags
        case let .array(.ints(flags, _))?:
            recurrentLayers = flags.map { $0 != 0 }
        case nil:
            let interval = gguf.metadata["\(arch).full_attention_interval"]?.intValue ?? 4
            guard interval > 0 else { throw .invalidConfig("\(arch).full_attention_interval \(interval) must be positive") }
            recurrentLayers = (0..<blockCount).map { ($0 + 1) % interval != 0 }
        case let other?:
            throw .invalidConfig("\(arch).attention.recurrent_layers is \(other.summary), expected an array of booleans")
        }
        // Files with multi-token-prediction layers list them after the trunk (never recurrent).
        if recurrentLayers.count > blockCount, !recurrentLayers[blockCount...].contains(true) {
            recurrentLayers = Array(recurrentLayers[..<blockCount])
        }
        self.grouping = grouping
        try validate(architecture: arch, blockCount: blockCount)
    }

    /// Checks the values fit together; errors name the keys and values.
    public func validate(architecture arch: String = "", blockCount: Int) throws(ModelError) {
        guard convKernel >= 1 else { throw .invalidConfig("\(arch).ssm.conv_kernel \(convKernel) must be at least 1") }
        guard keyHeads > 0, keyDim > 0, valueDim > 0 else {
            throw .invalidConfig("\(arch).ssm.group_count \(keyHeads), ssm.state_size \(keyDim) and value head dim \(valueDim) must be positive")
        }
        guard valueHeads % keyHeads == 0 else {
            throw .invalidConfig("\(arch).ssm.time_step_rank \(valueHeads) (value heads) must be a multiple of ssm.group_count \(keyHeads) (key heads)")
        }
        guard recurrentLayers.count == blockCount else {
            throw .invalidConfig("\(arch).attention.recurrent_layers has \(recurrentLayers.count) entries for \(blockCount) layers")
        }
    }
}
