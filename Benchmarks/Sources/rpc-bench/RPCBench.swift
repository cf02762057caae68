import Glibc

/// Entry point: parses the target list, measures each target in turn, prints a markdown report.
@main
struct RPCBench {
    static let usage = """
        usage: rpc-bench [options] TARGET...

        targets (measured in the order given; commands are argv words, terminated by ';'):
          --lsp LABEL CMD [ARG...] ';'      server speaking Content-Length framing on stdio
          --ndjson LABEL CMD [ARG...] ';'   server speaking newline-delimited JSON on stdio
          --unavailable LABEL REASON        a row that is reported as unavailable, not measured

        options:
          --baseline LABEL     row the round-trip ratio is relative to (default: cat)
          --subject PREFIX     rows whose label starts with PREFIX are checked against the targets
                               (default: stagerunner)
          --seconds S          time budget per phase per server (default: 2)
          --round-trips N      max sequential round trips (default: 20000)
          --in-flight N        pipelined window (default: 64, at most 512 so requests fit a pipe buffer)
          --spawns N           max timed spawns (default: 30; at least 5, ~3 s budget)
          --timeout S          a spawn or phase overrunning by S seconds counts as hung (default: 20)
          --placement MODE     split (default): driver on CPU 0, server on CPU 1; shared: both on CPU 0;
                               free: no pinning
          --strict             exit 1 if a target is missed or not measured

        """

    static func main() {
        ensureStandardDescriptors()
        Watchdog.install()
        var config = BenchConfig()
        var targets: [Target] = []
        var baseline = "cat"
        var subject = "stagerunner"
        var strict = false
        var placementMode = Placement.Mode.split

        var args = Array(CommandLine.arguments.dropFirst())[...]
        func next(_ flag: String) -> String {
            guard let value = args.popFirst() else { fail("\(flag) needs a value") }
            return value
        }
        func number(_ flag: String) -> Double {
            let text = next(flag)
            guard let value = Double(text), value > 0 else { fail("\(flag): not a positive number: \(text)") }
            return value
        }
        while let arg = args.popFirst() {
            switch arg {
            case "--lsp", "--ndjson":
                let label = next(arg)
                var argv: [String] = []
                while let word = args.popFirst(), word != ";" { argv.append(word) }
                if argv.isEmpty { fail("\(arg) \(label): missing command") }
                targets.append(Target(label: label, argv: argv, framing: arg == "--lsp" ? .lsp : .ndjson))
            case "--unavailable":
                let label = next(arg)
                targets.append(Target(label: label, argv: [], framing: .lsp, unavailableReason: next(arg)))
            case "--baseline": baseline = next(arg)
            case "--subject": subject = next(arg)
            case "--seconds": config.phaseSeconds = number(arg)
            case "--round-trips": config.maxRoundTrips = Int(number(arg))
            case "--in-flight":
                // More than ~64 KiB of unread requests could block our write while the peer blocks on its own.
                config.inFlight = min(Int(number(arg)), 512)
            case "--timeout": config.timeoutSeconds = number(arg)
            case "--spawns":
                config.maxSpawns = Int(number(arg))
                config.minSpawns = min(config.minSpawns, config.maxSpawns)
            case "--placement":
                let text = next(arg)
                guard let mode = Placement.Mode(rawValue: text) else { fail("--placement: unknown mode \(text)") }
                placementMode = mode
            case "--strict": strict = true
            case "-h", "--help":
                print(usage, terminator: "")
                exit(0)
            default: fail("unknown argument: \(arg)")
            }
        }
        if targets.isEmpty { fail("no targets given") }

        let placement = Placement(mode: placementMode)
        let runner = Runner(config: config, placement: placement)
        var results: [PeerResult] = []
        for target in targets {
            log("rpc-bench: measuring \(target.label)…")
            let result = runner.measure(target)
            if let reason = result.unavailable { log("rpc-bench:   unavailable: \(reason)") }
            results.append(result)
        }

        let report = Report(
            results: results,
            config: config,
            placement: placement.description,
            baselineLabel: baseline,
            subjectPrefix: subject
        )
        let (text, allMet) = report.render()
        print(text, terminator: "")
        exit(strict && !allMet ? 1 : 0)
    }

    /// Progress goes to stderr so stdout stays a clean markdown report.
    static func log(_ message: String) {
        let line = message + "\n"
        var bytes = Array(line.utf8)
        _ = write(2, &bytes, bytes.count)
    }

    static func fail(_ message: String) -> Never {
        log("rpc-bench: \(message)\n\n\(usage)")
        exit(2)
    }

    /// With fd 0-2 closed (e.g. CI without stdin), pipe2 could hand out fd 0 and confuse the child's dup2s.
    static func ensureStandardDescriptors() {
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) < 0 {
            _ = open("/dev/null", O_RDWR)
        }
    }
}
