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
  snippets.json            small templates exercising single features, with jinja2's output or error
  corpus_expected.json     FNV-1a 64 hash and length of the output (or the error) for every
                           template in llama.cpp's models/templates folder; the Swift corpus test
                           reads those templates from $SPARROW_TEMPLATE_CORPUS when it is set.

Usage:
  scripts/make_template_fixtures.py --sdist llama_cpp_python-0.3.36.tar.gz \\
      --smollm /work/models/SmolLM2-135M-Instruct.Q4_1.gguf \\
      --qwen-coder /work/models/qwen2.5-coder-0.5b-instruct.gguf \\
      [--corpus-dir /tmp/template-corpus]
  then: SPARROW_TEMPLATE_CORPUS=/tmp/template-corpus swift test --filter SparrowTemplateTests

Random differential testing (nothing is written under Fixtures/):
  scripts/make_template_fixtures.py --sdist x --smollm x --qwen-coder x --fuzz 4000 --seed 1 --fuzz-out /tmp/fuzz.json
  SPARROW_TEMPLATE_SNIPPETS=/tmp/fuzz.json swift test --filter SnippetTests
"""
import argparse
import datetime
import json
import os
import random
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



# ----------------------------------------------------------------------------- snippets
# Small templates exercising one feature each: (name, template, context as JSON text).
USERS = '{"users": [{"name": "a", "age": 30, "admin": true}, {"name": "b", "age": 41, "admin": false}, {"name": "c", "age": 25}]}'
DCTX = '{"d": {"a": 1, "b": [1, 2.0, null, true], "s": "x\\u2028y\\u0001"}, "l": [1, 2, 3], "t": [9], "x": false}'
SNIPPETS = [
    ("ws_lstrip_blocks", "  {% if true %}\n  x\n  {% endif %}\n  {{ 'y' }}  {% if true %}z{% endif %}\n", "{}"),
    ("ws_dash", "a  {{- 'b' -}}  c\n {%- if true -%} d {%- endif -%}  e", "{}"),
    ("ws_plus", "  {%+ if true %}x{% endif +%}\ny\n  {%+ if true -%} w {% endif %}", "{}"),
    ("ws_comments", "a\n  {# comment #}\nb {#- c -#}  c\n{#+ keep +#}\nd {# {{ x }} {% if %} #}ok", "{}"),
    ("ws_trim_newline", "{% for i in [1,2] %}\n{{ i }}\n{% endfor %}\n", "{}"),
    ("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc\r\n", "{}"),
    ("ws_raw", "{% raw %}{{ not }} {% if %}{% endraw %}|  {%- raw -%}  x  {%- endraw -%}  |", "{}"),
    ("ws_variable_then_block", "{{ 'a' }}\n    {% if true %}b{% endif %}\n\t{% if true %}c{% endif %}", "{}"),
    ("ws_trailing_newlines", "x\n\n", "{}"),
    ("ws_dash_unicode_space", "a\u3000\u00a0{{- 'b' }}", "{}"),
    ("print_scalars", "{{ 1 }} {{ 1.0 }} {{ 0.1 }} {{ 1e-5 }} {{ 1e16 }} {{ 123456789.123456789 }} {{ 1.5e300*1e10 }} {{ -0.0 }} {{ none }} {{ None }} {{ true }} {{ False }} {{ 'it' 's' }}", "{}"),
    ("print_containers", "{{ [1, 'a', none, 1.0, ('x',), {'k': \"it's\"}] }} {{ (1, 2) }} {{ () }} {{ {} }} {{ [] }} {{ {'b': 1, 'a': 2, 'b': 3} }}", "{}"),
    ("print_string_reprs", r"""{{ ['a\nb', 'tab\t', "q'", 'q"', 'both\'"', 'é', '\x00', '\u00a0', '🙂', '\x7f', '\u200b', 'back\\slash'] }}""", "{}"),
    ("string_escapes", r"""{{ 'a\tb\u00e9\x41\d\101\U0001F600' }}|{{ "dq\"" }}""", "{}"),
    ("number_literals", "{{ 1_000 }} {{ 0x1F }} {{ 0b101 }} {{ 0o17 }} {{ 1.5e3 }} {{ 2E-3 }} {{ 1_0.5 }}", "{}"),
    ("arithmetic", "{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 10 / 4 }} {{ 10 / 5 }} {{ 1 + true }} {{ 0.1 + 0.2 }} {{ 3 * 'ab' }} {{ [1] * 2 }} {{ 'a' ~ 1 ~ none ~ [1] }} {{ 'ab' * -1 }}|", "{}"),
    ("precedence", "{{ - 2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ 'x' ~ 2 * 3 }} {{ not 1 == 2 }} {{ -2|abs }} {{ -(2) }} {{ +2 }} {{ (1 + 2) * 3 }} {{ 'abc' if 'b' in 'abc' else 'no' }}", "{}"),
    ("precedence_concat_binds_tighter_than_plus", "{{ 1 + 2 ~ 3 }}", "{}"),
    ("comparisons", "{{ 1 == 1.0 }} {{ [1] == (1,) }} {{ 'a' < 'b' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'ab' in 'cabd' }} {{ 2 in [1,2] }} {{ 'k' in {'k': 1} }} {{ 'x' not in 'abc' }} {{ nope == nope }} {{ nope != 1 }} {{ {'a': 1} == {'a': 1.0} }} {{ [1, 2] < [1, 3] }}", "{}"),
    ("logic", "{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' or [] }}|{{ not 0 }} {{ none and 1 }} {{ nope or 'fallback' }}", "{}"),
    ("conditional_expression", "{{ 'a' if true else 'b' }}{{ 'c' if false }}|{{ (1 if false) is defined }}|{{ 'x' if nope else 'y' if true else 'z' }}", "{}"),
    ("attribute_and_index", "{{ d.a }} {{ d['a'] }} {{ d.missing is defined }} {{ l[0] }} {{ l[-1] }} {{ l[10] is defined }} {{ 'abc'[1] }} {{ t.0 }} {{ none.foo }}|{{ (none.foo) is defined }} {{ l['x'] is defined }} {{ d.s }}", DCTX),
    ("slices", "{{ 'abc'[::-1] }} {{ l[1:] }} {{ l[:-1] }} {{ l[::2] }} {{ [1,2,3,4,5][-2:] }} {{ l[5:] }} {{ 'hello'[1:-1] }} {{ l[::-2] }} {{ 'abc'[-10:2] }} {{ (1,2,3)[1:] }}", DCTX),
    ("dict_methods", "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 5) }} {{ d.keys()|list }} {{ d.values()|list|length }} {{ d.items()|list|first }} {{ d.keys() }} {{ {'x': 1}.items() }} {{ d.keys()|length }} {{ 'a' in d.keys() }} {{ d.keys()[0] is defined }}", DCTX),
    ("unsafe_attributes", "{{ l.append }}|{{ l.append is defined }}|{{ d.pop is defined }}|{{ d.__class__ is defined }}", DCTX),
    ("unsafe_call", "{{ l.append(4) }}", DCTX),
    ("undefined_attribute_raises", "{{ nope.foo }}", "{}"),
    ("undefined_behaviour", "{{ nope }}|{{ nope ~ 'x' }}|{{ nope|upper }}|{{ nope|trim }}|{{ nope is defined }}|{{ nope|list }}|{{ 'a' in nope }}|{{ nope|first is defined }}|{{ not nope }}|{{ nope|length }}|{{ nope|join(',') }}|{{ nope|default('d') }}|{{ nope is iterable }}|{{ nope|string }}|{{ nope|sort }}|{{ nope|reverse|list }}|{{ nope|unique|list }}|{{ nope|items|list }}|{{ nope|center(3) }}|{{ nope|sum }}|{{ nope|min }}|{{ nope|map('upper')|list }}|{{ nope|last }}|{{ nope|safe }}|{{ nope|wordcount }}|{{ nope|batch(2)|list }}|{{ nope|replace('a', 'b') }}", "{}"),
    ("undefined_int", "{{ nope|int }}", "{}"),
    ("undefined_indent", "{{ nope|indent }}", "{}"),
    ("loop_variables", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}[{{ loop.previtem }}|{{ loop.nextitem }}]{{ loop.depth }}{{ loop.depth0 }};{% endfor %}", "{}"),
    ("loop_else_and_filter", "{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.index }}/{{ loop.length }},{% else %}none{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1] if false %}x{% else %}filtered{% endfor %}|{% for x in nope %}x{% else %}undef{% endfor %}", "{}"),
    ("loop_unpacking", "{% for k, v in d|items %}{{ k }}={{ v }};{% endfor %}{% for k, v in d.items() %}{{ k }}{% endfor %}{% for a, (b, c) in [(1, (2, 3))] %}{{ a }}{{ b }}{{ c }}{% endfor %}{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}", DCTX),
    ("loop_controls", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %}|{% for i in [1, 2] %}{% for j in [1, 2] %}{% if j == 2 %}{% break %}{% endif %}{{ i }}{{ j }}{% endfor %}{% endfor %}", "{}"),
    ("loop_nesting", "{% for i in [1,2] %}{% for j in 'ab' %}{{ loop.index }}{{ j }}{% endfor %}{{ loop.index }};{% endfor %}", "{}"),
    ("loop_scoping", "{% set x = 5 %}{% for i in [1,2] %}[{{ x }}]{% set x = i %}{% endfor %}[{{ x }}]{% for i in [1,2] %}{% if i == 2 %}<{{ y }}>{% endif %}{% set y = i %}{% endfor %}<{{ y }}>{% set z = 1 %}{% if true %}{% set z = 2 %}{% endif %}{{ z }}", "{}"),
    ("loop_cycle", "{% for i in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}", "{}"),
    ("loop_over_none", "{% for x in none %}{% endfor %}", "{}"),
    ("range", "{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ range(3) }} {{ range(1, 9, 2) }} {{ range(3)|length }} {{ range(0) is sequence }} {{ range(4)[-1] }} {{ range(0)|list }}", "{}"),
    ("range_too_big", "{{ range(1000000)|length }}", "{}"),
    ("set_forms", "{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set c = 1, 2 %}{{ c }}{% set (e, f) = 'xy' %}{{ e }}{{ f }}", "{}"),
    ("set_block", "{%- set x -%}  hi {{ 1 }}  {%- endset -%}[{{ x }}]{% set y | upper | replace('B', 'b') %}abc{% endset %}{{ y }}", "{}"),
    ("namespaces", "{% set ns = namespace(a=1, b=[]) %}{% for i in [1,2,3] %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }} {{ ns }} {{ ns.b }} {{ ns.missing is defined }} {{ ns['a'] }}{% set ns2 = namespace({'x': 1}, y=2) %}{{ ns2.x }}{{ ns2.y }}", "{}"),
    ("namespace_assign_non_namespace", "{% set v = 1 %}{% set v.a = 2 %}", "{}"),
    ("macros", "{% macro m(a, b=2, c=a) %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 3) }} {{ m(1, c=9) }} {{ m() }}| {{ m(1)|length }} {{ m is callable }}", "{}"),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }}", "{}"),
    ("macro_too_many_arguments", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "{}"),
    ("macro_unknown_keyword", "{% macro m(a) %}{% endmacro %}{{ m(b=2) }}", "{}"),
    ("macro_scoping", "{% set x = 5 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 6 %}{{ m() }}{% for x in [7] %}{{ m() }}{% endfor %}{% macro n(k) %}{% set t = k * 2 %}{{ t }}{% endmacro %}{% set t = 1 %}{{ n(3) }}{{ t }}", "{}"),
    ("macro_recursion", "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}", "{}"),
    ("call_blocks", "{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inner{% endcall %}{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(v) each([1,2]) %}<{{ v }}>{% endcall %}", "{}"),
    ("filters_text", "{{ '  a b  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'Hello World'|upper }}|{{ 'ABC'|lower }}|{{ 'hello wORLD-foo(bar'|title }}|{{ 'hELLO'|capitalize }}|{{ 'aaa'|replace('a', 'b') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'abc'|replace('', '-') }}|{{ 'hello world, this is  fine'|wordcount }}|[{{ 'ab'|center(7) }}]|{{ 5|string }}{{ [1]|string }}", "{}"),
    ("filters_join_length_first_last", "{{ [1, 2, 3]|join(', ') }} {{ 'abc'|join('-') }} {{ [{'n': 'a'}, {'n': 'b'}]|join(',', attribute='n') }}|{{ 'héllo'|length }} {{ [1,2]|count }} {{ {'a':1}|length }} {{ 'e\u0301'|length }}|{{ [1,2,3]|first }} {{ [1,2,3]|last }} {{ 'abc'|first }} {{ 'abc'|last }} {{ []|first is defined }} {{ {'a': 1, 'b': 2}|first }} {{ {'a': 1, 'b': 2}|last }}", "{}"),
    ("filters_default_list", "{{ nope|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }} {{ none|default('x') }} {{ nope|d }}| {{ 'ab'|list }} {{ {'a': 1}|list }} {{ (1, 2)|list }}", "{}"),
    ("filters_numbers", "{{ '3.7'|int }} {{ 'x'|int }} {{ 'x'|int(5) }} {{ ' 42 '|int }} {{ '1A'|int(base=16) }} {{ '12'|float }} {{ 'abc'|float }} {{ 3|float }} {{ true|int }} {{ 4.9|int }} {{ '1e3'|int }} {{ '1_000'|int }} {{ -3|abs }} {{ -2.5|abs }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 3|round }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(method='floor') }} {{ ' -1.5 '|float }} {{ 'inf'|float }}", "{}"),
    ("filters_map_select", "{{ [1,2,3]|map('string')|join('-') }} {{ users|map(attribute='name')|list }} {{ users|map(attribute='admin', default=0)|list }} {{ [1,2,3,4]|select('odd')|list }} {{ [1,2,3]|reject('equalto', 2)|list }} {{ users|selectattr('admin')|map(attribute='name')|list }} {{ users|rejectattr('age', 'gt', 30)|map(attribute='name')|list }} {{ none|selectattr('x')|list }} {{ users|selectattr('name', 'in', ['b'])|map(attribute='age')|list }} {{ [0, 1, '', 'a']|select|list }} {{ ['a', 'b']|map('upper')|list }} {{ [[1, 2]]|map('join', '+')|list }}", USERS),
    ("generators", "{% set g = [1,2]|map('string') %}{{ g|list }}{{ g|list }}|{{ ([]|select) is defined }}|{% if []|select %}truthy{% endif %}|{{ [1,2]|select|first }}|{{ ([1]|select) is sequence }}{{ ([1]|select) is iterable }}|{% set h = [1, 2, 3]|select %}{{ 2 in h }}{{ h|list }}|{% for x in [3, 4]|reverse %}{{ x }}{% endfor %}", "{}"),
    ("generator_tojson", "{{ [1]|map('string')|tojson }}", "{}"),
    ("generator_length", "{{ [1]|select|length }}", "{}"),
    ("generator_last", "{{ [1]|select|last }}", "{}"),
    ("filters_items_dictsort", "{{ {'b': 1, 'a': 2}|items|list }} {{ nope|items|list }} {{ {'b': 1, 'A': 2, 'c': 0}|dictsort }} {{ {'b': 1, 'A': 2}|dictsort(true) }} {{ {'b': 1, 'a': 2}|dictsort(by='value') }} {{ {'b': 1, 'a': 2}|dictsort(reverse=true) }}", "{}"),
    ("filters_sort_unique_reverse", "{{ [3,1,2]|sort }} {{ ['b','A','a','C']|sort }} {{ ['b','A','a']|sort(case_sensitive=true) }} {{ [3,1,2]|sort(reverse=true) }} {{ users|sort(attribute='age')|map(attribute='name')|list }} {{ [1, 2.5, 0]|sort }} {{ ['b','A','a','b']|unique|list }} {{ ['b','A','a']|unique(case_sensitive=true)|list }} {{ [1,2]|reverse|list }} {{ 'abc'|reverse }} {{ (1,2)|reverse|list }} {{ {'a':1,'b':2}|reverse|list }} {{ users|sort(attribute='name', reverse=true)|map(attribute='name')|join }}", USERS),
    ("filters_sort_mixed_types", "{{ [1, 'a']|sort }}", "{}"),
    ("filters_min_max_sum_batch", "{{ [3,1,2]|min }} {{ [3,1,2]|max }} {{ ['b','A']|min }} {{ [1,2.5]|sum }} {{ users|sum(attribute='age') }} {{ []|max is defined }} {{ users|max(attribute='age')|attr('name') }} {{ [1,2,3,4,5]|batch(2)|list }} {{ [1,2,3]|batch(2, 'x')|list }}", USERS),
    ("tojson", "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ [d, [], {}]|tojson(indent=2) }}|{{ 'é\"\\n</'|tojson }}|{{ {'b': 1, 'a': [1.0, 1e-05, none, true]}|tojson(sort_keys=true) }}|{{ [1,2]|tojson(separators=(',', ':')) }}|{{ 'é🙂'|tojson(ensure_ascii=true) }}|{{ (1, 2)|tojson }}|{{ {1: 'a', none: 'b', true: 'c', 1.5: 'd'}|tojson }}|{{ d|tojson(indent='\\t') }}|{{ d|tojson(indent=0) }}|{{ 1e100|tojson }}", DCTX),
    ("tojson_undefined", "{{ nope|tojson }}", "{}"),
    ("markup", "{{ '<b>'|e }} {{ '<b>\"&\\''|escape }} {{ ('<b>'|safe) + '<' }} {{ 'a<' + ('<b>'|safe) }} {{ '<'|safe|e }} {{ '&'|forceescape }} {{ ('<a>'|safe) ~ '<' }} {{ ('<a>'|safe)|length }} {{ ('<a>'|safe) == '<a>' }} {{ (' x '|safe)|trim + '<' }} {{ 5|safe + '<' }}", "{}"),
    ("indent", "{{ 'x'|indent(2) }}|{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ 'a\\nb'|indent('> ') }}|{{ 'a\\nb\\n'|indent }}|{{ ''|indent(first=true) }}", "{}"),
    ("format_filter_and_percent", "{{ '%s-%05.1f|%d%%|%x|%r'|format('a', 3.14159, 42, 255, 'q') }} {{ '%(a)s'|format(a=1) }} {{ '%s=%d' % ('a', 3) }} {{ '%.2f' % 3.14159 }} {{ '%5s|%-5s|' % ('a', 'b') }} {{ '%(x)s' % {'x': 1} }} {{ '%s' % [1, 2] }} {{ '%s' % none }} {{ '%+d %03d %x %X %o %e %g %i' % (5, 7, 255, 255, 8, 12345.678, 0.0001, 3.9) }} {{ '%c%c' % (65, 'b') }}", "{}"),
    ("percent_not_enough_arguments", "{{ '%s %s' % ('a',) }}", "{}"),
    ("string_methods", "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(none, 1) }} {{ 'a-b-c'.rsplit('-', 1) }} {{ '  a  b  '.rsplit(none, 1) }} {{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'abc'.startswith('b', 1) }} {{ 'xabcx'.strip('x') }} {{ '  a '.lstrip() }}| {{ '  a '.rstrip() }}| {{ 'hello'.replace('l', 'L', 1) }} {{ 'Hello World'.lower() }} {{ \"they're bill's\".title() }} {{ 'abcabc'.find('c') }} {{ 'abc'.find('z') }} {{ 'abcabc'.rfind('b') }} {{ 'aaa'.count('a') }} {{ '-'.join(['a', 'b']) }} {{ 'ab'.upper() }} {{ 'a\\nb\\r\\nc\\x0bd'.splitlines() }} {{ 'x'.center(5, '*') }} {{ '42'.zfill(5) }} {{ '-4'.zfill(4) }} {{ 'a=b=c'.partition('=') }} {{ 'a=b=c'.rpartition('=') }} {{ 'prefix_x'.removeprefix('prefix_') }} {{ '123'.isdigit() }} {{ 'abc'.isalpha() }} {{ 'ABC'.isupper() }} {{ 'Hi'.swapcase() }} {{ 'hello world'.capitalize() }} {{ 'ab'.index('b') }} {{ 'x'.ljust(3, '.') }}{{ 'x'.rjust(3) }}", "{}"),
    ("str_format", "{{ '{} and {}'.format(1, 'x') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{name}!'.format(name='n') }} {{ '{:>5}|{:<5}|{:^5}|{:05d}|{:.2f}|{:x}|{!r}|{:+d}|{:*^7}'.format('a', 'b', 'c', 42, 3.14159, 255, 'q', 3, 'm') }} {{ '{{x}}'.format() }} {{ '{0[a]} {0.a}'.format({'a': 1}) }} {{ '{}'.format(1.0) }} {{ '{:>6}'.format(2.5) }} {{ '{}'.format(none) }}", "{}"),
    ("tests", "{{ 1 is odd }} {{ 2.0 is even }} {{ true is integer }} {{ 1.0 is integer }} {{ 1.0 is float }} {{ 'a' is sequence }} {{ d is sequence }} {{ 5 is iterable }} {{ d is mapping }} {{ none is none }} {{ nope is undefined }} {{ true is boolean }} {{ true is number }} {{ 9 is divisibleby 3 }} {{ 'a' is equalto 'a' }} {{ 'a' is eq 'b' }} {{ 3 is gt 2 }} {{ 3 is ge 3 }} {{ 1 is lt 2 }} {{ 1 is le 0 }} {{ 1 is ne 2 }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 2 is in [1, 2] }} {{ false is false }} {{ 0 is false }} {{ true is true }} {{ none is sameas none }} {{ x is sameas false }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ range is callable }} {{ 'x' is callable }} {{ ('<a>'|safe) is escaped }} {{ nope is iterable }} {{ nope is sequence }} {{ 1 is not none }} {{ nope is not defined }} {{ not nope is defined }} {{ 10 is divisibleby 5 }} {{ 'A1' is upper }} {{ '1' is lower }}", DCTX),
    ("globals", "{{ raise_exception is defined }} {{ dict(a=1, b=2) }} {{ dict([('x', 1)], y=2) }} {{ strftime_now('%d %b %Y %H:%M:%S %A %j %y %-d %B %p %I %m') }}", "{}"),
    ("raise_exception", "{{ raise_exception('boom ' ~ 1) }}", "{}"),
    ("raise_exception_in_macro", "{% macro check(v) %}{% if not v %}{{ raise_exception('bad value: ' ~ v) }}{% endif %}ok{% endmacro %}{{ check(1) }}{{ check(0) }}", "{}"),
    ("blocks_filter_with_generation", "{% filter upper %}abc{{ 'd' }}{% endfilter %}|{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a is defined }}|{% generation %}gen{% set inner = 1 %}{% endgeneration %}{{ inner is defined }}|{% if true: %}colon{% endif %}", "{}"),
    ("if_elif_else", "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}other{% endif %},{% endfor %}", "{}"),
    ("literals_trailing_commas", "{{ {'a': 1,} }} {{ [1, 2,] }} {{ (1, 2,) }} {{ {'a': {'b': [1, {'c': 2}]}} }}", "{}"),
    ("unicode_text", "{{ 'ÉCOLE'|lower }} {{ 'straße'|upper }} {{ 'éa'[0] }} {{ 'e\u0301'[1] == '\u0301' }}|{{ '🙂x'|length }} {{ 'aé'|reverse }} {{ ['é', 'e', 'f', 'E']|sort }} {{ 'ǆemal'|title }} {{ 'ß'.upper() }} {{ 'İ'.lower()|length }}", "{}"),
    ("unknown_filter_in_if_not_taken", "{% if false %}{{ x|nosuch }}{% endif %}ok{{ 'a' if true else (x|nosuch) }}", "{}"),
    ("unknown_filter_in_if_taken", "{% if true %}{{ x|nosuch }}{% endif %}", "{}"),
    ("unknown_filter_top_level", "{{ x|nosuch }}", "{}"),
    ("unknown_filter_in_loop_inside_if", "{% if false %}{% for i in [] %}{{ i|nosuch }}{% endfor %}{% endif %}", "{}"),
    ("unknown_test", "{{ x is nosuch }}", "{}"),
    ("unknown_tag", "{% foo %}", "{}"),
    ("unclosed_if", "{% if true %}x", "{}"),
    ("unclosed_variable", "{{ x", "{}"),
    ("unclosed_comment", "{# x", "{}"),
    ("break_outside_loop", "{% break %}", "{}"),
    ("type_error_add", "{{ 'a' + 1 }}", "{}"),
    ("type_error_compare", "{{ 1 < 'a' }}", "{}"),
    ("undefined_arithmetic", "{{ nope + 1 }}", "{}"),
    ("undefined_call", "{{ nope() }}", "{}"),
    ("not_callable", "{{ 5() }}", "{}"),
    ("unpack_error", "{% for a, b in [1] %}{% endfor %}", "{}"),
    ("unhashable_key", "{% set x = {[1]: 2} %}", "{}"),
    ("division_by_zero", "{{ 1 / 0 }}", "{}"),
    ("string_in_int", "{{ 'a' in 5 }}", "{}"),
    ("deep_nesting", "{{ " + "(" * 40 + "1" + ")" * 40 + " }}", "{}"),
]


# ----------------------------------------------------------------------------- fuzzing
# Random small templates for differential testing (not committed): write them with
#   --fuzz 3000 --fuzz-out /tmp/fuzz.json [--seed 1]
# and run `SPARROW_TEMPLATE_SNIPPETS=/tmp/fuzz.json swift test --filter SnippetTests`.
FUZZ_CONTEXT = {
    "s": "Hello, Wörld! <b>&'\"", "e": "", "n": 3, "f": 2.5, "z": 0, "neg": -7, "b": True, "nul": None,
    "l": [3, 1, 2], "ls": ["b", "A", "c", "a"], "emptyl": [], "emptyd": {},
    "ld": [{"name": "x", "v": 1, "t": True}, {"name": "y", "v": 2.0, "t": False}, {"name": "z", "v": None}],
    "d": {"k": "v", "num": 1, "nested": {"a": [1, {"b": "c"}]}, "items": 5},
    "u": "ünïcode 🙂 e\u0301 ß", "ws": "  \n padded\t ", "big": 123456, "tiny": 1e-07, "fl": [1.5, 0.1, 3.0],
}
FUZZ_ATOMS = [
    "s", "e", "n", "f", "z", "neg", "b", "nul", "l", "ls", "ld", "d", "emptyl", "emptyd", "u", "ws", "missing",
    "big", "tiny", "fl", "1", "0", "-2", "2.5", "1e-5", "'str'", "''", "'a,b c'", "none", "true", "false",
    "[1, 'x', none]", "{'a': 1, 'b': [2]}", "(1, 2)", "d.k", "d['num']", "d.nested.a", "ld[0]", "ld[-1].name",
    "l[1:]", "s[::-1]", "s[2]", "u[1]", "d.items", "d.missing", "ld[5]", "l[0]", "'%s-%d'", "range(4)", "loop",
]
FUZZ_FILTERS = [
    "upper", "lower", "title", "capitalize", "trim", "length", "count", "first", "last", "list", "string", "int",
    "float", "abs", "round", "round(1)", "reverse", "sort", "sort(reverse=true)", "unique", "dictsort", "items",
    "join", "join(', ')", "default('D')", "default('D', true)", "tojson", "tojson(indent=2)", "replace('l', 'L')",
    "map('string')", "map('upper')", "select", "reject", "selectattr('t')", "rejectattr('v', 'none')",
    "map(attribute='name')", "sum", "min", "max", "e", "safe", "indent(2)", "indent(2, true)", "wordcount",
    "batch(2)", "center(9)", "d", "format(1, 2)", "trim('H')", "int(7)", "join('|', attribute='name')",
    "map(attribute='v', default=0)", "select('odd')", "select('string')", "unique(attribute='t')", "sort(attribute='v')",
]
FUZZ_TESTS = [
    "defined", "undefined", "none", "string", "mapping", "iterable", "sequence", "number", "integer", "float",
    "boolean", "true", "false", "odd", "even", "divisibleby 2", "equalto 3", "in [1, 2, 3]", "lower", "upper",
    "callable", "eq 'v'", "gt 1", "le 2.5", "sameas none", "escaped",
]
FUZZ_METHODS = [
    ".upper()", ".split()", ".split(',')", ".strip()", ".startswith('H')", ".replace('l', 'L')", ".title()",
    ".find('o')", ".count('l')", ".lstrip('H')", ".rsplit(' ', 1)", ".endswith('!')", ".format(1, 2)",
    ".get('k')", ".get('nope', 1)", ".keys()", ".items()", ".values()", ".index(1)", ".splitlines()", ".isdigit()",
]
FUZZ_BINOPS = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in", "and", "or"]


def fuzz_expr(rng, depth):
    r = rng.random()
    if depth <= 0 or r < 0.25:
        return rng.choice(FUZZ_ATOMS)
    if r < 0.45:
        e = fuzz_expr(rng, depth - 1)
        for _ in range(rng.randint(1, 2)):
            e = f"{e}|{rng.choice(FUZZ_FILTERS)}"
        return e
    if r < 0.55:
        return f"{fuzz_expr(rng, depth - 1)} is {rng.choice(['', 'not '])}{rng.choice(FUZZ_TESTS)}"
    if r < 0.72:
        return f"({fuzz_expr(rng, depth - 1)} {rng.choice(FUZZ_BINOPS)} {fuzz_expr(rng, depth - 1)})"
    if r < 0.80:
        return f"({fuzz_expr(rng, depth - 1)} if {fuzz_expr(rng, depth - 1)} else {fuzz_expr(rng, depth - 1)})"
    if r < 0.85:
        return f"not {fuzz_expr(rng, depth - 1)}"
    if r < 0.95:
        return f"{rng.choice(['s', 'u', 'ws', 'd', 'l', 'e', 'ls', 'n'])}{rng.choice(FUZZ_METHODS)}"
    return f"[{fuzz_expr(rng, depth - 1)}, {fuzz_expr(rng, depth - 1)}]"


def fuzz_statement(rng, depth):
    ws = lambda: rng.choice(["", "", "-", "+"]) if rng.random() < 0.5 else ""  # noqa: E731
    pad = lambda: rng.choice(["", " ", "\n", "  ", "\n  ", "\t", " \n\n "])  # noqa: E731
    kind = rng.random()
    if kind < 0.4 or depth <= 0:
        return f"{pad()}{{{{{rng.choice(['', '-'])} {fuzz_expr(rng, 3)} {rng.choice(['', '-'])}}}}}{pad()}"
    if kind < 0.6:
        body = lambda: fuzz_statement(rng, depth - 1)  # noqa: E731
        return (f"{pad()}{{%{ws()} if {fuzz_expr(rng, 2)} {ws()}%}}{body()}{{%{ws()} elif {fuzz_expr(rng, 2)} %}}"
                f"{body()}{{% else {ws()}%}}{body()}{{%{ws()} endif {ws()}%}}{pad()}")
    if kind < 0.8:
        it = rng.choice(["l", "ls", "ld", "d", "s", "emptyl", "range(3)", "missing", "ld|map(attribute='name')", "d.items()", "[1, 2, 3]"])
        cond = f" if {fuzz_expr(rng, 1)}" if rng.random() < 0.2 else ""
        return (f"{pad()}{{%{ws()} for x in {it}{cond} {ws()}%}}{pad()}{{{{ loop.index }}}}:{{{{ x }}}}"
                f"{fuzz_statement(rng, depth - 1)}{{% if loop.last %}}.{{% endif %}}{{% else %}}none{{%{ws()} endfor {ws()}%}}{pad()}")
    if kind < 0.86:
        return f"{pad()}{{%{ws()} set v = {fuzz_expr(rng, 2)} {ws()}%}}{pad()}[{{{{ v }}}}]"
    if kind < 0.88:
        return f"{pad()}{{#{ws()} comment {ws()}#}}{pad()}"
    inner = fuzz_statement(rng, depth - 1)
    return rng.choice([
        f"{{% macro m(a, b=2, c=none) %}}{pad()}{{{{ a }}}}-{{{{ b }}}}-{{{{ c }}}}{inner}{{% endmacro %}}{pad()}{{{{ m({fuzz_expr(rng, 1)}) }}}}|{{{{ m(1, c={fuzz_expr(rng, 1)}) }}}}",
        f"{{% set ns = namespace(k=0, acc=[]) %}}{{% for x in {rng.choice(['l', 'ls', 'ld', 'range(3)', 's'])} %}}{{% set ns.k = ns.k + 1 %}}{{% set ns.acc = ns.acc + [x] %}}{inner}{{% endfor %}}{pad()}{{{{ ns.k }}}} {{{{ ns.acc }}}}",
        f"{{%{ws()} set blk {ws()}%}}{pad()}{inner}{pad()}{{%{ws()} endset {ws()}%}}[{{{{ blk }}}}]",
        f"{{% filter {rng.choice(['upper', 'trim', 'title', 'e', 'indent(2)', 'replace(' + repr('a') + ', ' + repr('@') + ')'])} %}}{pad()}{inner}{pad()}{{% endfilter %}}",
        f"{{% for x in {rng.choice(['l', 'ls', 'range(5)', 's'])} %}}{{% if loop.index is even %}}{{%{ws()} continue {ws()}%}}{{% endif %}}{{{{ loop.previtem }}}}>{{{{ x }}}}<{{{{ loop.nextitem }}}}{{{{ loop.cycle('a', 'b') }}}}{{% if loop.index > 3 %}}{{% break %}}{{% endif %}}{inner}{{% endfor %}}",
        f"{{% with w = {fuzz_expr(rng, 1)} %}}{pad()}[{{{{ w }}}}]{inner}{{% endwith %}}",
        f"{pad()}{{%{ws()} raw {ws()}%}}{pad()}{{{{ raw }}}}{{% if %}}{pad()}{{%{ws()} endraw {ws()}%}}{pad()}",
        f"{{{{ {rng.choice(FUZZ_STRINGS)} }}}}",
        f"{{% for k, v in {rng.choice(['d|items', 'd.items()', '{' + repr('x') + ': 1}|dictsort', 'ld|batch(2)'])} %}}{{{{ k }}}}={{{{ v }}}};{inner}{{% endfor %}}",
    ])


FUZZ_STRINGS = [
    r"'tab\tnl\ncr\r'", r"'\u00e9\U0001F600\x41'", r"'quote\'s'", r'"dq\"s"', r"'back\\slash'", r"'\d\w'",
    r"'a' 'b' \"c\"", r"'%s and %%' % 'x'", r"'{}-{}'.format(1, 'a')", r"'{{ not a tag }}'", r"'😀'|length",
]


def fuzz_snippets(count, seed):
    rng = random.Random(seed)
    out = []
    for i in range(count):
        source = "".join(fuzz_statement(rng, 2) for _ in range(rng.randint(1, 3)))
        out.append((f"fuzz_{seed}_{i}", source, json.dumps(FUZZ_CONTEXT, ensure_ascii=False)))
    return out

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


def run_snippet(template, context):
    try:
        return {"output": template.render(**context)}
    except TemplateRaised as e:
        return {"error": "raised", "message": str(e)}
    except Exception as e:  # noqa: BLE001
        return {"error": type(e).__name__, "message": str(e)}


def write_snippets(env, snippets, path, time_limit=0):
    """Renders snippets; with time_limit (seconds, fuzzing only) a runaway render is skipped."""
    import signal

    def timeout(signum, frame):
        raise TimeoutError

    results = []
    for name, source, context in snippets:
        if time_limit:
            signal.signal(signal.SIGALRM, timeout)
            signal.alarm(time_limit)
            try:
                env.from_string(source).render(**json.loads(context))
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001 - errors are recorded below
                pass
            finally:
                signal.alarm(0)
        entry = {"name": name, "template": source, "context": context}
        try:
            template = env.from_string(source)
        except Exception as e:  # noqa: BLE001
            entry.update({"error": "compile", "message": f"{type(e).__name__}: {e}"})
        else:
            entry.update(run_snippet(template, json.loads(context)))
        results.append(entry)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"fixed_now": FIXED_NOW.isoformat(), "snippets": results}, f, ensure_ascii=False, indent=1)
        f.write("\n")


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
    ap.add_argument("--fuzz", type=int, default=0, help="only write this many random snippets to --fuzz-out")
    ap.add_argument("--fuzz-out", default="/tmp/template-fuzz.json")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    env = make_env()
    if args.fuzz:
        write_snippets(env, fuzz_snippets(args.fuzz, args.seed), args.fuzz_out, time_limit=2)
        print(f"wrote {args.fuzz} random snippets to {args.fuzz_out}")
        return

    sdist = read_sdist_templates(args.sdist)
    gguf_sources = {"smollm": read_gguf_template(args.smollm), "qwen_coder": read_gguf_template(args.qwen_coder)}

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

    write_snippets(env, SNIPPETS, os.path.join(FIXTURES, "snippets.json"))

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
