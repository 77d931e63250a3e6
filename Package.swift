// swift-tools-version:6.1
import PackageDescription

// Module map: ../shared/ARCHITECTURE.md. Dependencies point one way:
// CLI → Server → Engine → {Models, Sampling, Tokenizer} → Kernels → Formats.
let optimize: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "Sparrow",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sparrow", targets: ["SparrowCLI"]),
        .library(name: "SparrowEngine", targets: ["SparrowEngine"]),
        .library(name: "SparrowServer", targets: ["SparrowServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .target(name: "SparrowFormats", swiftSettings: optimize),
        .target(name: "SparrowCSupport"),
        .target(
            name: "SparrowKernelsAVX2", dependencies: ["SparrowFormats", "SparrowCSupport"],
            swiftSettings: optimize + [.unsafeFlags(["-Xcc", "-mavx2", "-Xcc", "-mfma", "-Xcc", "-mf16c"])]),
        // The same kernels with AVX512-VNNI's `vpdpbusd` (256-bit), dispatched at run time.
        .target(
            name: "SparrowKernelsVNNI", dependencies: ["SparrowKernelsAVX2", "SparrowCSupport"],
            swiftSettings: optimize + [.unsafeFlags(["-Xcc", "-mavx2", "-Xcc", "-mfma", "-Xcc", "-mf16c", "-Xcc", "-mavx512f",
                                                     "-Xcc", "-mavx512bw", "-Xcc", "-mavx512vl", "-Xcc", "-mavx512vnni"])]),
        .target(name: "SparrowKernels", dependencies: ["SparrowFormats", "SparrowKernelsAVX2", "SparrowKernelsVNNI"], swiftSettings: optimize),
        .target(name: "SparrowTokenizer", dependencies: ["SparrowFormats"], swiftSettings: optimize),
        .target(name: "SparrowSampling", swiftSettings: optimize),
        .target(name: "SparrowModels", dependencies: ["SparrowFormats", "SparrowKernels"], swiftSettings: optimize),
        .target(
            name: "SparrowEngine",
            dependencies: ["SparrowFormats", "SparrowKernels", "SparrowTokenizer", "SparrowSampling", "SparrowModels", "SparrowCSupport"],
            swiftSettings: optimize),
        // The OpenAI protocol (request validation, reply assembly, output parsing) apart from the
        // HTTP transport, so its tests build without Hummingbird and SwiftNIO.
        .target(
            name: "SparrowAPI", dependencies: ["SparrowEngine", "SparrowSampling", "SparrowTokenizer"],
            path: "Sources/SparrowServer/API", swiftSettings: optimize),
        .target(
            name: "SparrowServer",
            dependencies: ["SparrowAPI", "SparrowEngine", "SparrowKernels", "SparrowModels", "SparrowTokenizer",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "Yams", package: "Yams")],
            exclude: ["API"], swiftSettings: optimize),
        .executableTarget(
            name: "SparrowCLI",
            dependencies: ["SparrowEngine", "SparrowServer", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: optimize),
        .testTarget(name: "SparrowFormatsTests", dependencies: ["SparrowFormats", "SparrowKernels"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SparrowKernelsTests", dependencies: ["SparrowKernels", "SparrowKernelsAVX2", "SparrowKernelsVNNI", "SparrowFormats"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SparrowTokenizerTests", dependencies: ["SparrowTokenizer"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SparrowTemplateTests", dependencies: ["SparrowTokenizer"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SparrowModelsTests", dependencies: ["SparrowEngine", "SparrowSampling"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "SparrowServerTests",
            dependencies: ["SparrowAPI", "SparrowEngine", "SparrowSampling"]),
        // `sparrow serve --config FILE.yaml`: parsing, validation, flag-over-file precedence.
        .testTarget(name: "SparrowServeConfigTests", dependencies: ["SparrowServer", "SparrowEngine"]),
    ]
)
