import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where each row of one membership file lies, by gen id, so that a stage run reads the one row
/// it needs instead of the whole file: a cohort of a million rows costs a fresh server a lookup,
/// not a load.
///
/// Built by one scan of the file (the same record rules as ``CSVTable``), and kept in
/// `.stagerunner/index/` keyed by the file's identity (inode, size, modification and change
/// times), so the next server maps it instead of scanning. A file changed within the last two
/// seconds is indexed in memory only: a second change in the same clock tick could leave its
/// times as they were.
final class MembershipFileIndex: @unchecked Sendable {
    // @unchecked: the entries are immutable once made, whether mapped or allocated.

    /// The file, relative to the workspace.
    let file: String
    let identity: FileIdentity
    /// The columns from the header; nil when it lacks stage, gen_id or template_id (no rows).
    let columns: MembershipColumns?
    let headerCount: Int
    private let path: String
    private let entries: UnsafeRawBufferPointer
    private let release: @Sendable () -> Void
    let count: Int
    /// Rows read lately: a parent is looked up by each of its children.
    private let recent = Mutex<[String: MembershipRow?]>([:])
    static let recentLimit = 4096

    /// One record: the FNV-1a hash of its gen id, its bytes (without the line end) and its line.
    struct Entry: Comparable {
        var hash: UInt64
        var start: UInt64
        var length: UInt32
        var line: UInt32

        static func < (a: Entry, b: Entry) -> Bool { (a.hash, a.start) < (b.hash, b.start) }
    }

    static let entrySize = 24
    static let headerSize = 72
    static let magic = Array("SRMX0001".utf8)
    /// Where the indexes are kept, relative to the workspace.
    static let directory = ".stagerunner/index"
    /// Files whose change time is this recent are not trusted to a saved index.
    static let settleSeconds = 2

    private init(
        file: String,
        path: String,
        identity: FileIdentity,
        columns: MembershipColumns?,
        headerCount: Int,
        entries: UnsafeRawBufferPointer,
        count: Int,
        release: @escaping @Sendable () -> Void
    ) {
        self.file = file
        self.path = path
        self.identity = identity
        self.columns = columns
        self.headerCount = headerCount
        self.entries = entries
        self.count = count
        self.release = release
    }

    deinit { release() }

    /// The index of `file`: the saved one when it matches the file, else a fresh scan (saved
    /// when the workspace can be written). Nil when the file cannot be read or is not UTF-8
    /// (the full load reports it).
    static func open(
        _ file: String,
        in workspace: Workspace,
        now: FileIdentity.Time = FileIdentity.now()
    ) -> MembershipFileIndex? {
        let path = workspace.path(file)
        guard let identity = FileIdentity(path: path) else { return nil }
        let saved = workspace.path("\(directory)/\(savedName(file))")
        if let index = load(saved, file: file, path: path, identity: identity) { return index }
        guard let (bytes, readIdentity) = readWhole(path), readIdentity == identity else { return nil }
        guard let built = bytes.withUnsafeBufferPointer({ build($0, file: file) }) else { return nil }
        if identity.isSettled(now: now) {
            save(built, file: file, identity: identity, to: saved, in: workspace)
            if let index = load(saved, file: file, path: path, identity: identity) { return index }
        }
        return inMemory(built, file: file, path: path, identity: identity)
    }

    /// The valid row for `genId`, the first in the file when it is listed more than once.
    func row(_ genId: String) -> MembershipRow? {
        if let known = recent.withLock({ $0[genId] }) { return known }
        let found = read(genId)
        recent.withLock { recent in
            if recent.count >= Self.recentLimit { recent.removeAll(keepingCapacity: true) }
            recent[genId] = .some(found)
        }
        return found
    }

    private func read(_ genId: String) -> MembershipRow? {
        guard let columns else { return nil }
        let hash = Self.hash(genId)
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if entryHash(middle) < hash { low = middle + 1 } else { high = middle }
        }
        var position = low
        while position < count && entryHash(position) == hash {
            let base = position * Self.entrySize
            let start = entries.loadUnaligned(fromByteOffset: base + 8, as: UInt64.self)
            let length = entries.loadUnaligned(fromByteOffset: base + 16, as: UInt32.self)
            let line = entries.loadUnaligned(fromByteOffset: base + 20, as: UInt32.self)
            position += 1
            guard let record = readRecord(start: start, length: length, line: Int(line)),
                case .row(let row) = columns.row(record, file: file),
                row.genId == genId
            else { continue }
            return row
        }
        return nil
    }

    private func entryHash(_ position: Int) -> UInt64 {
        entries.loadUnaligned(fromByteOffset: position * Self.entrySize, as: UInt64.self)
    }

    private func readRecord(start: UInt64, length: UInt32, line: Int) -> CSVTable.Row? {
        Self.record(path, at: Int(start), length: Int(length), file: file, line: line, fields: headerCount)
    }

    /// The CSV record of `length` bytes at `offset` in the file at `path`, which starts on `line`.
    private static func record(
        _ path: String,
        at offset: Int,
        length: Int,
        file: String,
        line: Int,
        fields: Int? = nil
    ) -> CSVTable.Row? {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: length)
        guard bytes.withUnsafeMutableBytes({ pread(descriptor, $0.baseAddress, length, off_t(offset)) }) == length
        else { return nil }
        return bytes.withUnsafeBufferPointer { CSVTable.record($0, file: file, line: line, fields: fields) }
    }

    // MARK: - Building

    struct Built {
        var headerEnd: Int
        var header: [CSVTable.Cell]
        var entries: [Entry]
    }

    /// Scans the file's bytes: the header, then every record's gen id, place and line.
    static func build(_ bytes: UnsafeBufferPointer<UInt8>, file: String) -> Built? {
        guard isUTF8(bytes) else { return nil }
        var scanner = RecordScanner(bytes)
        guard let first = scanner.next(field: nil) else { return Built(headerEnd: 0, header: [], entries: []) }
        let header =
            CSVTable.record(UnsafeBufferPointer(rebasing: bytes[first.start..<first.end]), file: file, line: 1)?.cells
            ?? []
        let headerEnd = first.end
        let genColumn = header.firstIndex { $0.value == "gen_id" }
        var entries: [Entry] = []
        while let record = scanner.next(field: genColumn) {
            guard let field = record.field else { continue }
            let hash: UInt64
            if field.quoted {
                // Rare: a quoted gen id; read the record properly for its value.
                let slice = UnsafeBufferPointer(rebasing: bytes[record.start..<record.end])
                guard let genColumn, let row = CSVTable.record(slice, file: file, line: record.line),
                    genColumn < row.cells.count
                else { continue }
                hash = Self.hash(row.cells[genColumn].value)
            } else {
                hash = Self.hash(UnsafeBufferPointer(rebasing: bytes[field.range]))
            }
            entries.append(
                Entry(
                    hash: hash,
                    start: UInt64(record.start),
                    length: UInt32(clamping: record.end - record.start),
                    line: UInt32(clamping: record.line)
                )
            )
        }
        entries.sort()
        return Built(headerEnd: headerEnd, header: header, entries: entries)
    }

    static func isUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        // Most membership files are ASCII: checked eight bytes at a time.
        var index = 0
        let raw = UnsafeRawBufferPointer(bytes)
        while index + 8 <= bytes.count {
            if raw.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 {
                return String(validating: bytes, as: UTF8.self) != nil
            }
            index += 8
        }
        while index < bytes.count {
            if bytes[index] >= 0x80 { return String(validating: bytes, as: UTF8.self) != nil }
            index += 1
        }
        return true
    }

    /// FNV-1a, 64 bits: the same in every process, as a saved index needs.
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return hash
    }

    static func hash(_ text: String) -> UInt64 {
        var text = text
        return text.withUTF8 { hash($0) }
    }

    // MARK: - Saving and loading

    /// The saved index's file name: the membership file's path with its separators escaped.
    static func savedName(_ file: String) -> String {
        var name = ""
        for character in file.unicodeScalars {
            switch character {
            case "/": name += "%2F"
            case "%": name += "%25"
            default: name.unicodeScalars.append(character)
            }
        }
        return name + ".index"
    }

    private static func save(
        _ built: Built,
        file: String,
        identity: FileIdentity,
        to saved: String,
        in workspace: Workspace
    ) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headerSize + built.entries.count * entrySize)
        bytes += magic
        func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        }
        append(identity.inode)
        append(identity.size)
        append(identity.modified.seconds)
        append(identity.modified.nanoseconds)
        append(identity.changed.seconds)
        append(identity.changed.nanoseconds)
        append(UInt64(built.headerEnd))
        append(UInt64(built.entries.count))
        for entry in built.entries {
            append(entry.hash)
            append(entry.start)
            append(entry.length)
            append(entry.line)
        }
        // Written whole under a temporary name, flushed, and renamed: the first server pays for
        // writing it out, not the next one's first durable commit (which flushes the file system).
        let temporary = workspace.path("\(directory)/\(Temporaries.name(for: savedName(file)))")
        do {
            try OwnerOnly.createDirectories(workspace.path(directory))
            try OwnerOnly.createFile(temporary, bytes)
        } catch {
            unlink(temporary)
            return
        }
        let descriptor = Glibc.open(temporary, O_RDONLY | O_CLOEXEC)
        if descriptor >= 0 {
            _ = fsync(descriptor)
            close(descriptor)
        }
        if rename(temporary, saved) != 0 { unlink(temporary) }
    }

    private static func load(
        _ saved: String,
        file: String,
        path: String,
        identity: FileIdentity
    )
        -> MembershipFileIndex?
    {
        let descriptor = Glibc.open(saved, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_size >= headerSize else { return nil }
        let size = Int(status.st_size)
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), mapped != MAP_FAILED else {
            return nil
        }
        let unmap: @Sendable () -> Void = { [address = UInt(bitPattern: mapped)] in
            _ = munmap(UnsafeMutableRawPointer(bitPattern: address), size)
        }
        let raw = UnsafeRawBufferPointer(start: mapped, count: size)
        func value<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            T(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        let savedIdentity = FileIdentity(
            inode: value(8, UInt64.self),
            size: value(16, Int64.self),
            modified: .init(seconds: value(24, Int64.self), nanoseconds: value(32, Int64.self)),
            changed: .init(seconds: value(40, Int64.self), nanoseconds: value(48, Int64.self))
        )
        let headerEnd = Int(value(56, UInt64.self))
        let count = Int(value(64, UInt64.self))
        guard Array(raw[0..<8]) == magic, savedIdentity == identity, count >= 0,
            size == headerSize + count * entrySize, headerEnd <= Int(identity.size),
            let header = readHeader(path, length: headerEnd, file: file)
        else {
            unmap()
            return nil
        }
        let (columns, _) = MembershipColumns.find(in: header, file: file)
        return MembershipFileIndex(
            file: file,
            path: path,
            identity: identity,
            columns: columns,
            headerCount: header.count,
            entries: UnsafeRawBufferPointer(rebasing: raw[headerSize...]),
            count: count,
            release: unmap
        )
    }

    private static func inMemory(
        _ built: Built,
        file: String,
        path: String,
        identity: FileIdentity
    )
        -> MembershipFileIndex
    {
        let storage = UnsafeMutableRawBufferPointer.allocate(
            byteCount: max(1, built.entries.count * entrySize),
            alignment: 8
        )
        for (position, entry) in built.entries.enumerated() {
            let base = position * entrySize
            storage.storeBytes(of: entry.hash, toByteOffset: base, as: UInt64.self)
            storage.storeBytes(of: entry.start, toByteOffset: base + 8, as: UInt64.self)
            storage.storeBytes(of: entry.length, toByteOffset: base + 16, as: UInt32.self)
            storage.storeBytes(of: entry.line, toByteOffset: base + 20, as: UInt32.self)
        }
        let (columns, _) = MembershipColumns.find(in: built.header, file: file)
        let address = UInt(bitPattern: storage.baseAddress)
        return MembershipFileIndex(
            file: file,
            path: path,
            identity: identity,
            columns: columns,
            headerCount: built.header.count,
            entries: UnsafeRawBufferPointer(storage),
            count: built.entries.count,
            release: { UnsafeMutableRawPointer(bitPattern: address)?.deallocate() }
        )
    }

    private static func readHeader(_ path: String, length: Int, file: String) -> [CSVTable.Cell]? {
        guard length > 0 else { return [] }
        return record(path, at: 0, length: length, file: file, line: 1)?.cells
    }

    /// The whole file and the identity it had while it was read (nil if it changed meanwhile).
    private static func readWhole(_ path: String) -> ([UInt8], FileIdentity)? {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        guard let before = FileIdentity(descriptor: descriptor) else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(before.size))
        var done = 0
        while done < bytes.count {
            let read = bytes.withUnsafeMutableBytes {
                pread(descriptor, $0.baseAddress! + done, $0.count - done, off_t(done))
            }
            if read < 0 && errno == EINTR { continue }
            guard read > 0 else { return nil }
            done += read
        }
        guard FileIdentity(descriptor: descriptor) == before else { return nil }
        return (bytes, before)
    }
}

/// What tells one version of a file from another without reading it.
struct FileIdentity: Hashable, Sendable {
    struct Time: Hashable, Sendable {
        var seconds: Int64
        var nanoseconds: Int64
    }

    var inode: UInt64
    var size: Int64
    var modified: Time
    var changed: Time

    init(inode: UInt64, size: Int64, modified: Time, changed: Time) {
        self.inode = inode
        self.size = size
        self.modified = modified
        self.changed = changed
    }

    init(_ status: stat) {
        inode = UInt64(status.st_ino)
        size = Int64(status.st_size)
        modified = Time(seconds: Int64(status.st_mtim.tv_sec), nanoseconds: Int64(status.st_mtim.tv_nsec))
        changed = Time(seconds: Int64(status.st_ctim.tv_sec), nanoseconds: Int64(status.st_ctim.tv_nsec))
    }

    init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { return nil }
        self.init(status)
    }

    init?(descriptor: Int32) {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        self.init(status)
    }

    static func now() -> Time {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Time(seconds: Int64(time.tv_sec), nanoseconds: Int64(time.tv_nsec))
    }

    /// Whether the file last changed long enough ago that its times would show a further change.
    func isSettled(now: Time) -> Bool {
        let age = (now.seconds - changed.seconds) * 1_000_000_000 + (now.nanoseconds - changed.nanoseconds)
        return age > Int64(MembershipFileIndex.settleSeconds) * 1_000_000_000
    }
}

/// Reads a CSV record by record, keeping only where each is and one field of it.
struct RecordScanner {
    struct Record {
        var start: Int
        /// Where the record ends, before its line end.
        var end: Int
        var line: Int
        /// The wanted field: its bytes (with the quotes when quoted).
        var field: (range: Range<Int>, quoted: Bool)?
    }

    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0
    var line = 1

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        // A UTF-8 byte-order mark.
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { index = 3 }
    }

    /// The next record that is not blank, with field number `field` (0-based) when it has one.
    /// Follows ``CSVTable/records(in:file:)`` byte for byte, so lines and records agree.
    mutating func next(field wanted: Int?) -> Record? {
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), newline = UInt8(ascii: "\n")
        let carriageReturn = UInt8(ascii: "\r")
        let count = bytes.count
        while index <= count {
            if index == count { return nil }
            let start = index
            let recordLine = line
            var blank = true
            var fieldNumber = 0
            var found: (range: Range<Int>, quoted: Bool)?
            var end = count
            while true {
                let fieldStart = index
                if index < count && bytes[index] == quote {
                    blank = false
                    index += 1
                    while index < count {
                        let byte = bytes[index]
                        if byte == quote {
                            if index + 1 < count && bytes[index + 1] == quote {
                                index += 2
                                continue
                            }
                            index += 1
                            break
                        }
                        if byte == newline { line += 1 }
                        index += 1
                    }
                    if index < count && bytes[index] != comma && bytes[index] != newline
                        && bytes[index] != carriageReturn
                    {
                        while index < count && bytes[index] != comma && bytes[index] != newline { index += 1 }
                    }
                    if fieldNumber == wanted { found = (fieldStart..<index, true) }
                } else {
                    while index < count {
                        let byte = bytes[index]
                        if byte == comma || byte == newline { break }
                        if byte == carriageReturn && index + 1 < count && bytes[index + 1] == newline { break }
                        index += 1
                    }
                    if index > fieldStart { blank = false }
                    if fieldNumber == wanted { found = (fieldStart..<index, false) }
                }
                if index >= count {
                    end = count
                    index = count + 1
                    break
                }
                if bytes[index] == comma {
                    blank = false
                    index += 1
                    fieldNumber += 1
                    continue
                }
                end = index
                if bytes[index] == carriageReturn { index += 1 }
                index += 1
                line += 1
                break
            }
            if !blank { return Record(start: start, end: end, line: recordLine, field: found) }
        }
        return nil
    }
}

/// The rows of every membership file of a workspace, found by gen id through each file's index;
/// what a stage run needs of the membership, without loading it.
public struct MembershipLookup: Sendable {
    let files: [MembershipFileIndex]

    /// The row for `genId`, whatever its stage: the first valid one, in file order, as
    /// ``Membership`` takes it.
    public func row(_ genId: String) -> MembershipRow? {
        for file in files {
            if let row = file.row(genId) { return row }
        }
        return nil
    }
}
