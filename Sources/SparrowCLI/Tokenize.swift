import ArgumentParser
import Foundation
import SparrowEngine
import SparrowFormats
import SparrowTokenizer

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tokenize UTF-8 text from stdin (special tokens parsed, BOS per metadata). Works on vocab-only GGUF files.")

    @Option(help: "A GGUF file (vocab-only is fine) or pulled model name.") var model: String = ModelStore.defaultModel
    @Flag(help: "Print the ids as a JSON array.") var json = false
    @Flag(help: "Do not add BOS/EOS even if the metadata asks for them.") var noSpecial = false

    func run() throws {
        let path = try ModelStore().resolve(model, pullIfMissing: true)
        let tokenizer = try Tokenizer(gguf: GGUFFile(path: path))
        let ids = tokenizer.encode(readStdin(), addSpecial: !noSpecial, parseSpecial: true)
        if json {
            writeStdout("[" + ids.map(String.init).joined(separator: ",") + "]\n")
        } else {
            for id in ids {
                let piece = String(decoding: tokenizer.piece(id), as: UTF8.self)
                print("\(id)\t\(jsonString(piece))")
            }
        }
    }
}
