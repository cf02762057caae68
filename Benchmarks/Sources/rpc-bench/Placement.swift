import Glibc

/// Which CPUs the driver and the servers run on.
///
/// Left alone, the scheduler sometimes puts both ends of the pipe on one core and sometimes on two, and on a VM the
/// two cases differ ~10× (a cross-core wake-up of an idle vCPU costs tens of µs). Pinning makes rows comparable.
struct Placement {
    enum Mode: String {
        /// Driver on CPU 0, server on CPU 1: the editor and the server on separate cores.
        case split
        /// Both on CPU 0: round trips then expose the server's CPU cost per message instead of wake-up latency.
        case shared
        /// No pinning; the scheduler decides (results may be bimodal).
        case free
    }

    private typealias SetAffinity = @convention(c) (pid_t, Int, UnsafeRawPointer) -> Int32

    private(set) var mode: Mode
    private(set) var note: String?
    private let setAffinity: SetAffinity?
    private let driverCPU = 0
    private let serverCPU = 1

    /// Pins the driver now; servers are pinned as they are spawned (children inherit the spawner's affinity).
    init(mode requested: Mode) {
        mode = requested
        // sched_setaffinity is a GNU extension that the Glibc module does not export; look it up in libc instead.
        let symbol = dlsym(dlopen(nil, RTLD_NOW), "sched_setaffinity")
        setAffinity = symbol.map { unsafeBitCast($0, to: SetAffinity.self) }
        if mode == .split && sysconf(Int32(_SC_NPROCESSORS_ONLN)) < 2 {
            mode = .shared
            note = "only one CPU online, split placement fell back to shared"
        }
        if mode != .free && !pin(driverCPU) {
            mode = .free
            note = "could not pin to CPU \(driverCPU) (\(errnoText())), running unpinned"
        }
    }

    /// Runs `body` (which spawns a server) with this process on the server's CPU, so the child starts there.
    func spawning<T>(_ body: () throws -> T) rethrows -> T {
        guard mode == .split, pin(serverCPU) else { return try body() }
        defer { _ = pin(driverCPU) }
        return try body()
    }

    var description: String {
        let base: String
        switch mode {
        case .split: base = "split: driver on CPU \(driverCPU), server on CPU \(serverCPU)"
        case .shared: base = "shared: driver and server both on CPU \(driverCPU)"
        case .free: base = "free: not pinned, the scheduler decides (round trips may be bimodal)"
        }
        return note.map { base + " (\($0))" } ?? base
    }

    private func pin(_ cpu: Int) -> Bool {
        guard let setAffinity else { return false }
        var set = cpu_set_t()
        withUnsafeMutableBytes(of: &set) { raw in
            raw.storeBytes(of: UInt64(1) << UInt64(cpu), toByteOffset: cpu / 64 * 8, as: UInt64.self)
        }
        return setAffinity(0, MemoryLayout<cpu_set_t>.size, &set) == 0
    }
}
