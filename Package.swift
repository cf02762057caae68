// swift-tools-version:6.2
// One section per target, dependencies one per line. The engine (StageEngine) never imports
// JSONRPC: the server target is the only place where the two meet.

import PackageDescription

let strictSwift: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    // https://github.com/apple/swift-evolution/blob/main/proposals/0335-existential-any.md
    .enableUpcomingFeature("ExistentialAny"),
    // https://github.com/apple/swift-evolution/blob/main/proposals/0444-member-import-visibility.md
    .enableUpcomingFeature("MemberImportVisibility"),
]

// Linux only (built and tested on Debian 12): generations are committed with renameat2's
// RENAME_EXCHANGE and syncfs, and commands are tracked through /proc. Sources/CFileSystem stops
// a build elsewhere with that message.
let package = Package(
    name: "StageRunner",
    products: [
        .executable(name: "stagerunner", targets: ["stagerunner"]),
        .library(name: "JSON", targets: ["JSON"]),
        .library(name: "JSONRPC", targets: ["JSONRPC"]),
        .library(name: "JSONSchema", targets: ["JSONSchema"]),
        .library(name: "Jinja", targets: ["Jinja"]),
        .library(name: "HTTP", targets: ["HTTP"]),
        .library(name: "ModelProviders", targets: ["ModelProviders"]),
        .library(name: "OutputParsing", targets: ["OutputParsing"]),
        .library(name: "StageEngine", targets: ["StageEngine"]),
        .library(name: "StageRunnerServer", targets: ["StageRunnerServer"]),
        .library(name: "StatusDisplay", targets: ["StatusDisplay"]),
        .library(name: "Threads", targets: ["Threads"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // SHA-256 for deterministic generation ids.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // SQLite for the call log (and later the response cache).
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // The workspace configuration file (stagerunner.yaml) and YAML task files.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // External task-stage commands: async spawn, pipes, and a SIGTERM-then-SIGKILL teardown
        // when a stage times out or is cancelled.
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        // FilePath, which Subprocess takes for working directories.
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // libcurl's headers at build time (Debian: libcurl4-openssl-dev); the library itself is
        // loaded on first use (see Sources/CCurl/include/CCurl.h for why).
        .target(
            name: "CCurl",
            linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]
        ),

        // Atomic directory exchange for committing generations.
        .target(name: "CFileSystem"),

        // The heap in use, which the leak tests read through a test method.
        .target(name: "CHeap"),

        // The JSON value, parser and writer shared by the protocol and the engine.
        .target(name: "JSON", swiftSettings: strictSwift),
        .testTarget(
            name: "JSONTests",
            dependencies: ["JSON", "TestSupport"],
            swiftSettings: strictSwift
        ),

        // JSON Schema (draft 2020-12) validation of JSON values.
        .target(name: "JSONSchema", dependencies: ["JSON"], swiftSettings: strictSwift),
        .testTarget(
            name: "JSONSchemaTests",
            dependencies: ["JSONSchema", "JSON"],
            exclude: ["Suite"],
            swiftSettings: strictSwift
        ),

        // Jinja templates (Jinja2's language, StrictUndefined), on JSON values only.
        .target(name: "Jinja", dependencies: ["JSON"], swiftSettings: strictSwift),
        .testTarget(
            name: "JinjaTests",
            dependencies: ["Jinja", "JSON", "TestSupport"],
            swiftSettings: strictSwift
        ),

        // OS threads that may block, and the condition lock they wait on.
        .target(name: "Threads", swiftSettings: strictSwift),
        .testTarget(name: "ThreadsTests", dependencies: ["Threads"], swiftSettings: strictSwift),

        .target(
            name: "JSONRPC",
            dependencies: [
                "JSON",
                "Threads",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "JSONRPCTests",
            dependencies: ["JSON", "JSONRPC", "TestSupport"],
            swiftSettings: strictSwift
        ),
        // Pipes, spawned servers and frame readers shared by the test targets.
        .target(
            name: "TestSupport",
            dependencies: [
                "JSON",
                "JSONRPC",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: strictSwift
        ),

        // HTTP over libcurl: requests, streamed responses and server-sent events.
        .target(name: "HTTP", dependencies: ["CCurl", "Threads"], swiftSettings: strictSwift),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP"], swiftSettings: strictSwift),

        // The named output parsers that turn a model's text into a parsed result.
        .target(name: "OutputParsing", dependencies: ["JSON"], swiftSettings: strictSwift),
        .testTarget(
            name: "OutputParsingTests",
            dependencies: ["OutputParsing", "JSON"],
            swiftSettings: strictSwift
        ),

        // Model providers behind one protocol: the OpenAI- and Anthropic-format HTTP providers, the
        // embedded one, routing, retries, rate limits, budgets and prices.
        .target(
            name: "ModelProviders",
            dependencies: [
                "HTTP",
                "JSON",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // The price table's data; compiled in as PriceTable+BuiltIn.swift (scripts/generate_prices.py).
            exclude: ["prices.json"],
            swiftSettings: strictSwift
        ),

        .target(
            name: "StageEngine",
            dependencies: [
                "CFileSystem",
                "HTTP",
                "Jinja",
                "JSON",
                "JSONSchema",
                "ModelProviders",
                "OutputParsing",
                "Threads",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "StageEngineTests",
            dependencies: [
                "StageEngine", "HTTP", "Jinja", "JSON", "ModelProviders", "OutputParsing", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),

        .target(
            name: "StageRunnerServer",
            dependencies: [
                "CHeap",
                "Jinja",
                "JSON",
                "JSONRPC",
                "ModelProviders",
                "OutputParsing",
                "StageEngine",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "StageRunnerServerTests",
            dependencies: ["StageRunnerServer", "JSON", "JSONRPC", "TestSupport"],
            swiftSettings: strictSwift
        ),

        // What `stagerunner run` and `status` show of a job: transition lines, the live display.
        .target(
            name: "StatusDisplay",
            dependencies: ["JSON", "StageEngine"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "StatusDisplayTests",
            dependencies: ["StatusDisplay", "StageEngine", "JSON"],
            swiftSettings: strictSwift
        ),

        .executableTarget(
            name: "stagerunner",
            dependencies: [
                "CHeap",
                "HTTP",
                "JSON",
                "JSONRPC",
                "ModelProviders",
                "StageEngine",
                "StageRunnerServer",
                "StatusDisplay",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The release link's code layout (Makefile: RELEASE_FLAGS).
            exclude: ["serving.order"],
            swiftSettings: strictSwift
        ),
        // Spawns the built `stagerunner` binary over pipes. SQLite (through GRDB) and SHA-256 let
        // the crash campaign check the databases and artifacts that a killed server left.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "stagerunner",
                "JSON",
                "JSONRPC",
                "TestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSwift
        ),
    ]
)
