#!/usr/bin/env python3
"""Render chat templates with Python jinja2 exactly as transformers' apply_chat_template does,
to produce the fixtures that Sparrow's Swift template interpreter is tested against.

jinja2 is configured as in transformers (utils/chat_template_utils.py):
  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                extensions=[<generation tag>, jinja2.ext.loopcontrols])
  filters["tojson"] = json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)
  globals["raise_exception"] raises jinja2.TemplateError(message)
  globals["strftime_now"] = datetime.now().strftime, pinned here to FIXED_NOW
and rendered as render(messages=..., tools=tools_or_None, documents=documents_or_None,
add_generation_prompt=..., bos_token=..., eos_token=..., **other_request_keys).

Outputs (under Tests/SparrowTemplateTests/Fixtures/):
  templates/<name>.jinja   the required templates
  cases.json               {case name: request JSON text}, the input of ChatTemplate.render(requestJSON:)
  expected.json            full expected output (or error) per required template and case
  corpus_expected.json     FNV-1a 64 hash and length of the output (or the error) for every
                           template in llama.cpp's models/templates folder; the Swift corpus test
                           reads those templates from $SPARROW_TEMPLATE_CORPUS when it is set.

Usage:
  scripts/make_template_fixtures.py --sdist llama_cpp_python-0.3.36.tar.gz \\
      --smollm /work/models/SmolLM2-135M-Instruct.Q4_1.gguf \\
      --qwen-coder /work/models/qwen2.5-coder-0.5b-instruct.gguf \\
      [--corpus-dir /tmp/template-corpus]
"""
import argparse
import datetime
import json
import os
import tarfile

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIXED_NOW = datetime.datetime(2025, 3, 14, 9, 26, 53)
BOS = "<|bos|>"
EOS = "<|eos|>"
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "SparrowTemplateTests", "Fixtures")

# Fixture name -> file name in llama.cpp's models/templates (or "gguf:<arg>" for a GGUF's template).
REQUIRED = {
    "Qwen2.5-7B-Instruct": "Qwen-Qwen2.5-7B-Instruct.jinja",
    "Qwen2.5-Coder-0.5B-Instruct": "gguf:qwen_coder",
    "Qwen3-0.6B": "Qwen-Qwen3-0.6B.jinja",
    "Qwen3-Coder": "Qwen3-Coder.jinja",
    "Qwen3.5-4B": "Qwen3.5-4B.jinja",
    "Llama-3.1-8B-Instruct": "meta-llama-Llama-3.1-8B-Instruct.jinja",
    "Llama-3.2-3B-Instruct": "meta-llama-Llama-3.2-3B-Instruct.jinja",
    "SmolLM2-135M-Instruct": "gguf:smollm",
}


class TemplateRaised(jinja2.TemplateError):
    """What raise_exception raises (a jinja2 TemplateError, as in transformers), told apart here."""


def raise_exception(message):
    raise TemplateRaised(message)


class GenerationTag(jinja2.ext.Extension):
    """transformers' {% generation %} tag: renders its body (assistant-mask tracking omitted)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller):
        return caller()


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def make_env():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: FIXED_NOW.strftime(fmt)
    return env


def render(template, request):
    """apply_chat_template's render call for one request dict."""
    special = {"messages", "tools", "documents", "add_generation_prompt"}
    kwargs = {"bos_token": BOS, "eos_token": EOS}
    kwargs.update({k: v for k, v in request.items() if k not in special})
    return template.render(
        messages=request["messages"],
        tools=request.get("tools"),
        documents=request.get("documents"),
        add_generation_prompt=request.get("add_generation_prompt", False),
        **kwargs,
    )


# ----------------------------------------------------------------------------- conversations

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather — météo actuelle 🌦 for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": 'City name, e.g. "Zürich"'},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
                "days": {"type": "integer", "description": "Forecast days", "minimum": 1, "maximum": 7, "default": 1},
                "options": {
                    "type": "object",
                    "description": "Extra options",
                    "properties": {
                        "hourly": {"type": "boolean"},
                        "fields": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["hourly"],
                },
            },
            "required": ["city"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Search the knowledge base. 検索します。",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for"},
                "limit": {"type": "number", "description": "Max results", "default": 2.5},
            },
            "required": ["query"],
        },
    },
}
TOOLS = [WEATHER, SEARCH]
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
ASK_WEATHER = {"role": "user", "content": "What's the weather in Paris?"}
WEATHER_ARGS = {"city": "Paris", "unit": "celsius", "days": 3, "options": {"hourly": True, "fields": ["temp", "wind"]}}
WEATHER_RESULT = {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": '{"temperature": 21.5, "condition": "sunny"}'}


def call(name, arguments, call_id="call_1"):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


CASES = {
    "system_user": {"messages": [SYSTEM, {"role": "user", "content": "Hello! How are you?"}], "add_generation_prompt": True},
    "user_only_no_generation_prompt": {"messages": [{"role": "user", "content": "What is 2+2?"}]},
    "multi_turn": {
        "messages": [
            SYSTEM,
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Tell me a joke."},
            {"role": "assistant", "content": "Why did the chicken cross the road?"},
            {"role": "user", "content": "Why?"},
        ],
        "add_generation_prompt": True,
    },
    "tools": {"messages": [SYSTEM, ASK_WEATHER], "tools": TOOLS, "add_generation_prompt": True},
    "tools_no_system": {"messages": [ASK_WEATHER], "tools": TOOLS, "add_generation_prompt": True},
    "tool_call_dict_arguments": {
        "messages": [
            ASK_WEATHER,
            {"role": "assistant", "content": "", "tool_calls": [call("get_weather", WEATHER_ARGS)]},
            WEATHER_RESULT,
            {"role": "assistant", "content": "It is 21.5°C and sunny in Paris."},
            {"role": "user", "content": "Thanks!"},
        ],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
    "tool_call_string_arguments": {
        "messages": [
            SYSTEM,
            ASK_WEATHER,
            {"role": "assistant", "content": None, "tool_calls": [call("get_weather", json.dumps(WEATHER_ARGS))]},
            WEATHER_RESULT,
        ],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
    "parallel_tool_calls": {
        "messages": [
            {"role": "user", "content": "Weather in Paris and docs about umbrellas?"},
            {
                "role": "assistant",
                "content": "Let me check both.",
                "tool_calls": [
                    call("get_weather", {"city": "Paris"}, "call_1"),
                    call("search_docs", {"query": "umbrella", "limit": 3}, "call_2"),
                ],
            },
            WEATHER_RESULT,
            {"role": "tool", "tool_call_id": "call_2", "name": "search_docs", "content": "Umbrellas keep you dry."},
        ],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
    "tool_argument_scalars": {
        "messages": [
            {"role": "user", "content": "Run it."},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    call(
                        "search_docs",
                        {
                            "x": 1.0,
                            "y": 1e-05,
                            "z": 0.1,
                            "n": -3,
                            "flag": True,
                            "off": False,
                            "nothing": None,
                            "list": [1, 2.5, "a"],
                            "text": 'multi\nline "quoted" é',
                        },
                    )
                ],
            },
        ],
        "tools": [SEARCH],
    },
    "reasoning_content": {
        "messages": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "The answer is 4.", "reasoning_content": "2+2=4, simple."},
            {"role": "user", "content": "And 3+3?"},
            {"role": "assistant", "content": "6", "reasoning_content": "3+3=6.\n"},
        ],
    },
    "think_in_content": {
        "messages": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "<think>\nAdd them.\n</think>\n\nIt is 4."},
            {"role": "user", "content": "Sure?"},
            {"role": "assistant", "content": "<think>\nYes.\n</think>\n\nYes, 4."},
        ],
    },
    "enable_thinking_false": {
        "messages": [{"role": "user", "content": "Quick answer please."}],
        "add_generation_prompt": True,
        "enable_thinking": False,
    },
    "enable_thinking_true": {
        "messages": [SYSTEM, {"role": "user", "content": "Think hard."}],
        "add_generation_prompt": True,
        "enable_thinking": True,
    },
    "unicode": {
        "messages": [
            {"role": "system", "content": "Réponds en français 🇫🇷."},
            {
                "role": "user",
                "content": "日本語で: 'single' \"double\" back\\slash {{ not a tag }} {% nope %} tab\t"
                " e\u0301 \u2028 zero\u200bwidth 👩‍💻",
            },
        ],
        "add_generation_prompt": True,
    },
    "whitespace_content": {
        "messages": [
            {"role": "user", "content": "  padded message  \n\n"},
            {"role": "assistant", "content": "\n\n  answer  \n"},
            {"role": "user", "content": "ok"},
        ],
        "add_generation_prompt": True,
    },
    "empty_messages": {"messages": [], "add_generation_prompt": True},
    "extra_kwargs": {
        "messages": [SYSTEM, {"role": "user", "content": "Hi"}],
        "tools": [WEATHER],
        "add_generation_prompt": True,
        "date_string": "01 Jan 2025",
        "tools_in_user_message": False,
        "custom_flag": {"nested": [1, 2]},
    },
    "assistant_prefill": {
        "messages": [{"role": "user", "content": "Write a haiku."}, {"role": "assistant", "content": "Autumn moonlight—"}],
    },
    "content_parts": {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Describe this."}, {"type": "image"}]},
        ],
        "add_generation_prompt": True,
    },
}


# ----------------------------------------------------------------------------- sources


def read_sdist_templates(path):
    """{file name: text} of vendor/llama.cpp/models/templates/*.jinja in the sdist (tarball or folder)."""
    out = {}
    if os.path.isdir(path):
        folder = os.path.join(path, "vendor", "llama.cpp", "models", "templates")
        for name in sorted(os.listdir(folder)):
            if name.endswith(".jinja"):
                with open(os.path.join(folder, name), encoding="utf-8", newline="") as f:
                    out[name] = f.read()
        return out
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) >= 2 and "/".join(parts[-5:-1]) == "vendor/llama.cpp/models/templates" and parts[-1].endswith(".jinja"):
                out[parts[-1]] = tar.extractfile(member).read().decode("utf-8")
    return out


def read_gguf_template(path):
    import gguf

    reader = gguf.GGUFReader(path)
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for b in text.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def run_case(env_template, request):
    try:
        return {"output": render(env_template, request)}
    except TemplateRaised as e:
        return {"error": "raised", "message": str(e)}
    except Exception as e:  # noqa: BLE001 - any jinja2/Python failure is an expected error
        return {"error": type(e).__name__, "message": str(e)}


def render_all(env, source):
    try:
        template = env.from_string(source)
    except Exception as e:  # noqa: BLE001
        return None, {"error": type(e).__name__, "message": str(e)}
    return {name: run_case(template, request) for name, request in CASES.items()}, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sdist", required=True, help="llama_cpp_python-0.3.36.tar.gz or its extracted folder")
    ap.add_argument("--smollm", required=True, help="SmolLM2-135M-Instruct GGUF")
    ap.add_argument("--qwen-coder", required=True, help="qwen2.5-coder-0.5b-instruct GGUF")
    ap.add_argument("--corpus-dir", help="also write every sdist template here, for the corpus test")
    args = ap.parse_args()

    sdist = read_sdist_templates(args.sdist)
    gguf_sources = {"smollm": read_gguf_template(args.smollm), "qwen_coder": read_gguf_template(args.qwen_coder)}
    env = make_env()

    os.makedirs(os.path.join(FIXTURES, "templates"), exist_ok=True)
    with open(os.path.join(FIXTURES, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({name: json.dumps(req, ensure_ascii=False) for name, req in CASES.items()}, f, ensure_ascii=False, indent=1)
        f.write("\n")

    results = []
    for name, origin in REQUIRED.items():
        source = gguf_sources[origin[5:]] if origin.startswith("gguf:") else sdist[origin]
        with open(os.path.join(FIXTURES, "templates", name + ".jinja"), "w", encoding="utf-8", newline="") as f:
            f.write(source)
        outcomes, compile_error = render_all(env, source)
        if compile_error:
            results.append({"template": name, "compile_error": compile_error})
            continue
        for case, outcome in outcomes.items():
            results.append({"template": name, "case": case, **outcome})
    expected = {"fixed_now": FIXED_NOW.isoformat(), "bos_token": BOS, "eos_token": EOS, "results": results}
    with open(os.path.join(FIXTURES, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
        f.write("\n")

    corpus = []
    if args.corpus_dir:
        os.makedirs(args.corpus_dir, exist_ok=True)
    for file_name, source in sorted(sdist.items()):
        if args.corpus_dir:
            with open(os.path.join(args.corpus_dir, file_name), "w", encoding="utf-8", newline="") as f:
                f.write(source)
        outcomes, compile_error = render_all(env, source)
        entry = {"template": file_name, "source_fnv1a64": fnv1a64(source)}
        if compile_error:
            entry["compile_error"] = compile_error
        else:
            entry["cases"] = {
                case: (
                    {"fnv1a64": fnv1a64(o["output"]), "length": len(o["output"].encode("utf-8"))}
                    if "output" in o
                    else o
                )
                for case, o in outcomes.items()
            }
        corpus.append(entry)
    with open(os.path.join(FIXTURES, "corpus_expected.json"), "w", encoding="utf-8") as f:
        json.dump({"fixed_now": FIXED_NOW.isoformat(), "bos_token": BOS, "eos_token": EOS, "templates": corpus}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    ok = sum(1 for r in results if "output" in r)
    print(f"required: {len(results)} results ({ok} outputs); corpus: {len(corpus)} templates")


if __name__ == "__main__":
    main()
