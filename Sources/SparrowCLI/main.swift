import ArgumentParser

struct Sparrow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sparrow", abstract: "Run small and sparse open-weight models on the CPU.")
}
Sparrow.main()
