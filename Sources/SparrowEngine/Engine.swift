import SparrowCSupport
import SparrowFormats
import SparrowKernels
import SparrowModels
import SparrowSampling
import SparrowTokenizer

/// A loaded model with its tokenizer and chat template: the one object the CLI and the server
/// generate with.
public final class Engine: @unchecked Sendable {
    public let path: String
    public let gguf: GGUFFile
    public let model: any LanguageModel
    public let tokenizer: Tokenizer
    /// The file's own chat template, if it has one.
    public let template: ChatTemplate?
    /// Tokens a sequence may hold (prompt + generated).
    public let contextLength: Int
    /// How sessions store keys/values (f16 by default, as llama.cpp).
    public let kvCacheType: KVCacheType
    /// Where the memory budget goes, when the engine runs under one (`--memory-budget`).
    public let offloadPlan: OffloadPlan?
    /// Pages the routed experts of a sparse model under the budget; nil without a budget or for
    /// a dense model (whose weights then simply fit the budget, or the load failed).
    public let expertStore: ExpertStore?

    /// Loads a GGUF file. `kvCacheType` sets the KV cache precision. `contextLength` defaults to the model's, capped at 4096 to bound the
    /// KV cache; it may not exceed the model's. With `offload`, the weights stay within its
    /// memory budget: dense tensors resident, routed experts paged into an `ExpertStore`.
    public init(path: String, contextLength: Int? = nil, kvCacheType: KVCacheType = .f16,
                offload: OffloadConfiguration? = nil) throws(EngineError) {
        _ = Self.allocatorConfigured
        self.path = path
        self.kvCacheType = kvCacheType
        do { gguf = try GGUFFile(path: path) } catch { throw .format(error) }
        do {
            if let offload {
                let plan = try OffloadPlan(gguf: gguf, configuration: offload)
                offloadPlan = plan
                expertStore = plan.expertCount > 0 ? try ExpertStore(gguf: gguf, plan: plan, configuration: offload) : nil
            } else {
                offloadPlan = nil
                expertStore = nil
            }
            model = try ModelRegistry.load(gguf, options: LoadOptions(experts: expertStore))
        } catch {
            throw .model(error)
        }
        do { tokenizer = try Tokenizer(gguf: gguf) } catch { throw .tokenizer(error) }
        if let source = gguf.metadata["tokenizer.chat_template"]?.stringValue {
            do { template = try ChatTemplate(source: source) } catch { throw .template(error) }
        } else {
            template = nil
        }
        let trained = model.config.contextLength
        let ctx = contextLength ?? min(trained, 4096)
        guard ctx > 0, ctx <= trained else {
            throw .invalidParameter("context length \(ctx) must be in 1...\(trained) (the model's trained context)")
        }
        self.contextLength = ctx
    }

    /// Sets the worker threads every parallel kernel splits into (process-wide).
    public static func setThreadCount(_ n: Int) { Parallel.threadCount = max(1, n) }

    /// Process-wide allocator settings, applied once by the first engine: allocations below
    /// 64 MiB come from the heap and up to 256 MiB of freed memory stays there
    /// (`sparrow_keep_freed_memory`). glibc's defaults map each buffer over 128 KiB afresh
    /// until its adaptive threshold catches up, so the first eight-sequence request on a new
    /// server took 47k page faults where it now takes 5k (Qwen2.5-Coder-0.5B), and a whole
    /// `sparrow bench` run (mostly the load's repacking) 139k → 100k. Read once, in `init`,
    /// before anything is loaded.
    static let allocatorConfigured: Bool = sparrow_keep_freed_memory(64 << 20, 256 << 20) != 0

    /// A fresh sequence (its own KV cache).
    public func makeSession() -> Session { Session(engine: self) }

    /// Tokenizes a prompt as `--raw` means: special tokens parsed, BOS/EOS per the file's metadata.
    public func tokenize(_ text: String) -> [Int32] {
        tokenizer.encode(text, addSpecial: true, parseSpecial: true)
    }

    /// Renders a chat request (`{"messages": [...], "tools": [...], ...}`) with `template`
    /// or the file's own template.
    public func renderChat(requestJSON: String, template override: ChatTemplate? = nil) throws(EngineError) -> String {
        guard let t = override ?? template else { throw .noChatTemplate }
        do {
            return try t.render(requestJSON: requestJSON, bosToken: tokenizer.bos.flatMap(tokenizer.tokenString) ?? "",
                                eosToken: tokenizer.eos.flatMap(tokenizer.tokenString) ?? "")
        } catch {
            throw .template(error)
        }
    }
}
