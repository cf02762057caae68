// The engine's model client alone: N chat completions through the client chain runStage uses
// (pricing, retries, the provider limiter, the OpenAI-compatible provider on the shared libcurl
// multi handle), IN_FLIGHT at a time, against a provider at BASE_URL. Prints one JSON object:
// wall and CPU seconds (user + system of this process, over the timed part) and peak RSS in MB.
//
// usage: model-bench BASE_URL MODEL N IN_FLIGHT

import Foundation
import ModelProviders
import StageEngine

@main
struct ModelBench {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 5, let count = Int(arguments[3]), let inFlight = Int(arguments[4]) else {
            FileHandle.standardError.write(Data("usage: model-bench BASE_URL MODEL N IN_FLIGHT\n".utf8))
            exit(2)
        }
        let router = ModelRouter(
            embedded: EmbeddedProvider(),
            providers: ["mock": .init(kind: .openai, baseURL: arguments[1], apiKeyEnv: "MOCK_KEY")],
            environment: ["MOCK_KEY": "test-key"]
        )
        let model = "mock:" + arguments[2]
        let prompt = "Name three ways an idle mind recombines ideas."

        func run(_ total: Int) async throws {
            let next = Counter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<inFlight {
                    group.addTask {
                        while await next.take(below: total) {
                            let (client, name) = try router.route(model)
                            let completion = try await client.complete(
                                CompletionRequest(model: name, messages: [ChatMessage(role: .user, content: prompt)])
                            )
                            precondition(!completion.text.isEmpty)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }

        try await run(inFlight)  // warm: libcurl loaded, connections made
        let cpuBefore = cpuSeconds()
        let started = ContinuousClock.now
        try await run(count)
        let elapsed = ContinuousClock.now - started
        let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let cpu = cpuSeconds() - cpuBefore
        print(#"{"wall": \#(wall), "cpu": \#(cpu), "rss": \#(peakResidentMegabytes())}"#)
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    static func peakResidentMegabytes() -> Double {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return (Double(line.split(separator: " ")[1]) ?? 0) / 1024
        }
        return 0
    }
}

/// Hands out call numbers to the workers.
actor Counter {
    private var value = 0

    func take(below total: Int) -> Bool {
        guard value < total else { return false }
        value += 1
        return true
    }
}
