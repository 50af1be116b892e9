import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock on a folder a command writes (`FOLDER/.lock`, `flock`), held until the process ends, so a
/// second writer fails at once instead of interleaving its files with the first's.
public final class FolderLock: @unchecked Sendable {
    private let fd: Int32

    /// Takes the lock or throws (exit 73) naming the folder and what to do; `what` names the work ("training").
    public init(folder: String, what: String) throws {
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = URL(fileURLWithPath: folder).appendingPathComponent(".lock").path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OutputPath.failure(path, errno, creating: true, folder: folder) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK {
                throw CLIError("\(folder) is in use by another \(what) process (it holds \(path)); wait for it to finish or choose another folder.", code: .cannotCreate)
            }
            throw CLIError("cannot lock \(path): \(String(cString: strerror(code)))", code: .ioError)
        }
    }

    deinit { close(fd) }
}

/// Bounds checks for numeric options, for `validate()`: a value outside its range is one `error:` line naming the
/// option and the range, exit 64, and never reaches an overflow or a trap.
public enum OptionBounds {
    /// Throws unless `value` (of `option`) lies in `range`.
    public static func check<T: Comparable>(_ value: T?, _ option: String, _ range: ClosedRange<T>) throws {
        guard let value else { return }
        guard range.contains(value) else {
            throw CLIError("\(option) \(value) is out of range; use a value from \(range.lowerBound) to \(range.upperBound).", code: .usage)
        }
    }

    /// Throws unless `value` is finite and in `range`.
    public static func check(_ value: Float?, _ option: String, _ range: ClosedRange<Float>) throws {
        guard let value else { return }
        guard value.isFinite, range.contains(value) else {
            throw CLIError("\(option) \(value) is out of range; use a finite value from \(range.lowerBound) to \(range.upperBound).", code: .usage)
        }
    }

    /// Runs the checks of a `validate()`, printing a failure as one `error:` line and exiting with its code.
    public static func validating(_ body: () throws -> Void) throws {
        do { try body() } catch let error as CLIError {
            Console.error("error: \(error.message)")
            throw error.code.exitCode
        }
    }
}
