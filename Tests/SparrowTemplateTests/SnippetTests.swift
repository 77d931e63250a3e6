import Foundation
import SparrowTokenizer
import Testing

/// Small templates that each exercise one Jinja feature, rendered by Python jinja2 (configured as
/// transformers does) in `scripts/make_template_fixtures.py`; Swift must give the same bytes, or
/// fail where jinja2 fails.
@Suite("Single-feature snippets match jinja2")
struct SnippetTests {
    static let loaded = try? Fixtures.snippets()
    static let names: [String] = loaded?.snippets.map(\.name) ?? []
    static let fuzzing = ProcessInfo.processInfo.environment["SPARROW_TEMPLATE_SNIPPETS"] != nil

    @Test("Snippet renders exactly as jinja2 renders it", arguments: names)
    func snippet(_ name: String) throws {
        let all = try #require(Self.loaded)
        let snippet = try #require(all.snippets.first { $0.name == name })
        guard case .dict(let dict) = try JinjaValue.parseJSON(snippet.context) else {
            Issue.record("context of \(name) is not an object")
            return
        }
        var context: [String: JinjaValue] = [:]
        for (key, value) in dict.pairs { if case .string(let k) = key { context[k] = value } }

        var template: ChatTemplate
        do throws(TemplateError) {
            template = try ChatTemplate(source: snippet.template)
        } catch {
            if snippet.error == "compile" {
                var isSyntax = false
                if case .syntax = error { isSyntax = true }
                #expect(isSyntax, "\(name): expected a syntax error, got \(error)")
            } else {
                Issue.record("\(name): Swift refused to parse (\(error)); jinja2 gave \(snippet.output.map { "output \($0.debugDescription)" } ?? "\(snippet.error ?? "") \(snippet.message ?? "")")")
            }
            return
        }
        if snippet.error == "compile" {
            Issue.record("\(name): jinja2 refuses to compile it (\(snippet.message ?? "")) but Swift parsed it")
            return
        }
        template.clock = try Fixtures.clock(all.fixed_now)
        do throws(TemplateError) {
            let out = try template.render(context)
            if let wanted = snippet.output {
                if out != wanted || Array(out.utf8) != Array(wanted.utf8) {
                    Issue.record("\(name): render differs\n\(Fixtures.diff(expected: wanted, actual: out))")
                }
            } else {
                Issue.record("\(name): jinja2 raised \(snippet.error ?? "") (\(snippet.message ?? "")) but Swift rendered \(out.debugDescription)")
            }
        } catch {
            switch (snippet.error, error) {
            case ("raised", .raised(let message)):
                #expect(message == snippet.message, "\(name): raise_exception message")
            case (nil, .unsupported) where snippet.output?.contains(" at 0x") == true:
                break  // CPython printed an object's memory address, which Swift refuses to imitate
            case (nil, .unsupported(let what, _)) where what.hasPrefix("printing a") && Self.fuzzing:
                break  // random templates stringify generators and methods, then hide the address
            case (nil, _):
                Issue.record("\(name): Swift threw \(error) but jinja2 rendered \(snippet.output?.debugDescription ?? "")")
            case (_, .runtime), (_, .unsupported):
                break  // jinja2 failed at render time too (Swift may refuse earlier, e.g. printing a generator)
            default:
                Issue.record("\(name): jinja2 raised \(snippet.error ?? "") (\(snippet.message ?? "")), Swift threw \(error)")
            }
        }
    }
}
