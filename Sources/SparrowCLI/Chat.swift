import ArgumentParser
import Foundation
import SparrowEngine

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chat interactively with a model through its own chat template.",
        discussion: "Type a message and press Enter. /reset starts over, /exit (or end of input) quits.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions
    @Option(help: "System message.") var system: String?

    func run() throws {
        let engine = try modelOptions.load()
        let session = engine.makeSession()
        let parameters = try sampling.parameters()
        var messages: [String] = []
        func resetMessages() {
            messages = system.map { ["{\"role\":\"system\",\"content\":\(jsonString($0))}"] } ?? []
        }
        resetMessages()
        let interactive = isatty(0) != 0
        while true {
            if interactive { writeStderr("> ") }
            guard let line = readLine(strippingNewline: true) else { break }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            if input == "/exit" || input == "/quit" { break }
            if input == "/reset" { resetMessages(); session.reset(); continue }
            messages.append("{\"role\":\"user\",\"content\":\(jsonString(input))}")
            let prompt = try engine.renderChat(requestJSON: "{\"messages\":[\(messages.joined(separator: ","))],\"add_generation_prompt\":true}")
            let result = try session.generate(prompt: engine.tokenize(prompt), parameters: parameters) { piece in
                writeStdout(piece)
                return true
            }
            writeStdout("\n")
            messages.append("{\"role\":\"assistant\",\"content\":\(jsonString(result.text))}")
            if interactive {
                writeStderr(String(format: "[%d tokens, %.1f tok/s, %d prompt tokens reused]\n",
                                   result.tokens.count, result.decodeTokensPerSecond, result.cachedPromptTokens))
            }
        }
    }
}
