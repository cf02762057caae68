import Glibc

/// Renders results as markdown: machine header, one table row per server, sample counts, and target checks.
struct Report {
    let results: [PeerResult]
    let config: BenchConfig
    let placement: String
    let baselineLabel: String
    let subjectPrefix: String

    /// The row the throughput column is compared against: the first available subject, else the baseline.
    private var reference: PeerResult? {
        let available = results.filter { $0.unavailable == nil && $0.pipelined != nil }
        return available.first { $0.label == subjectPrefix + " serve" }
            ?? available.first { $0.label.hasPrefix(subjectPrefix) }
            ?? available.first { $0.label == baselineLabel }
    }

    private var baseline: PeerResult? {
        results.first { $0.label == baselineLabel && $0.unavailable == nil }
    }

    func render() -> (text: String, allTargetsMet: Bool) {
        var out = "# JSON-RPC transport benchmark\n\n"
        out += "- date: \(utcDate())\n"
        out += "- machine: \(machineSummary())\n"
        out += "- placement: \(placement)\n"
        let seconds = fixed(config.phaseSeconds, 1)
        out += "- method: round trips are sequential `ping`s (≤ \(config.maxRoundTrips) or \(seconds) s); "
        out += "pipelined keeps \(config.inFlight) in flight for \(seconds) s; "
        out += "spawn→initialize is the median of ≤ \(config.maxSpawns) fresh processes; "
        out += "idle RSS is VmRSS after initialize + 8 pings\n\n"

        let referenceLabel = reference?.label ?? "—"
        out += "| server | round trip median µs | p99 µs | × \(baselineLabel) | pipelined msgs/s "
        out += "| × \(referenceLabel) | spawn→initialize ms | idle RSS MB | notes |\n"
        out += "|---|---:|---:|---:|---:|---:|---:|---:|---|\n"
        for result in results { out += row(result) }

        out += "\nSamples:\n"
        for result in results where result.unavailable == nil {
            var parts: [String] = []
            if let rtt = result.roundTrip { parts.append("\(grouped(rtt.count)) round trips") }
            if let pipe = result.pipelined {
                parts.append("\(grouped(pipe.messages)) pipelined msgs in \(fixed(pipe.seconds, 2)) s")
            }
            parts.append("\(result.spawnMillis.count) timed spawns")
            out += "- \(result.label): \(parts.joined(separator: ", "))\n"
        }

        let (targets, met) = targetSection()
        out += targets
        return (out, met)
    }

    private func row(_ result: PeerResult) -> String {
        if let reason = result.unavailable {
            return "| \(result.label) | unavailable | | | | | | | \(cell(reason)) |\n"
        }
        var cells = [result.label]
        if let rtt = result.roundTrip {
            cells.append(fixed(rtt.medianMicros, 1))
            cells.append(fixed(rtt.p99Micros, 1))
            if let base = baseline?.roundTrip {
                cells.append(ratio(rtt.medianMicros / base.medianMicros))
            } else {
                cells.append("—")
            }
        } else {
            cells += ["failed", "failed", "—"]
        }
        if let pipe = result.pipelined {
            cells.append(grouped(Int(pipe.perSecond.rounded())))
            if let ref = reference?.pipelined {
                cells.append(ratio(pipe.perSecond / ref.perSecond))
            } else {
                cells.append("—")
            }
        } else {
            cells += ["failed", "—"]
        }
        cells.append(result.spawnMedianMillis.map { fixed($0, 2) } ?? "failed")
        cells.append(result.idleRSSKB.map { fixed(Double($0) / 1024, 1) } ?? "—")
        cells.append(cell(result.notes.joined(separator: "; ")))
        return "| " + cells.joined(separator: " | ") + " |\n"
    }

    /// The four StageRunner goals, checked for every row whose label starts with the subject prefix.
    private func targetSection() -> (String, Bool) {
        var out = "\nTargets:\n"
        var allMet = true
        let subjects = results.filter { $0.label.hasPrefix(subjectPrefix) }
        if subjects.isEmpty {
            return (out + "- no \(subjectPrefix) row was requested\n", false)
        }
        for subject in subjects {
            out += "\n\(subject.label):\n"
            if let reason = subject.unavailable {
                out += "- not evaluated: unavailable (\(reason))\n"
                allMet = false
                continue
            }
            // (goal, met?, measured value); nil means the phase failed or the baseline is missing.
            let rttGoal = "round trip within 1.15× of \(baselineLabel)"
            var checks: [(String, Bool?, String)] = []
            if let rtt = subject.roundTrip, let base = baseline?.roundTrip {
                let times = rtt.medianMicros / base.medianMicros
                let micros = "\(fixed(rtt.medianMicros, 1)) vs \(fixed(base.medianMicros, 1)) µs"
                checks.append((rttGoal, times <= 1.15, "\(fixed(times, 2))× (\(micros))"))
            } else {
                checks.append((rttGoal, nil, ""))
            }
            let rate = subject.pipelined?.perSecond
            checks.append(
                (
                    "pipelined ≥ 300,000 msgs/s", rate.map { $0 >= 300_000 },
                    rate.map { "\(grouped(Int($0.rounded()))) msgs/s" } ?? ""
                )
            )
            let spawn = subject.spawnMedianMillis
            checks.append(
                (
                    "spawn → initialize < 10 ms", spawn.map { $0 < 10 },
                    spawn.map { "\(fixed($0, 2)) ms" } ?? ""
                )
            )
            let rss = subject.idleRSSKB.map { Double($0) / 1024 }
            checks.append(("idle RSS < 12 MB", rss.map { $0 < 12 }, rss.map { "\(fixed($0, 1)) MB" } ?? ""))
            for (name, met, detail) in checks {
                if met != true { allMet = false }
                guard let met else {
                    out += "- \(name): not measured\n"
                    continue
                }
                out += "- \(name): \(met ? "met" : "MISSED") — \(detail)\n"
            }
        }
        return (out, allMet)
    }

    /// Keeps free text from breaking the markdown table.
    private func cell(_ text: String) -> String {
        String(text.map { $0 == "|" ? "/" : ($0 == "\n" ? " " : $0) })
    }
}

/// "1.13×"; small ratios keep three decimals so a slow peer does not print as 0.00×.
func ratio(_ value: Double) -> String {
    fixed(value, value < 0.095 ? 3 : 2) + "×"
}

/// `value` rounded to `decimals` places, without Foundation's String(format:).
func fixed(_ value: Double, _ decimals: Int) -> String {
    guard value.isFinite else { return "—" }
    var scale = 1
    for _ in 0..<decimals { scale *= 10 }
    let scaled = Int((abs(value) * Double(scale)).rounded())
    let sign = value < 0 && scaled != 0 ? "-" : ""
    let whole = String(scaled / scale)
    guard decimals > 0 else { return sign + whole }
    let fraction = String(scaled % scale)
    return sign + whole + "." + String(repeating: "0", count: decimals - fraction.count) + fraction
}

/// 1234567 → "1,234,567".
func grouped(_ value: Int) -> String {
    let digits = String(abs(value))
    var out = ""
    for (index, char) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
        out.append(char)
    }
    return (value < 0 ? "-" : "") + out
}

func utcDate() -> String {
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    var buffer = [CChar](repeating: 0, count: 64)
    let length = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S UTC", &parts)
    return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// "2 cores (CPU model), Linux <release>".
func machineSummary() -> String {
    let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))
    var summary = "\(cores) core\(cores == 1 ? "" : "s")"
    if let info = readSmallFile("/proc/cpuinfo"),
        let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
        let colon = line.firstIndex(of: ":")
    {
        summary += " (\(line[line.index(after: colon)...].trimmingPrefix(" ")))"
    }
    var names = utsname()
    if uname(&names) == 0 {
        let release = withUnsafeBytes(of: &names.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        summary += ", Linux \(release)"
    }
    return summary
}
