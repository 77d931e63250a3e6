import Foundation
import Testing
@testable import SparrowTokenizer

/// Differential check against llama.cpp on random strings. Enabled when SPARROW_FUZZ_DIR
/// points at the JSON files written by Fixtures/llama_cpp_fuzz.py (needs llama-cpp-python).
@Suite("Differential fuzzing against llama.cpp")
struct DifferentialTests {
    static let directory = ProcessInfo.processInfo.environment["SPARROW_FUZZ_DIR"]

    static var files: [String] {
        guard let d = directory, let names = try? FileManager.default.contentsOfDirectory(atPath: d) else { return [] }
        return names.filter { $0.hasSuffix(".json") }.sorted()
    }

    struct Case: Decodable {
        let text: String
        let t00: [Int32]
        let t11: [Int32]
        let t01: [Int32]
        let d0: [UInt8]
        let d1: [UInt8]
    }

    struct Meta: Decodable {
        let bos: Int32, eos: Int32, eot: Int32
        let add_bos: Bool, add_eos: Bool
        let eog: [Int32]
        let control: [Int32]
    }

    struct File: Decodable {
        let path: String
        let meta: Meta
        let cases: [Case]
        let pieces: [[UInt8]]
    }

    @Test("random strings tokenize and detokenize as llama.cpp", .enabled(if: directory != nil), arguments: files)
    func fuzz(_ name: String) throws {
        let dir = try #require(Self.directory)
        let file = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(name)")))
        let tok = try VocabFiles.tokenizer(atPath: file.path)
        var bad = 0
        func check(_ ok: Bool, _ what: @autoclosure () -> String) {
            if !ok {
                bad += 1
                if bad <= 15 { Issue.record("\(name): \(what())") }
            }
        }
        for c in file.cases {
            let a = tok.encode(c.text, addSpecial: false, parseSpecial: false)
            check(a == c.t00, "\(c.text.debugDescription) plain: expected \(c.t00) got \(a)")
            let b = tok.encode(c.text, addSpecial: true, parseSpecial: true)
            check(b == c.t11, "\(c.text.debugDescription) special: expected \(c.t11) got \(b)")
            let b2 = tok.encode(c.text, addSpecial: false, parseSpecial: true)
            check(b2 == c.t01, "\(c.text.debugDescription) parse only: expected \(c.t01) got \(b2)")
            let d0 = tok.decodeBytes(c.t11, special: false)
            check(d0 == c.d0, "decode \(c.t11) special=false: expected \(String(decoding: c.d0, as: UTF8.self).debugDescription) got \(String(decoding: d0, as: UTF8.self).debugDescription)")
            let d1 = tok.decodeBytes(c.t11, special: true)
            check(d1 == c.d1, "decode \(c.t11) special=true: expected \(String(decoding: c.d1, as: UTF8.self).debugDescription) got \(String(decoding: d1, as: UTF8.self).debugDescription)")
        }
        for (i, p) in file.pieces.enumerated() {
            let mine = tok.piece(Int32(i), special: true)
            check(mine == p, "piece \(i): expected \(p) got \(mine)")
        }
        let m = file.meta
        check(tok.bos == (m.bos >= 0 ? m.bos : nil), "bos \(String(describing: tok.bos)) vs \(m.bos)")
        check(tok.eos == (m.eos >= 0 ? m.eos : nil), "eos \(String(describing: tok.eos)) vs \(m.eos)")
        check(tok.eot == (m.eot >= 0 ? m.eot : nil), "eot \(String(describing: tok.eot)) vs \(m.eot)")
        check(tok.addBOS == m.add_bos && tok.addEOS == m.add_eos, "add_bos/add_eos")
        check(tok.endOfGenerationTokens == Set(m.eog), "eog \(tok.endOfGenerationTokens.sorted()) vs \(m.eog)")
        let control = Set((0..<Int32(tok.vocabularySize)).filter { tok.attributes($0)?.contains(.control) == true })
        check(control == Set(m.control), "control tokens differ: \(control.symmetricDifference(Set(m.control)).sorted().prefix(10))")
        print("\(name): \(bad) mismatches over \(file.cases.count) strings, \(file.pieces.count) pieces")
    }
}
