import Foundation
import SparrowTokenizer
import Testing

@Suite("Real chat templates match Python jinja2 as transformers renders them")
struct TemplateFixtureTests {
    static let requiredTemplates = [
        "Qwen2.5-7B-Instruct", "Qwen2.5-Coder-0.5B-Instruct", "Qwen3-0.6B", "Qwen3-Coder", "Qwen3.5-4B",
        "Llama-3.1-8B-Instruct", "Llama-3.2-3B-Instruct", "SmolLM2-135M-Instruct",
    ]

    @Test("Template renders every fixture conversation byte-for-byte (or fails where jinja2 fails)", arguments: requiredTemplates)
    func requiredTemplate(_ name: String) throws {
        let expected = try Fixtures.expected()
        let cases = try Fixtures.cases()
        let outcomes = expected.results.filter { $0.template == name }
        #expect(!outcomes.isEmpty, "no fixtures for \(name)")
        var template = try ChatTemplate(source: try Fixtures.template(name))
        template.clock = try Fixtures.clock(expected.fixed_now)
        var passed = 0
        for outcome in outcomes {
            let caseName = outcome.case ?? "?"
            guard let request = cases[caseName] else {
                Issue.record("missing request for case \(caseName)")
                continue
            }
            let result: Result<String, TemplateError>
            do {
                result = .success(try template.render(requestJSON: request, bosToken: expected.bos_token, eosToken: expected.eos_token))
            } catch {
                result = .failure(error)
            }
            switch (result, outcome.output) {
            case (.success(let actual), let wanted?):
                if actual == wanted && Array(actual.utf8) == Array(wanted.utf8) {
                    passed += 1
                } else {
                    Issue.record("\(name) / \(caseName): render differs\n\(Fixtures.diff(expected: wanted, actual: actual))")
                }
            case (.success(let actual), nil):
                Issue.record("\(name) / \(caseName): jinja2 raised \(outcome.error ?? "") (\(outcome.message ?? "")) but Swift rendered \(actual.utf8.count) bytes")
            case (.failure(let error), let wanted?):
                Issue.record("\(name) / \(caseName): Swift threw \(error) but jinja2 rendered \(wanted.utf8.count) bytes")
            case (.failure(let error), nil):
                if outcome.error == "raised" {
                    if error == .raised(outcome.message ?? "") {
                        passed += 1
                    } else {
                        Issue.record("\(name) / \(caseName): expected raise_exception(\(outcome.message ?? "")), got \(error)")
                    }
                } else if case .runtime = error {
                    passed += 1  // jinja2 failed at render time too (UndefinedError, TypeError, ...)
                } else {
                    Issue.record("\(name) / \(caseName): jinja2 raised \(outcome.error ?? ""), Swift threw a different kind: \(error)")
                }
            }
        }
        print("\(name): \(passed)/\(outcomes.count) fixture cases match")
        #expect(passed == outcomes.count)
    }

    @Test(
        "Every llama.cpp template renders as jinja2 does (set SPARROW_TEMPLATE_CORPUS to the templates folder)",
        .enabled(if: ProcessInfo.processInfo.environment["SPARROW_TEMPLATE_CORPUS"] != nil))
    func corpus() throws {
        let folder = URL(fileURLWithPath: ProcessInfo.processInfo.environment["SPARROW_TEMPLATE_CORPUS"] ?? ".")
        let corpus = try Fixtures.corpus()
        let expected = try Fixtures.expected()
        let cases = try Fixtures.cases()
        var summary: [String] = []
        for entry in corpus.templates {
            let source = String(decoding: try Data(contentsOf: folder.appendingPathComponent(entry.template)), as: UTF8.self)
            guard Fixtures.fnv1a64(source) == entry.source_fnv1a64 else {
                Issue.record("\(entry.template): not the template the fixtures were made from")
                continue
            }
            var template: ChatTemplate
            do {
                template = try ChatTemplate(source: source)
            } catch {
                if entry.compile_error != nil {
                    summary.append("\(entry.template): both refuse to compile (\(error))")
                } else {
                    summary.append("\(entry.template): NOT SUPPORTED: \(error)")
                    if case .unsupported = error {} else { Issue.record("\(entry.template): \(error)") }
                }
                continue
            }
            if let compileError = entry.compile_error {
                Issue.record("\(entry.template): jinja2 refuses to compile it (\(compileError.message)) but Swift parsed it")
                continue
            }
            template.clock = try Fixtures.clock(expected.fixed_now)
            var passed = 0
            var unsupported: [String] = []
            let entryCases = entry.cases ?? [:]
            for (caseName, want) in entryCases.sorted(by: { $0.key < $1.key }) {
                guard let request = cases[caseName] else { continue }
                do {
                    let out = try template.render(requestJSON: request, bosToken: expected.bos_token, eosToken: expected.eos_token)
                    if let hash = want.fnv1a64 {
                        if hash == Fixtures.fnv1a64(out) && want.length == out.utf8.count {
                            passed += 1
                        } else {
                            Issue.record("\(entry.template) / \(caseName): output differs from jinja2")
                        }
                    } else {
                        Issue.record("\(entry.template) / \(caseName): jinja2 raised \(want.error ?? "") (\(want.message ?? "")) but Swift rendered")
                    }
                } catch {
                    if case .unsupported(let what, _) = error {
                        unsupported.append("\(caseName): \(what)")
                    } else if want.fnv1a64 != nil {
                        Issue.record("\(entry.template) / \(caseName): Swift threw \(error) but jinja2 rendered")
                    } else if want.error == "raised", error != .raised(want.message ?? "") {
                        Issue.record("\(entry.template) / \(caseName): expected raise_exception(\(want.message ?? "")), got \(error)")
                    } else {
                        passed += 1
                    }
                }
            }
            summary.append("\(entry.template): \(passed)/\(entryCases.count)" + (unsupported.isEmpty ? "" : " unsupported: \(unsupported)"))
        }
        print(summary.joined(separator: "\n"))
    }
}
