import SparrowFormats

/// Per-token attributes, bit-compatible with llama.cpp's `llama_token_attr`.
public struct TokenAttributes: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let unknown = TokenAttributes(rawValue: 1 << 0)
    public static let unused = TokenAttributes(rawValue: 1 << 1)
    public static let normal = TokenAttributes(rawValue: 1 << 2)
    public static let control = TokenAttributes(rawValue: 1 << 3)
    public static let userDefined = TokenAttributes(rawValue: 1 << 4)
    public static let byte = TokenAttributes(rawValue: 1 << 5)
    public static let normalized = TokenAttributes(rawValue: 1 << 6)
    public static let lstrip = TokenAttributes(rawValue: 1 << 7)
    public static let rstrip = TokenAttributes(rawValue: 1 << 8)
    public static let singleWord = TokenAttributes(rawValue: 1 << 9)

    /// From a GGUF `tokenizer.ggml.token_type` value (llama.cpp's `llama_token_type`).
    init(tokenType: Int) {
        switch tokenType {
        case 1: self = .normal
        case 2: self = .unknown
        case 3: self = .control
        case 4: self = .userDefined
        case 5: self = .unused
        case 6: self = .byte
        default: self = []  // undefined
        }
    }
}

/// The tokenization algorithm named by `tokenizer.ggml.model`.
public enum TokenizerModel: String, Sendable {
    /// `llama`: SentencePiece-style score-based merges with byte fallback (Llama 2, Mistral v1...).
    case sentencePiece = "llama"
    /// `gpt2`: byte-level BPE with rank-ordered merges (GPT-2, Llama 3, Qwen, SmolLM...);
    /// also `gemma4` (BPE on raw UTF-8 with "▁" for spaces).
    case bytePairEncoding = "gpt2"
}

/// How byte-level BPE splits text into words before merging (llama.cpp's pre-tokenizer
/// regex sets, selected by `tokenizer.ggml.pre`).
enum SplitRule: Sendable, Equatable {
    case gpt2            // 's|'t|... ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
    case llama3          // llama 3 regex (\p{N}{1,3})
    case qwen2           // like llama 3 but single digits
    case qwen35          // qwen2 with \p{M} joining letter runs
    case digitsThenGPT2  // \p{N}, then gpt2 (starcoder, smollm, refact, command-r...)
    case falcon          // punctuation runs, gpt2, then [0-9]{3}
    case `default`       // llama.cpp's fallback regex set
    case deepseekCoder
    case deepseekLLM
    case bloom           // " ?[^(\s|.,!?…。，、।۔،)]+"
    case viking          // bloom then \p{N}
    case newlines        // [^\n]+|[\n]+ on raw UTF-8 with "▁" for spaces (Gemma 4)
}

/// Everything llama.cpp's `llama_vocab::load` derives from GGUF metadata: token texts,
/// scores and attributes, special token ids, flags and the end-of-generation set.
public struct TokenizerVocabulary: Sendable {
    public let model: TokenizerModel
    /// `tokenizer.ggml.pre` as stored ("" when absent; BPE then uses llama.cpp's default).
    public let preTokenizer: String
    /// Token texts as stored (empty entries renamed "[EMPTY_<id>]" as llama.cpp does).
    public let tokens: [String]
    /// SentencePiece merge scores (`tokenizer.ggml.scores`, 0 when absent).
    public let scores: [Float]
    /// Per-token attributes from `tokenizer.ggml.token_type`, adjusted as llama.cpp does
    /// (end-of-generation texts become control tokens, "unused" control tokens unused...).
    public let attributes: [TokenAttributes]
    /// BPE merges ("left right"), empty for SentencePiece.
    let merges: [String]
    let splitRule: SplitRule

    /// Special token ids: from metadata when present and in range, else llama.cpp's defaults
    /// for the model type (SentencePiece: BOS 1, EOS 2, UNK 0; GPT-2 BPE: BOS = EOS = 11),
    /// EOT/EOM/FIM auto-detected by text when the metadata has none.
    public let bos: Int32?, eos: Int32?, eot: Int32?, eom: Int32?
    public let unknown: Int32?, separator: Int32?, padding: Int32?, mask: Int32?
    public let fimPrefix: Int32?, fimSuffix: Int32?, fimMiddle: Int32?
    public let fimPad: Int32?, fimRepo: Int32?, fimSeparator: Int32?

    public let addBOS: Bool
    public let addEOS: Bool
    /// SentencePiece: prepend a space to text that starts the input or follows a special token.
    public let addSpacePrefix: Bool
    /// Read for completeness; llama.cpp only applies it to UGM (T5) tokenizers.
    public let removeExtraWhitespaces: Bool
    /// BPE detokenization tidies " ," / " 's" style spaces (llama.cpp's `clean_spaces`).
    public let cleanSpaces: Bool
    /// Look a whole pre-tokenized word up in the vocabulary before merging (Llama 3).
    public let ignoreMerges: Bool
    /// BPE on raw UTF-8 with spaces written as "▁" and `<0xXX>` byte tokens (Gemma 4),
    /// instead of GPT-2 byte-level text.
    public let escapeWhitespaces: Bool
    /// Tokens that end generation, as llama.cpp's `llama_vocab_is_eog`.
    public let endOfGeneration: Set<Int32>

    /// Number of tokens.
    public var count: Int { tokens.count }

    /// Reads the `tokenizer.*` metadata of a GGUF file, applying llama.cpp's defaults
    /// for absent keys.
    public init(gguf: GGUFFile) throws(TokenizerError) {
        let meta = gguf.metadata
        func string(_ key: String) -> String? { meta[key]?.stringValue }
        func bool(_ key: String) -> Bool? {
            guard let v = meta[key] else { return nil }
            if let b = v.boolValue { return b }
            return v.intValue.map { $0 != 0 }
        }

        guard let modelName = string("tokenizer.ggml.model") else {
            throw .missingKey("tokenizer.ggml.model", expected: "a string")
        }
        let pre = string("tokenizer.ggml.pre") ?? ""
        preTokenizer = pre

        var bos: Int32? = nil, eos: Int32? = nil, unk: Int32? = nil
        var addSpacePrefix = false, cleanSpaces = false, addBOS = false, addEOS = false, ignoreMerges = false
        var rule = SplitRule.default

        switch modelName {
        case "llama":
            model = .sentencePiece
            bos = 1; eos = 2; unk = 0
            addSpacePrefix = true; cleanSpaces = false; addBOS = true; addEOS = false
            merges = []
        case "gpt2", "gemma4":
            model = .bytePairEncoding
            guard case let .array(.strings(m))? = meta["tokenizer.ggml.merges"] else {
                throw .missingKey("tokenizer.ggml.merges", expected: "an array of strings")
            }
            merges = m
            if modelName == "gemma4" {
                bos = nil; eos = nil; unk = nil
            } else {
                bos = 11; eos = 11; unk = nil
            }
            cleanSpaces = true
            let p = try TokenizerVocabulary.preTokenizerSettings(modelName == "gemma4" ? "gemma4" : pre)
            rule = p.rule
            if let c = p.cleanSpaces { cleanSpaces = c }
            if p.ignoreMerges { ignoreMerges = true }
            if p.addBOS { addBOS = true }
            if p.noBOS { bos = nil }
        default:
            throw .unsupportedModel(modelName)
        }
        splitRule = rule
        if let v = bool("tokenizer.ggml.add_space_prefix") { addSpacePrefix = v }
        removeExtraWhitespaces = bool("tokenizer.ggml.remove_extra_whitespaces") ?? false

        // Token texts, scores and types.
        guard case let .array(.strings(rawTokens))? = meta["tokenizer.ggml.tokens"] else {
            throw .missingKey("tokenizer.ggml.tokens", expected: "an array of strings")
        }
        let n = rawTokens.count
        guard n > 0, n < Int(Int32.max) else {
            throw .badValue(key: "tokenizer.ggml.tokens", reason: "\(n) tokens")
        }
        var texts = rawTokens
        for i in 0..<n where texts[i].isEmpty { texts[i] = "[EMPTY_\(i)]" }
        tokens = texts

        var scores = [Float](repeating: 0, count: n)
        if let v = meta["tokenizer.ggml.scores"] {
            let values: [Double]
            switch v {
            case let .array(.floats(f, _)): values = f
            case let .array(.ints(i, _)): values = i.map(Double.init)
            default: throw .badValue(key: "tokenizer.ggml.scores", reason: "not a numeric array")
            }
            guard values.count >= n else {
                throw .badValue(key: "tokenizer.ggml.scores", reason: "\(values.count) scores for \(n) tokens")
            }
            for i in 0..<n { scores[i] = Float(values[i]) }
        }
        self.scores = scores

        var attrs = [TokenAttributes](repeating: .normal, count: n)
        if let v = meta["tokenizer.ggml.token_type"] {
            guard case let .array(.ints(types, _)) = v else {
                throw .badValue(key: "tokenizer.ggml.token_type", reason: "not an integer array")
            }
            guard types.count >= n else {
                throw .badValue(key: "tokenizer.ggml.token_type", reason: "\(types.count) types for \(n) tokens")
            }
            for i in 0..<n { attrs[i] = TokenAttributes(tokenType: Int(types[i])) }
        }

        // Special token ids: defaults out of range are disabled; metadata overrides when in range.
        func special(_ key: String, _ current: Int32?) -> Int32? {
            var id = current
            if let c = id, c >= n { id = nil }
            if let v = meta[key]?.intValue, v >= 0, v < n { id = Int32(v) }
            return id
        }
        bos = special("tokenizer.ggml.bos_token_id", bos)
        eos = special("tokenizer.ggml.eos_token_id", eos)
        var eot = special("tokenizer.ggml.eot_token_id", nil)
        var eom = special("tokenizer.ggml.eom_token_id", nil)
        unknown = special("tokenizer.ggml.unknown_token_id", unk)
        separator = special("tokenizer.ggml.seperator_token_id", nil)
        padding = special("tokenizer.ggml.padding_token_id", nil)
        mask = special("tokenizer.ggml.mask_token_id", nil)
        var fimPre = special("tokenizer.ggml.fim_pre_token_id", nil)
        var fimSuf = special("tokenizer.ggml.fim_suf_token_id", nil)
        var fimMid = special("tokenizer.ggml.fim_mid_token_id", nil)
        var fimPad = special("tokenizer.ggml.fim_pad_token_id", nil)
        var fimRep = special("tokenizer.ggml.fim_rep_token_id", nil)
        var fimSep = special("tokenizer.ggml.fim_sep_token_id", nil)
        fimPre = special("tokenizer.ggml.prefix_token_id", fimPre)
        fimSuf = special("tokenizer.ggml.suffix_token_id", fimSuf)
        fimMid = special("tokenizer.ggml.middle_token_id", fimMid)

        if let v = bool("tokenizer.ggml.add_bos_token") { addBOS = v }
        if let v = bool("tokenizer.ggml.add_eos_token") { addEOS = v }
        if rule == .newlines && !addBOS { addBOS = true }  // llama.cpp forces BOS for Gemma 4

        // Auto-detection by text, as llama.cpp: it walks its token_to_id unordered_map and
        // keeps the first match per kind, so with several candidates we replay the map's
        // iteration order (see LibstdcxxMapOrder).
        let eotNames: Set<String> = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                     "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"]
        let fimPreNames: Set<String> = ["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>"]
        let fimSufNames: Set<String> = ["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>"]
        let fimMidNames: Set<String> = ["<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>"]
        let fimPadNames: Set<String> = ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]
        let fimRepNames: Set<String> = ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]
        let eogNames: Set<String> = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
                                     "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
                                     "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
                                     "<｜end▁of▁sentence｜>", "[e~["]

        // Which kinds each candidate text is, compared byte for byte. Bits 0-7 follow
        // `current` below, bit 8 is EOG, bit 9 the gpt-oss always-rendered tokens.
        let kinds: [Set<String>] = [eotNames, ["<|eom_id|>"], fimPreNames, fimSufNames, fimMidNames, fimPadNames, fimRepNames,
                                    ["<|file_sep|>"], eogNames, ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]]
        var kindMask: [[UInt8]: UInt16] = [:]
        for (k, names) in kinds.enumerated() {
            for name in names { kindMask[Array(name.utf8), default: 0] |= 1 << UInt16(k) }
        }
        var ids: [Int] = []       // tokens with at least one kind
        var masks: [UInt16] = []
        for i in 0..<n {
            let u = texts[i].utf8
            guard u.count <= 32, let f = u.first, f == 0x3C || f == 0x5B || f == 0x5F || f == 0xE2 else { continue }
            if let m = kindMask[Array(u)] {
                ids.append(i)
                masks.append(m)
            }
        }
        let current = [eot, eom, fimPre, fimSuf, fimMid, fimPad, fimRep, fimSep]
        var candidates = [[Int]](repeating: [], count: current.count)
        for (i, m) in zip(ids, masks) {
            for k in 0..<current.count where current[k] == nil && m & (1 << UInt16(k)) != 0 { candidates[k].append(i) }
        }
        var chosen = current
        if candidates.contains(where: { $0.count > 1 }), let position = LibstdcxxMapOrder.positions(of: texts) {
            for k in 0..<current.count where current[k] == nil {
                let visible = candidates[k].filter { position[$0] >= 0 }
                if let best = visible.min(by: { position[$0] < position[$1] }) { chosen[k] = Int32(best) }
            }
        } else {
            for k in 0..<current.count where current[k] == nil {
                if let best = candidates[k].last { chosen[k] = Int32(best) }
            }
        }
        for k in 0..<current.count where current[k] == nil {
            if let c = chosen[k] { attrs[Int(c)].insert(.control) }
        }
        eot = chosen[0]; eom = chosen[1]; fimPre = chosen[2]; fimSuf = chosen[3]
        fimMid = chosen[4]; fimPad = chosen[5]; fimRep = chosen[6]; fimSep = chosen[7]

        // Control tokens named "unused..." are unused.
        let unused = Array("unused".utf8)
        for i in 0..<n where attrs[i].contains(.control) && !attrs[i].contains(.unused) {
            if texts[i].utf8.count >= 6, Array(texts[i].utf8).containsSubsequence(unused) {
                attrs[i].insert(.unused)
            }
        }

        var eog = Set<Int32>()
        for id in [fimPad, fimRep, fimSep] { if let id { eog.insert(id) } }
        for (i, m) in zip(ids, masks) where m & (1 << 8) != 0 {
            eog.insert(Int32(i))
            attrs[i].insert(.control)
        }
        // gpt-oss: always render these.
        for (i, m) in zip(ids, masks) where m & (1 << 9) != 0 {
            attrs[i] = .userDefined
        }
        for id in [eos, eot, eom] { if let id { eog.insert(id) } }

        // o200k_harmony / solar-open: "<|end|>" is not EOG when "<|return|>"+"<|call|>" or
        // "<|calls|>"+"<|flush|>" are.
        do {
            var hasReturn = false, hasCall = false, hasEnd = false, hasFlush = false
            var endID: Int32? = nil
            for id in eog {
                let t = texts[Int(id)]
                if t == "<|return|>" { hasReturn = true }
                else if t == "<|call|>" || t == "<|calls|>" { hasCall = true }
                else if t == "<|flush|>" { hasFlush = true }
                else if t == "<|end|>" { hasEnd = true; endID = id }
            }
            if (hasReturn && hasCall && hasEnd) || (hasCall && hasFlush && hasEnd), let endID {
                eog.remove(endID)
                attrs[Int(endID)] = .userDefined
            }
        }
        // gemma4 / plamo: "</s>" is a normal token there.
        do {
            var hasMarker = false
            var sID: Int32? = nil
            for id in eog {
                let t = texts[Int(id)]
                if t == "<|tool_response>" || t == "<|plamo:eos|>" { hasMarker = true }
                else if t == "</s>" { sID = id }
            }
            if hasMarker, let sID {
                eog.remove(sID)
                attrs[Int(sID)] = .normal
            }
        }

        // Per-model attribute fixes (llama.cpp sets these by model name).
        let modelNameLower = (string("general.name") ?? "").lowercased()
        let arch = string("general.architecture") ?? ""
        func id(of text: String) -> Int? {
            // Last occurrence wins, as token_to_id.
            for i in stride(from: n - 1, through: 0, by: -1) where texts[i].utf8.elementsEqual(text.utf8) { return i }
            return nil
        }
        if ["jina-v2-de", "jina-v2-es", "jina-v2-code"].contains(where: { pre.contains($0) })
            || ["nomic-bert-moe", "jina-bert-v3"].contains(where: { arch.contains($0) }) {
            if let m = id(of: "<mask>") { attrs[m].insert(.lstrip) }
        } else if modelNameLower.contains("phi-3") || modelNameLower.contains("phi3") {
            for i in 0..<n where !attrs[i].isDisjoint(with: [.control, .userDefined, .unknown]) {
                attrs[i].insert(.rstrip)
            }
            if let s = id(of: "</s>") { attrs[s].insert(.rstrip) }
            for t in ["<unk>", "<s>", "<|endoftext|>"] { if let s = id(of: t) { attrs[s].remove(.rstrip) } }
        } else if modelNameLower.contains("modern-bert") {
            if let m = id(of: "[MASK]") { attrs[m].insert(.lstrip) }
        }

        self.attributes = attrs
        self.bos = bos; self.eos = eos; self.eot = eot; self.eom = eom
        self.fimPrefix = fimPre; self.fimSuffix = fimSuf; self.fimMiddle = fimMid
        self.fimPad = fimPad; self.fimRepo = fimRep; self.fimSeparator = fimSep
        self.addBOS = addBOS; self.addEOS = addEOS
        self.addSpacePrefix = addSpacePrefix
        self.cleanSpaces = cleanSpaces
        self.ignoreMerges = ignoreMerges
        self.escapeWhitespaces = rule == .newlines
        self.endOfGeneration = eog
    }

    struct PreSettings {
        var rule: SplitRule
        var cleanSpaces: Bool? = nil
        var ignoreMerges = false
        var addBOS = false
        var noBOS = false
    }

    /// llama.cpp's mapping from `tokenizer.ggml.pre` to regex set and flags.
    static func preTokenizerSettings(_ pre: String) throws(TokenizerError) -> PreSettings {
        switch pre {
        case "", "default": return PreSettings(rule: .default)
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano":
            return PreSettings(rule: .llama3, ignoreMerges: true, addBOS: true)
        case "deepseek-llm": return PreSettings(rule: .deepseekLLM, cleanSpaces: false)
        case "deepseek-coder": return PreSettings(rule: .deepseekCoder, cleanSpaces: false)
        case "falcon": return PreSettings(rule: .falcon)
        case "mpt", "olmo", "jais", "exaone4": return PreSettings(rule: .gpt2)
        case "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert",
             "jina-v1-en", "jina-v2-code", "roberta-bpe":
            return PreSettings(rule: .gpt2)
        case "trillion", "granite-docling": return PreSettings(rule: .gpt2, cleanSpaces: false)
        case "starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2": return PreSettings(rule: .digitsThenGPT2)
        case "command-r", "smollm": return PreSettings(rule: .digitsThenGPT2, cleanSpaces: false)
        case "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open", "grok-2":
            return PreSettings(rule: .qwen2, cleanSpaces: false)
        case "stablelm2", "megrez": return PreSettings(rule: .qwen2)
        case "qwen35": return PreSettings(rule: .qwen35, cleanSpaces: false)
        case "dbrx", "smaug-bpe": return PreSettings(rule: .llama3)
        case "chatglm-bpe": return PreSettings(rule: .llama3, noBOS: true)
        case "glm4", "glm5": return PreSettings(rule: .llama3, ignoreMerges: true, noBOS: true)
        case "poro-chat": return PreSettings(rule: .bloom, cleanSpaces: false)
        case "bloom", "gpt3-finnish": return PreSettings(rule: .bloom)
        case "viking": return PreSettings(rule: .viking, cleanSpaces: false)
        case "gemma4", "granite-embed-multi-311m": return PreSettings(rule: .newlines)
        default: throw .unsupportedPreTokenizer(pre)
        }
    }
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty else { return true }
        guard count >= needle.count else { return false }
        for i in 0...(count - needle.count) where self[i] == needle[0] {
            if self[i..<(i + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}
