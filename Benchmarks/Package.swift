// swift-tools-version: 6.1
// Benchmarks live in their own package so the product package never depends on benchmark code.
// Linux only, like the package it measures.
// model-bench uses the engine: Packages/StageRunner is a link to the repository root, so that the
// dependency's identity is "StageRunner" whatever the checkout's directory is called.
import PackageDescription

let package = Package(
    name: "StageRunnerBenchmarks",
    dependencies: [
        .package(path: "Packages/StageRunner")
    ],
    targets: [
        .executableTarget(
            name: "rpc-bench",
            path: "Sources/rpc-bench"
        ),
        .executableTarget(
            name: "model-bench",
            dependencies: [
                .product(name: "ModelProviders", package: "StageRunner"),
                .product(name: "StageEngine", package: "StageRunner"),
            ],
            path: "Sources/model-bench"
        ),
    ],
    swiftLanguageModes: [.v6]
)
