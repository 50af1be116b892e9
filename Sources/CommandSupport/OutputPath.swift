import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Every file both executables write goes through here: an output that is one of the command's inputs is refused
/// before any work starts, and each file is written to a temporary file in its own folder, flushed, then renamed
/// into place, so a crash, a full disk or a file-size limit never leaves half a file or touches the old one.
public enum OutputPath {
    /// One input of a command: the option that named it and its path.
    public struct Input: Sendable {
        public var option: String
        public var path: String
        public init(_ option: String, _ path: String) {
            self.option = option
            self.path = path
        }
    }

    /// The absolute path `path` resolves to: symlinks of its existing part followed, `.` and `..` removed.
    public static func resolved(_ path: String) -> String {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL
        if let real = realpath(absolute.path, nil) {
            defer { free(real) }
            return String(cString: real)
        }
        let parent = absolute.deletingLastPathComponent()
        if parent.path != absolute.path, let real = realpath(parent.path, nil) {
            defer { free(real) }
            return URL(fileURLWithPath: String(cString: real)).appendingPathComponent(absolute.lastPathComponent).path
        }
        return absolute.path
    }

    /// The file's identity (device and inode), when it exists.
    static func identity(_ path: String) -> (UInt64, UInt64)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }

    /// Throws (exit 64) when `output` (named by `option`) is one of `inputs`: the same resolved path, or the same
    /// file under another name (a hard link or a symlink).
    public static func refuseOverwriting(_ output: String, option: String, inputs: [Input]) throws {
        let target = resolved(output)
        let targetID = identity(output)
        for input in inputs {
            let same = resolved(input.path) == target
                || (targetID != nil && identity(input.path).map { $0 == targetID! } == true)
            if same {
                throw CLIError("\(option) \(output) is the same file as \(input.option) \(input.path); writing it would destroy an input. Choose another \(option).", code: .usage)
            }
        }
    }

    /// The inputs a SQLite store is made of: the file and its write-ahead log and shared-memory files.
    public static func storeInputs(_ option: String, _ path: String) -> [Input] {
        [Input(option, path), Input(option, path + "-wal"), Input(option, path + "-shm"), Input(option, path + "-journal")]
    }

    /// The files of a Hugging Face CLIP checkpoint folder a command reads.
    public static func checkpointInputs(_ option: String, _ directory: String) -> [Input] {
        [Input(option, directory)] + ["config.json", "model.safetensors", "vocab.json", "merges.txt", "preprocessor_config.json"]
            .map { Input(option, URL(fileURLWithPath: directory).appendingPathComponent($0).path) }
    }

    /// Writes `data` to `path` through a temporary file in the same folder, flushed to disk and renamed into place.
    /// On any failure the temporary file is removed, the old file (if any) is left as it was, and the error says
    /// why (a full disk and a file-size limit by name) and what to do.
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        var template = Array(url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).XXXXXX.tmp").path.utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, 4) }
        guard fd >= 0 else { throw failure(path, errno, creating: true, folder: folder) }
        let temp = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        var ok = false
        defer { if !ok { unlink(temp) } }
        var written = 0
        let status: Int32 = data.withUnsafeBytes { raw -> Int32 in
            while written < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                written += n
            }
            return fsync(fd) == 0 ? 0 : errno
        }
        let closed = close(fd) == 0 ? 0 : errno
        if status != 0 { throw failure(path, status) }
        if closed != 0 { throw failure(path, closed) }
        fchmodIfNeeded(temp)
        guard rename(temp, path) == 0 else { throw failure(path, errno) }
        ok = true
        syncFolder(folder)
    }

    /// New files get the usual `rw-r--r--` (less the umask) rather than mkstemp's `rw-------`.
    static func fchmodIfNeeded(_ path: String) {
        let mask = umask(0)
        umask(mask)
        chmod(path, 0o666 & ~mask)
    }

    /// Flushes a folder's entries, so a rename survives a power cut.
    public static func syncFolder(_ folder: String) {
        let fd = open(folder, O_RDONLY)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// The tool's sentence for a failed write of `path` with `code` (errno).
    public static func failure(_ path: String, _ code: Int32, creating: Bool = false, folder: String? = nil) -> CLIError {
        switch code {
        case ENOSPC, EDQUOT:
            return CLIError("cannot write \(path): the disk is full (\(String(cString: strerror(code)))); free some space and run again. Nothing was half-written; earlier files are intact.", code: .ioError)
        case EFBIG:
            return CLIError("cannot write \(path): the file is larger than the file-size limit (`ulimit -f`); raise the limit and run again. Nothing was half-written; earlier files are intact.", code: .ioError)
        case EACCES, EPERM, EROFS:
            return CLIError("cannot write \(creating ? "in \(folder ?? path)" : path): \(String(cString: strerror(code))); choose a writable place.", code: .cannotCreate)
        case ENOENT where creating:
            return CLIError("cannot write \(path): the folder \(folder ?? "") does not exist.", code: .cannotCreate)
        default:
            return CLIError("cannot write \(path): \(String(cString: strerror(code))).", code: .ioError)
        }
    }

    /// Makes writes past a file-size limit fail with EFBIG (reported as a clear error) instead of killing the
    /// process with SIGXFSZ.
    public static func reportFileSizeLimitAsError() {
        signal(SIGXFSZ, SIG_IGN)
    }

    /// Free bytes for an unprivileged user on the file system holding `path` (or its nearest existing folder).
    public static func freeBytes(near path: String) -> Int64? {
        var url = URL(fileURLWithPath: path).standardizedFileURL
        while !FileManager.default.fileExists(atPath: url.path), url.path != "/" { url.deleteLastPathComponent() }
        var info = statvfs()
        guard statvfs(url.path, &info) == 0 else { return nil }
        let (free, overflow) = Int64(info.f_bavail).multipliedReportingOverflow(by: Int64(info.f_frsize))
        return overflow ? Int64.max : free
    }

    /// `bytes` for people: "1.2 GB".
    public static func describe(bytes: Int64) -> String {
        let units = ["bytes", "KB", "MB", "GB", "TB"]
        var value = Double(bytes), unit = 0
        while value >= 1000, unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(bytes) bytes" : String(format: "%.1f %@", value, units[unit])
    }
}
