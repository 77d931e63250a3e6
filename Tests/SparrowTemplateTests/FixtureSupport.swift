import Foundation
import SparrowTokenizer
import Testing

/// Loads the fixtures written by `scripts/make_template_fixtures.py`. They are decoded with
/// Foundation's JSONDecoder, independently of the interpreter's own JSON parser, so a parser bug
/// cannot hide itself by mangling both the request and the expectation.
enum Fixtures {
    struct Outcome: Decodable {
        let template: String
        let `case`: String?
        let output: String?
        let error: String?
        let message: String?
        let compile_error: CompileError?
    }

    struct CompileError: Decodable {
        let error: String
        let message: String
    }

    struct Expected: Decodable {
        let fixed_now: String
        let bos_token: String
        let eos_token: String
        let results: [Outcome]
    }

    struct CorpusCase: Decodable {
        let fnv1a64: String?
        let length: Int?
        let error: String?
        let message: String?
    }

    struct CorpusTemplate: Decodable {
        let template: String
        let source_fnv1a64: String
        let compile_error: CompileError?
        let cases: [String: CorpusCase]?
    }

    struct Corpus: Decodable {
        let templates: [CorpusTemplate]
    }

    static func url(_ path: String) throws -> URL {
        guard let base = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            throw FixtureError.missing("Fixtures folder")
        }
        return base.appendingPathComponent(path)
    }

    static func data(_ path: String) throws -> Data { try Data(contentsOf: try url(path)) }

    struct Snippet: Decodable {
        let name: String
        let template: String
        let context: String
        let output: String?
        let error: String?
        let message: String?
    }

    struct Snippets: Decodable {
        let fixed_now: String
        let snippets: [Snippet]
    }

    /// The committed snippets, or the file named by `SPARROW_TEMPLATE_SNIPPETS` (e.g. fuzz output).
    static func snippets() throws -> Snippets {
        if let path = ProcessInfo.processInfo.environment["SPARROW_TEMPLATE_SNIPPETS"] {
            return try JSONDecoder().decode(Snippets.self, from: try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        return try JSONDecoder().decode(Snippets.self, from: try data("snippets.json"))
    }

    static func expected() throws -> Expected { try JSONDecoder().decode(Expected.self, from: try data("expected.json")) }
    static func corpus() throws -> Corpus { try JSONDecoder().decode(Corpus.self, from: try data("corpus_expected.json")) }
    static func cases() throws -> [String: String] { try JSONDecoder().decode([String: String].self, from: try data("cases.json")) }

    static func template(_ name: String) throws -> String {
        String(decoding: try data("templates/\(name).jinja"), as: UTF8.self)
    }

    /// The instant the Python side pinned `strftime_now` to (a naive local time; UTC here).
    static func clock(_ isoLocal: String) throws -> TemplateClock {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withDashSeparatorInDate]
        formatter.timeZone = TimeZone(secondsFromGMT: 0)
        guard let date = formatter.date(from: isoLocal) else { throw FixtureError.missing("parsable fixed_now \(isoLocal)") }
        return .fixed(date, utcOffsetSeconds: 0)
    }

    enum FixtureError: Error { case missing(String) }

    /// A readable account of where two renders diverge: byte offset, line and column, and the
    /// surrounding text of both sides with newlines made visible.
    static func diff(expected: String, actual: String) -> String {
        let e = Array(expected.utf8), a = Array(actual.utf8)
        var i = 0
        while i < e.count, i < a.count, e[i] == a[i] { i += 1 }
        let line = e[..<i].filter { $0 == 0x0A }.count + 1
        let column = i - (e[..<i].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0) + 1
        func snippet(_ bytes: [UInt8]) -> String {
            let lo = max(0, i - 60), hi = min(bytes.count, i + 60)
            let text = String(decoding: bytes[lo..<hi], as: UTF8.self)
            return text.replacingOccurrences(of: "\n", with: "⏎\n")
        }
        return """
            first difference at byte \(i) (line \(line), column \(column)); expected \(e.count) bytes, got \(a.count)
            --- expected around there:
            \(snippet(e))
            --- actual around there:
            \(snippet(a))
            """
    }

    /// FNV-1a 64, as the fixture script hashes corpus outputs.
    static func fnv1a64(_ text: String) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in text.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
