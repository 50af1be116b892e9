import Foundation

/// Writes standard output whole or fails with a clear error. (Files are written as a unit by CommandSupport's
/// `OutputPath.write`, which every command's file output goes through.)
public enum AtomicFile {
    /// Standard output, whole or with a clear error (a closed pipe, a full disk, a file-size limit).
    public static func writeStandardOutput(_ data: Data) throws {
        var written = 0
        let code: Int32? = data.withUnsafeBytes { raw -> Int32? in
            while written < raw.count {
                let n = Foundation.write(1, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                written += n
            }
            return nil
        }
        if let code { throw failure("standard output", code) }
    }

    static func failure(_ path: String, _ code: Int32) -> StoreError {
        switch code {
        case ENOSPC, EDQUOT:
            return StoreError("cannot write \(path): the disk is full (\(String(cString: strerror(code)))). Nothing was replaced; free space and run the command again.", kind: .io)
        case EFBIG:
            return StoreError("cannot write \(path): the file-size limit was reached (ulimit -f). Nothing was replaced; raise the limit and run the command again.", kind: .io)
        case EACCES, EPERM, EROFS:
            return StoreError("cannot write \(path): \(String(cString: strerror(code))). Pick a writable place.", kind: .cannotCreate)
        case ENOENT:
            return StoreError("cannot write \(path): its folder does not exist.", kind: .cannotCreate)
        default:
            return StoreError("cannot write \(path): \(String(cString: strerror(code))).", kind: .io)
        }
    }
}
