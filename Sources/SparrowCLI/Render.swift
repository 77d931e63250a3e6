import ArgumentParser
import Foundation
import SparrowEngine
import SparrowFormats
import SparrowTokenizer

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a chat request from stdin through a chat template and print the prompt exactly.",
        discussion: "stdin: {\"messages\":[...], \"tools\":[...], \"enable_thinking\":bool, \"add_generation_prompt\":bool}")

    @Option(help: "A GGUF file or pulled model name whose template (and BOS/EOS) to use.") var model: String?
    @Option(help: "A .jinja template file (overrides the model's).") var template: String?

    func run() throws {
        guard model != nil || template != nil else { throw ValidationError("give --model or --template") }
        var bos = "", eos = ""
        var source: String?
        if let model {
            let gguf = try GGUFFile(path: ModelStore().resolve(model, pullIfMissing: true))
            let tokenizer = try Tokenizer(gguf: gguf)
            bos = tokenizer.bos.flatMap(tokenizer.tokenString) ?? ""
            eos = tokenizer.eos.flatMap(tokenizer.tokenString) ?? ""
            source = gguf.metadata["tokenizer.chat_template"]?.stringValue
        }
        if let template { source = try String(contentsOfFile: template, encoding: .utf8) }
        guard let source else { throw EngineError.noChatTemplate }
        let rendered = try ChatTemplate(source: source).render(requestJSON: readStdin(), bosToken: bos, eosToken: eos)
        writeStdout(rendered)
    }
}
