// swift-tools-version: 6.1
// Benchmarks live in their own package so the product package never depends on benchmark code.
import PackageDescription

let package = Package(
    name: "StageRunnerBenchmarks",
    targets: [
        .executableTarget(
            name: "rpc-bench",
            path: "Sources/rpc-bench"
        )
    ],
    swiftLanguageModes: [.v6]
)
