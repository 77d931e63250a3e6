import ArgumentParser
import Foundation
import SparrowEngine
import SparrowFormats

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a GGUF file's metadata and tensor table.")

    @Argument(help: "A GGUF file or pulled model name.") var file: String
    @Flag(help: "Metadata only, no tensor table.") var noTensors = false

    func run() throws {
        let path = try ModelStore().resolve(file, pullIfMissing: false)
        let gguf = try GGUFFile(path: path)
        print("file: \(path)")
        print("GGUF v\(gguf.version), \(gguf.metadata.count) metadata keys, \(gguf.tensors.count) tensors, alignment \(gguf.alignment), data at \(gguf.dataOffset)")
        print("\nmetadata:")
        for key in gguf.metadataKeys {
            guard let v = gguf.metadata[key] else { continue }
            print("  \(key) = \(v.summary)")
        }
        guard !noTensors else { return }
        print("\ntensors:")
        print("  " + "name".padding(toLength: 40, withPad: " ", startingAt: 0) + " " + "type".padding(toLength: 6, withPad: " ", startingAt: 0) + " " + "shape".padding(toLength: 22, withPad: " ", startingAt: 0) + " bytes")
        var total = 0
        for t in gguf.tensors {
            total += t.byteCount
            let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
            print("  " + t.name.padding(toLength: 40, withPad: " ", startingAt: 0) + " " + t.type.description.padding(toLength: 6, withPad: " ", startingAt: 0) + " " + shape.padding(toLength: 22, withPad: " ", startingAt: 0) + " \(t.byteCount)")
        }
        print("  total tensor bytes: \(total)")
    }
}
