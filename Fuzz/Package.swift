// swift-tools-version: 5.4
// libFuzzer targets over the library's public API, one executable per target (run.sh builds and
// runs them). Like Benchmarks/, a package of its own so the product never depends on fuzz code;
// Packages/StageRunner is a link to the repository root.
//
// Tools version 5.4 on purpose: from 5.5 on, SwiftPM renames an executable's entry point to
// `<module>_main` and links `main` to it, but a fuzz target is built with -parse-as-library and has
// no entry point (libFuzzer's `main` runs `LLVMFuzzerTestOneInput`), so the link fails.
import PackageDescription

let targets: [(name: String, dependencies: [Target.Dependency])] = [
    ("fuzz-framing", [.product(name: "JSONRPC", package: "StageRunner")]),
    (
        "fuzz-message",
        [.product(name: "JSONRPC", package: "StageRunner"), .product(name: "JSON", package: "StageRunner")]
    ),
    ("fuzz-json", [.product(name: "JSON", package: "StageRunner")]),
    ("fuzz-template", [.product(name: "Jinja", package: "StageRunner")]),
    ("fuzz-parsers", [.product(name: "OutputParsing", package: "StageRunner")]),
    ("fuzz-csv", [.product(name: "StageEngine", package: "StageRunner")]),
    (
        "fuzz-schema",
        [.product(name: "JSONSchema", package: "StageRunner"), .product(name: "JSON", package: "StageRunner")]
    ),
]

let package = Package(
    name: "StageRunnerFuzz",
    dependencies: [
        .package(path: "Packages/StageRunner")
    ],
    targets: targets.map { target in
        .executableTarget(name: target.name, dependencies: target.dependencies, path: "Sources/\(target.name)")
    },
    swiftLanguageVersions: [.v5]
)
