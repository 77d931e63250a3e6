import Foundation
import SparrowTokenizer
import Testing

/// Renders `source` with `context`; expectations below were checked against Python jinja2 3.1
/// configured as transformers configures it.
func render(_ source: String, _ context: [String: JinjaValue] = [:]) throws(TemplateError) -> String {
    try ChatTemplate(source: source).render(context)
}

/// The error a render throws, or nil.
func renderError(_ source: String, _ context: [String: JinjaValue] = [:]) -> TemplateError? {
    do {
        _ = try render(source, context)
        return nil
    } catch {
        return error
    }
}

@Suite("Whitespace control")
struct WhitespaceTests {
    @Test("trim_blocks eats the newline after a block tag; lstrip_blocks the indentation before it")
    func trimAndLstrip() throws {
        #expect(try render("{% for i in [1, 2] %}\n  {{ i }}\n{% endfor %}\n") == "  1\n  2\n")
        #expect(try render("  {% if true %}\n  x\n  {% endif %}\n  {{ 'y' }}  {% if true %}z{% endif %}") == "  x\n  y  z")
    }

    @Test("A dash strips all whitespace on its side, newlines included")
    func dash() throws {
        #expect(try render("a  \n {{- 'b' -}} \n\n c") == "abc")
        #expect(try render("x\n  {%- if true -%}\n  y\n{%- endif %}") == "xy")
    }

    @Test("A plus disables lstrip_blocks (before) and trim_blocks (after)")
    func plus() throws {
        #expect(try render("  {%+ if true %}x{% endif +%}\ny") == "  x\ny")
    }

    @Test("Comments vanish and trim like blocks; one trailing newline of the template is dropped")
    func commentsAndTrailingNewline() throws {
        #expect(try render("a\n  {# note #}\nb\n") == "a\nb")
        #expect(try render("x\n\n") == "x\n")
    }

    @Test("raw blocks are literal; CRLF becomes LF")
    func rawAndNewlines() throws {
        #expect(try render("{% raw %}{{ x }}{% endraw %}") == "{{ x }}")
        #expect(try render("a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n") == "a\nb\n")
    }
}

@Suite("Python values as jinja2 prints them")
struct PrintingTests {
    @Test("Scalars print like Python str()")
    func scalars() throws {
        #expect(try render("{{ 1 }} {{ 1.0 }} {{ 0.1 }} {{ 1e-5 }} {{ 1e16 }} {{ none }} {{ true }} {{ False }}") == "1 1.0 0.1 1e-05 1e+16 None True False")
        #expect(try render("{{ 10 / 4 }} {{ 10 / 5 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }}") == "2.5 2.0 3 -4 2 1024")
    }

    @Test("Containers print like Python repr(), keeping dict order")
    func containers() throws {
        #expect(try render("{{ ['a', 1, none, 1.0] }}") == "['a', 1, None, 1.0]")
        #expect(try render("{{ (1,) }} {{ {'b': 1, 'a': \"it's\"} }}") == "(1,) {'b': 1, 'a': \"it's\"}")
        #expect(try render("{{ x }}", ["x": ["k": ["v", .null]]]) == "{'k': ['v', None]}")
    }

    @Test("Undefined prints as nothing, but attribute access on it raises")
    func undefined() throws {
        #expect(try render("[{{ nope }}][{{ nope is defined }}][{{ d.missing }}]", ["d": [:]]) == "[][False][]")
        guard case .runtime(let message, let line) = renderError("\n{{ nope.attr }}") else {
            Issue.record("expected a runtime error")
            return
        }
        #expect(message == "'nope' is undefined")
        #expect(line == 2)
    }

    @Test("Python float repr layout")
    func floatRepr() throws {
        let cases: [(Double, String)] = [
            (1.0, "1.0"), (0.1, "0.1"), (1e-5, "1e-05"), (0.0001, "0.0001"), (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"), (-2.5, "-2.5"), (1.5e300, "1.5e+300"), (.leastNonzeroMagnitude, "5e-324"),
            (123456789.123456789, "123456789.12345679"), (-0.0, "-0.0"),
        ]
        for (value, text) in cases { #expect(try render("{{ x }}", ["x": .double(value)]) == text) }
    }
}

@Suite("Statements")
struct StatementTests {
    @Test("loop variables, else branch, inline filter and unpacking")
    func loops() throws {
        #expect(try render("{% for x in 'abc' %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}") == "1TrueFalse3;2FalseFalse3;3FalseTrue3;")
        #expect(try render("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{% else %}none{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %}") == "24|empty")
        #expect(try render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", ["d": ["b": 1, "a": 2]]) == "b=1;a=2;")
        #expect(try render("{% for x in [1, 2, 3] %}{{ loop.previtem }}-{{ loop.nextitem }},{% endfor %}") == "-2,1-3,2-,")
    }

    @Test("break and continue")
    func loopControls() throws {
        #expect(try render("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %}") == "0134")
    }

    @Test("set inside a loop does not leak; namespace attributes do")
    func scopingAndNamespaces() throws {
        #expect(try render("{% set x = 5 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i %}{% endfor %}[{{ x }}]") == "[5][5][5]")
        #expect(try render("{% set ns = namespace(n=0) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }} {{ ns }}") == "6 <Namespace {'n': 6}>")
    }

    @Test("block set captures output and applies its filters")
    func blockSet() throws {
        #expect(try render("{%- set x -%}  hi {{ 1 }}  {%- endset -%}[{{ x }}]{% set y | upper %}abc{% endset %}{{ y }}") == "[hi 1]ABC")
    }

    @Test("macros: defaults, keyword arguments, late-bound closure, recursion, call blocks")
    func macros() throws {
        #expect(try render("{% macro m(a, b=2) %}{{ a }}-{{ b }}{% endmacro %}{{ m(1) }} {{ m(1, b=3) }} {{ m() }}") == "1-2 1-3 -2")
        #expect(try render("{% set x = 5 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 6 %}{{ m() }}") == "6")
        #expect(try render("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}") == "321")
        #expect(try render("{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}in{% endcall %}") == "[in]")
    }

    @Test("filter and with blocks, transformers' generation tag")
    func otherBlocks() throws {
        #expect(try render("{% filter upper %}abc{% endfilter %}{% with a = 1 %}{{ a }}{% endwith %}{% generation %}g{% endgeneration %}") == "ABC1g")
    }
}

@Suite("Filters, tests and methods")
struct FilterTests {
    @Test("tojson matches json.dumps(ensure_ascii=False) with Python separators and indent layout")
    func tojson() throws {
        let d: JinjaValue = ["b": [1, 2.0, .null, true], "a": "é\"\n"]
        #expect(try render("{{ d|tojson }}", ["d": d]) == #"{"b": [1, 2.0, null, true], "a": "é\"\n"}"#)
        #expect(try render("{{ d|tojson(indent=2) }}", ["d": d]) == "{\n  \"b\": [\n    1,\n    2.0,\n    null,\n    true\n  ],\n  \"a\": \"é\\\"\\n\"\n}")
        #expect(try render("{{ [[], {}]|tojson(indent=2) }}") == "[\n  [],\n  {}\n]")
        #expect(try render("{{ d|tojson(sort_keys=true, separators=(',', ':')) }}", ["d": d]) == #"{"a":"é\"\n","b":[1,2.0,null,true]}"#)
        #expect(try render("{{ 'é'|tojson(ensure_ascii=true) }}") == #""\u00e9""#)
    }

    @Test("string filters and Python string methods")
    func strings() throws {
        #expect(try render("{{ '  a  '|trim }}|{{ 'hello world-x'|title }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ ['a', 'b']|join(', ') }}|{{ 'héllo'|length }}") == "a|Hello World-X|bba|a, b|5")
        #expect(try render("{{ 'a,b'.split(',') }} {{ ' x '.strip() }} {{ 'abc'.startswith('ab') }} {{ 'a-b-c'.rsplit('-', 1) }} {{ '{}!'.format(1) }}") == "['a', 'b'] x True ['a-b', 'c'] 1!")
        #expect(try render("{{ 'x'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}") == "x|  a\n  b")
    }

    @Test("map, select and friends are one-shot, always-truthy generators")
    func generators() throws {
        let users: JinjaValue = [["name": "a", "admin": true], ["name": "b", "admin": false]]
        #expect(try render("{{ users|selectattr('admin')|map(attribute='name')|list }}", ["users": users]) == "['a']")
        #expect(try render("{% set g = [1, 2]|map('string') %}{{ g|list }}{{ g|list }}{% if []|select %}!{% endif %}") == "['1', '2'][]!")
        #expect(renderError("{{ [1]|select|tojson }}") != nil)
    }

    @Test("default, dictsort, sort, unique, first, last")
    func collections() throws {
        #expect(try render("{{ nope|default('d') }} {{ ''|default('d', true) }} {{ {'b': 1, 'A': 2}|dictsort }} {{ ['b', 'A', 'a']|sort }} {{ ['b', 'B']|unique|list }} {{ [1, 2]|first }}{{ [1, 2]|last }}") == "d d [('A', 2), ('b', 1)] ['A', 'a', 'b'] ['b'] 12")
    }

    @Test("tests: defined, none, string, mapping, sequence, iterable, number ...")
    func jinjaTests() throws {
        #expect(try render("{{ x is defined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ {} is sequence }} {{ 5 is iterable }} {{ true is number }} {{ true is integer }} {{ 9 is divisibleby 3 }} {{ 'a' is equalto 'a' }} {{ x is not none }}") == "False True True True True False True False True True True")
    }

    @Test("safe produces Markup, whose + escapes the plain operand, as markupsafe does")
    func markup() throws {
        #expect(try render("{{ '<b>'|e }} {{ ('<b>'|safe) + '<' }} {{ ('<b>'|safe) ~ '<' }}") == "&lt;b&gt; <b>&lt; <b><")
    }

    @Test("strftime_now uses the template clock")
    func strftime() throws {
        var template = try ChatTemplate(source: "{{ strftime_now('%d %b %Y %H:%M') }}")
        template.clock = .fixed(Date(timeIntervalSince1970: 1_741_944_413), utcOffsetSeconds: 3600)
        #expect(try template.render([:]) == "14 Mar 2025 10:26")
    }
}

@Suite("Errors")
struct ErrorTests {
    @Test("raise_exception surfaces its message as TemplateError.raised")
    func raised() {
        #expect(renderError("{{ raise_exception('Only user and assistant roles are supported!') }}") == .raised("Only user and assistant roles are supported!"))
    }

    @Test("Syntax errors carry the line number")
    func syntax() {
        #expect(renderError("ok\n{% if x %}") == .syntax("Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' or 'endif'.", line: 2))
        guard case .syntax(_, let line) = renderError("a\n\n{{ x|no_such_filter }}") else {
            Issue.record("unknown filter should be a syntax error")
            return
        }
        #expect(line == 3)
        guard case .syntax = renderError("{% foo %}") else { Issue.record("unknown tag"); return }
        guard case .syntax = renderError("{% break %}") else { Issue.record("break outside loop"); return }
    }

    @Test("Unsupported constructs throw .unsupported naming them, never render differently")
    func unsupported() {
        let cases: [(String, String)] = [
            ("{% include 'x' %}", "tag 'include'"),
            ("{% extends 'x' %}", "tag 'extends'"),
            ("{% for x in [1] recursive %}{% endfor %}", "recursive for loops"),
            ("{{ f(*args) }}", "*args/**kwargs in a call"),
            ("{{ {'a': 1}|xmlattr }}", "filter 'xmlattr'"),
            ("{{ 'a'|truncate(3) }}", "filter 'truncate'"),
            ("{% for x in [1] %}{{ loop.changed(x) }}{% endfor %}", "method 'changed' of LoopContext"),
            ("{{ 'x'.encode() }}", "str.encode()"),
            ("{{ cycler(1, 2) }}", "global function 'cycler'"),
            ("{{ 2 ** 64 }}", "integer arithmetic beyond 64 bits"),
            ("{{ 'a'.upper }}", "printing a builtin_function_or_method object"),
            ("{{ [1]|map('string') }}", "printing a generator object"),
        ]
        for (source, what) in cases {
            guard case .unsupported(let message, _) = renderError(source) else {
                Issue.record("\(source): expected .unsupported, got \(String(describing: renderError(source)))")
                continue
            }
            #expect(message == what, "\(source)")
        }
    }

    @Test("Python runtime errors become .runtime with the line")
    func runtime() {
        for source in ["{{ 'a' + 1 }}", "{{ 1 / 0 }}", "{{ nope() }}", "{% for x in none %}{% endfor %}", "{{ [1]|select|length }}", "{{ [].append(1) }}", "{{ nope|tojson }}"] {
            guard case .runtime = renderError(source) else {
                Issue.record("\(source): expected a runtime error, got \(String(describing: renderError(source)))")
                continue
            }
        }
    }

    @Test("Deep recursion and nesting fail cleanly instead of exhausting the stack")
    func depthLimits() {
        #expect(renderError("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}") == .runtime("maximum macro recursion depth exceeded", line: 1))
        let deep = "{{ " + String(repeating: "(", count: 150) + "1" + String(repeating: ")", count: 150) + " }}"
        guard case .unsupported = renderError(deep) else { Issue.record("deep parentheses"); return }
        #expect((try? render("{{ " + String(repeating: "(", count: 60) + "1" + String(repeating: ")", count: 60) + " }}")) == "1")
        let deepJSON = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        guard case .invalidJSON = (Result { () throws(TemplateError) in try JinjaValue.parseJSON(deepJSON) }).failure else {
            Issue.record("deep JSON")
            return
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}

@Suite("JSON input and the request API")
struct RequestTests {
    @Test("parseJSON keeps key order, lets a repeated key keep its place, and decodes escapes")
    func parse() throws {
        let v = try JinjaValue.parseJSON(#"{"b": 1, "a": [1.0, -0, 1e-5, true, null], "b": "\u00e9\ud83d\ude00\n"}"#)
        #expect(try render("{{ v }}", ["v": v]) == "{'b': 'é😀\\n', 'a': [1.0, 0, 1e-05, True, None]}")
        for bad in ["{", "[1,]", "{'a': 1}", "01", "\"\\x\"", "[1] 2", ""] {
            #expect((Result { () throws(TemplateError) in try JinjaValue.parseJSON(bad) }).failure != nil, "\(bad)")
        }
    }

    @Test("render(requestJSON:) passes tools/documents as None when absent, other keys only when present")
    func requestContext() throws {
        let template = try ChatTemplate(source: "{{ bos_token }}{{ tools is none }}|{{ documents is none }}|{{ add_generation_prompt }}|{{ enable_thinking is defined }}|{{ messages|length }}|{{ custom }}{{ eos_token }}")
        #expect(try template.render(requestJSON: #"{"messages": [{"role": "user", "content": "hi"}], "custom": 7}"#, bosToken: "<s>", eosToken: "</s>") == "<s>True|True|False|False|1|7</s>")
        #expect(try template.render(requestJSON: #"{"messages": [], "tools": [], "add_generation_prompt": true, "enable_thinking": false, "bos_token": "B"}"#, bosToken: "<s>", eosToken: "</s>") == "BFalse|True|True|True|0|</s>")
        #expect(throws: TemplateError.invalidRequest("the request has no \"messages\"")) {
            try template.render(requestJSON: "{}", bosToken: "", eosToken: "")
        }
        #expect(throws: TemplateError.invalidRequest("the request must be a JSON object")) {
            try template.render(requestJSON: "[]", bosToken: "", eosToken: "")
        }
    }
}

@Suite("Resource limits")
struct LimitTests {
    @Test("A loop cannot nest values without bound through a namespace")
    func namespaceNesting() {
        let source = "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x|length }}"
        #expect(renderError(source) == .unsupported("values nested deeper than 256 levels", line: 1))
        #expect((try? render("{% set ns = namespace(x=[]) %}{% for i in range(200) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x|length }}")) == "1")
    }

    @Test("Sandbox range cap and repetition cap")
    func sizeCaps() {
        guard case .runtime = renderError("{{ range(100001)|length }}") else { Issue.record("range cap"); return }
        guard case .unsupported = renderError("{{ 'ab' * 100000000 }}") else { Issue.record("repeat cap"); return }
        guard case .unsupported = renderError("{{ '%99999999999999999999999d' % 1 }}") else { Issue.record("width cap"); return }
        #expect((try? render("{{ 'x'|int(base=1) }} {{ '0x1f'|int(0, 0) }} {{ range(-9223372036854775807, 9223372036854775807)|length }}")) == nil)
        #expect((try? render("{{ 'x'|int(base=1) }} {{ '0x1f'|int(0, 0) }}")) == "0 31")
    }
}
