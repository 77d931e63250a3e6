import ArgumentParser
import Foundation
import SparrowEngine

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate a reply to one prompt, streamed to stdout.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions

    @Option(help: "The prompt (default: read stdin).") var prompt: String?
    @Option(help: "System message (chat mode only).") var system: String?
    @Flag(help: "Tokenize the prompt as is (special tokens parsed, no chat template).") var raw = false
    @Flag(help: "Print one JSON object {prompt_tokens, tokens, text} instead of streaming.") var json = false

    func run() throws {
        let engine = try modelOptions.load()
        let text = prompt ?? readStdin()
        let rendered: String
        if raw {
            rendered = text
        } else {
            var messages: [String] = []
            if let system { messages.append("{\"role\":\"system\",\"content\":\(jsonString(system))}") }
            messages.append("{\"role\":\"user\",\"content\":\(jsonString(text))}")
            rendered = try engine.renderChat(requestJSON: "{\"messages\":[\(messages.joined(separator: ","))],\"add_generation_prompt\":true}")
        }
        let tokens = engine.tokenize(rendered)
        let session = engine.makeSession()
        let result = try session.generate(prompt: tokens, parameters: sampling.parameters()) { piece in
            if !json { writeStdout(piece) }
            return true
        }
        if json {
            let p = result.promptTokens.map(String.init).joined(separator: ",")
            let g = result.tokens.map(String.init).joined(separator: ",")
            writeStdout("{\"prompt_tokens\":[\(p)],\"tokens\":[\(g)],\"text\":\(jsonString(result.text))}\n")
        } else {
            writeStdout("\n")
        }
        writeStderr(String(format: "[prompt %d tokens, %.1f tok/s; generated %d tokens, %.1f tok/s; finish: %@]\n",
                           result.promptTokens.count, result.prefillTokensPerSecond, result.tokens.count,
                           result.decodeTokensPerSecond, result.finishReason.rawValue))
    }
}
