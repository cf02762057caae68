import ModelProviders

/// A provider's `concurrency` held across every process on the workspace: slot `i` of provider
/// `p` is a lock on `.stagerunner/limits/<p>/<i>.lock`, held for the length of a call. A process
/// that dies releases its slots with its locks.
struct WorkspaceCallSlots: SharedCallSlots {
    let workspace: Workspace

    static let folder = ".stagerunner/limits"

    func take(_ provider: String, of count: Int) -> (any SharedCallSlot)? {
        let folder = "\(Self.folder)/\(Self.fileName(provider))"
        // From a random slot, so that processes do not all try the same ones first.
        let start = Int.random(in: 0..<count)
        for offset in 0..<count {
            let path = workspace.path("\(folder)/\((start + offset) % count).lock")
            do {
                if let lock = try FileLock.tryAcquire(path) { return Slot(lock: lock) }
            } catch {
                // No lock can be taken here (a read-only workspace): the limit holds per process.
                return Unshared()
            }
        }
        return nil
    }

    /// A provider's name as a file name: itself when it is plain, else its bytes in hex.
    static func fileName(_ provider: String) -> String {
        let plain = provider.utf8.allSatisfy { byte in
            (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 45
                || byte == 95
        }
        if plain && !provider.isEmpty { return provider }
        return "x" + provider.utf8.map { String($0, radix: 16) }.joined()
    }

    private struct Slot: SharedCallSlot {
        let lock: FileLock
        func release() { lock.release() }
    }

    private struct Unshared: SharedCallSlot {
        func release() {}
    }
}
