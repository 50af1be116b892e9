import Foundation

/// An exclusive lock that lets only one build write to a store at a time.
///
/// It is a `flock` on the database file itself: independent of SQLite's own POSIX locks on Linux, so it does not
/// disturb them, and released by the kernel when the process dies, even by `kill -9`, so it never goes stale.
public final class BuildLock: @unchecked Sendable {
    private var descriptor: Int32
    /// True when this lock created the file: only then may a failed build remove it.
    public private(set) var createdFile = false

    /// Takes the lock on `path` (creating the file if needed), or throws at once if another build holds it.
    public init(path: String) throws {
        _ = try StorePath.check(path, writing: true)
        descriptor = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if descriptor >= 0 {
            createdFile = true
        } else if errno == EEXIST {
            descriptor = open(path, O_RDWR | O_CLOEXEC)
        }
        guard descriptor >= 0 else {
            throw StoreError("cannot open \(path): \(String(cString: strerror(errno))). Check the path and its permissions.")
        }
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let reason = errno == EWOULDBLOCK ? "another sspa-knowledge build is writing to it" : String(cString: strerror(errno))
            close(descriptor)
            descriptor = -1
            throw StoreError("\(path) is busy: \(reason). Wait for that build to finish, or use another --db.")
        }
    }

    public func release() {
        guard descriptor >= 0 else { return }
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}
