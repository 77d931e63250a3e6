import ArgumentParser
import Foundation
import SparrowEngine
import SparrowFormats
import SparrowModels

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a GGUF file of another tensor type from a GGUF file or a Hugging Face checkpoint.",
        discussion: """
        IN is a GGUF file (or pulled model name), or a Hugging Face directory with config.json and \
        model.safetensors or a sharded index (Qwen2/Qwen3/Qwen2-MoE/Qwen3-MoE; the vocabulary is not \
        converted yet). Types are chosen per tensor as llama.cpp's llama-quantize does: norms, biases \
        and MoE routers stay F32; rows the block size does not divide fall back to F16.
        """)

    @Argument(help: "Input: a .gguf file, a pulled model name, or a Hugging Face checkpoint directory.") var input: String
    @Argument(help: "Output .gguf file.") var output: String
    @Option(help: "Output type: \(GGUFConversion.targets.keys.sorted().joined(separator: ", ")).") var type: String = "Q8_0"

    func run() throws {
        guard let target = GGUFConversion.targets[type.uppercased()] else {
            throw ValidationError("--type \(type) is not supported (supported: \(GGUFConversion.targets.keys.sorted().joined(separator: ", ")))")
        }
        var isDirectory: ObjCBool = false
        let metadata: [(String, GGUFValue)], tensors: [SourceTensor]
        let source: AnyObject
        if FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory), isDirectory.boolValue {
            let hf = try HuggingFaceCheckpoint(directory: input)
            (metadata, tensors, source) = (hf.metadata, hf.tensors, hf)
            FileHandle.standardError.write(Data("note: \(input) is converted without its vocabulary; the output runs from token ids only\n".utf8))
        } else {
            let gguf = try GGUFFile(path: try ModelStore().resolve(input, pullIfMissing: false))
            let s = GGUFConversion.source(gguf)
            (metadata, tensors, source) = (s.metadata, s.tensors, gguf)
        }
        let start = Date()
        let planned = try GGUFConversion.write(path: output, metadata: metadata, tensors: tensors, target: target) { done, count, bytes, total, p in
            let line = String(format: "\r[%4d/%4d] %5.1f%%  %@ %@ → %@", done, count, 100 * Double(bytes) / Double(max(total, 1)),
                              p.source.name, p.source.type.description, p.type.description)
            FileHandle.standardError.write(Data((line.padding(toLength: max(line.count, 100), withPad: " ", startingAt: 0)).utf8))
            if let note = p.note { FileHandle.standardError.write(Data("\n  \(p.source.name): \(note)\n".utf8)) }
        }
        withExtendedLifetime(source) {}
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        FileHandle.standardError.write(Data("\n".utf8))
        print(String(format: "wrote %@: %d tensors, %.1f MiB, %.1f s", output, planned.count, Double(size) / 1_048_576, Date().timeIntervalSince(start)))
    }
}
