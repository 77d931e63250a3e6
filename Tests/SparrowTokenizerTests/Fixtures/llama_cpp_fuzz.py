"""Differential fuzzing data for DifferentialTests.swift: random strings tokenized and
detokenized by llama.cpp (through llama-cpp-python), plus every token's piece and the
vocabulary's special ids.

Usage: SPARROW_FUZZ_DIR=/tmp/sparrow-fuzz llama_cpp_fuzz.py qwen2 llama-spm ... [path/to/model.gguf]
Vocab names are looked up in $SPARROW_VOCAB_DIR (default ~/.cache/sparrow/vocab).
Then: SPARROW_FUZZ_DIR=/tmp/sparrow-fuzz swift test --filter Differential
"""
import ctypes, json, os, random, sys
import llama_cpp

VOCAB_DIR = os.environ.get("SPARROW_VOCAB_DIR") or os.path.expanduser("~/.cache/sparrow/vocab")
OUT_DIR = os.environ.get("SPARROW_FUZZ_DIR", "/tmp/sparrow-fuzz")
os.makedirs(OUT_DIR, exist_ok=True)
N = int(os.environ.get("FUZZ_N", "400"))

def pools(specials):
    ascii_letters = [chr(c) for c in range(0x41, 0x5B)] + [chr(c) for c in range(0x61, 0x7B)]
    digits = list("0123456789") + ["٣", "१", "①", "½", "Ⅻ", "𝟗"]
    punct = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["…", "。", "，", "、", "«", "»", "—", "‘", "’", "“", "”", "¿", "¡", "·", "§"]
    ws = [" ", " ", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\r", "\u000b", "\u000c", "\u00a0", "\u3000", "\u2028", "\u0085", "\u2003", "\u202f"]
    contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ll", "'x", "'"]
    latin = ["é", "ü", "ß", "ñ", "ø", "Å", "œ", "ı", "İ", "ǅ", "K", "ſ", "µ", "ª"]
    marks = ["\u0301", "\u0308", "\u0303", "\u0327", "\u20dd", "\u0e31", "\u093f", "\u05b7"]
    scripts = ["日", "本", "語", "中", "文", "한", "국", "어", "ア", "カ", "ひ", "ら", "Ж", "ы", "λ", "Ω", "א", "ع", "ह", "ि", "ท", "ີ", "ა", "Ա", "ᚠ", "ꙮ", "龥", "一", "ࠀ", "퟿"]
    emoji = ["🦙", "🚀", "😀", "👍🏽", "😶‍🌫️", "👨‍👩‍👧", "🇫🇷", "✅", "❤️", "🪿", "\u200d", "\ufe0f", "𝄞", "𐍈"]
    odd = ["\u0378", "\ue000", "\U0010fffd", "\ufffd", "\u00ad", "\u200b", "\u2060", "\x00", "\x01", "\x7f", "\u0600", "\U000e0001"]
    words = ["Hello", "world", "the", "tokenizer", "func", "return", "x86_64", "3.14", "1000000", "can't", "I'm", "HTTP", "a" * 7, "def", "if", "else"]
    sp = specials + [s[:3] for s in specials[:4]] + ["<|", "|>", "<s", "</", "<0x41>", "▁", "Ġ"]
    return [ascii_letters, digits, punct, ws, contractions, latin, marks, scripts, emoji, odd, words, sp]

def rand_string(rng, P):
    n = rng.randint(0, 24)
    out = []
    weights = [10, 5, 6, 8, 3, 3, 2, 4, 3, 1, 8, 3]
    for _ in range(n):
        pool = rng.choices(P, weights=weights)[0]
        if not pool:
            continue
        out.append(rng.choice(pool))
    return "".join(out)

def main(name, path):
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    # specials = control/user-defined token texts
    specials = []
    for i in range(n_vocab):
        attr = llama_cpp.llama_vocab_get_attr(vocab, i)
        if attr & (8 | 16):
            t = llama_cpp.llama_vocab_get_text(vocab, i)
            specials.append(t.decode("utf-8", "replace"))
    specials = specials[:60]
    rng = random.Random(sum(name.encode()))
    P = pools(specials)
    cases = []
    buf = ctypes.create_string_buffer(1 << 16)
    def detok(ids, special):
        arr = (llama_cpp.llama_token * len(ids))(*ids)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, len(buf), False, special)
        assert n >= 0
        return list(buf.raw[:n])
    for k in range(N + 5):
        s = rand_string(rng, P) if k < N else " ".join(rand_string(rng, P) for _ in range(600))
        b = s.encode("utf-8")
        c = {"text": s}
        for add, special in [(False, False), (True, True), (False, True)]:
            ids = llm.tokenize(b, add_bos=add, special=special)
            c[f"t{int(add)}{int(special)}"] = ids
        c["d0"] = detok(c["t11"], False)
        c["d1"] = detok(c["t11"], True)
        cases.append(c)
    # all pieces (special = true) and a hidden-special flag
    pieces = []
    pbuf = ctypes.create_string_buffer(4096)
    for i in range(n_vocab):
        n = llama_cpp.llama_token_to_piece(vocab, i, pbuf, len(pbuf), 0, True)
        assert n >= 0
        pieces.append(list(pbuf.raw[:n]))
    meta = {
        "bos": llama_cpp.llama_vocab_bos(vocab), "eos": llama_cpp.llama_vocab_eos(vocab), "eot": llama_cpp.llama_vocab_eot(vocab),
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)), "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(vocab)),
        "eog": [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)],
        "control": [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_control(vocab, i)],
    }
    with open(os.path.join(OUT_DIR, f"{name}.json"), "w") as f:
        json.dump({"path": path, "meta": meta, "cases": cases, "pieces": pieces}, f)
    print(name, len(cases), "eot", meta["eot"], "eog", meta["eog"][:12])

for name in sys.argv[1:]:
    if name.endswith(".gguf"):
        main(os.path.basename(name), name)
    else:
        main(name, f"{VOCAB_DIR}/ggml-vocab-{name}.gguf")
