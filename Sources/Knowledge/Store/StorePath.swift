import Foundation

/// What `--db` names, checked before SQLite opens it, so every odd place gets the tool's own sentence: SQLite would
/// block on a FIFO, and answer a folder, a device or a read-only place with a bare "error 14".
enum StorePath {
    /// How a store that passed the checks is to be opened.
    struct Access {
        /// The file exists already.
        var exists: Bool
        /// Read it as an immutable file: no journal, no shared-memory file, for a file or folder this process may not
        /// write (SQLite would otherwise need to create `-shm` next to it).
        var immutable: Bool
    }

    static func check(_ path: String, writing: Bool) throws -> Access {
        let folder = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        var info = stat()
        if stat(path, &info) != 0 {
            let reason = errno
            guard reason == ENOENT else {
                throw StoreError("cannot reach \(path): \(String(cString: strerror(reason))). Check the path and its permissions.", kind: .io)
            }
            guard writing else {
                throw StoreError("no knowledge store at \(path). Run `sspa-knowledge build --labels FILE` first, or pass --db PATH.", kind: .missing)
            }
            var folderInfo = stat()
            guard stat(folder, &folderInfo) == 0, (folderInfo.st_mode & S_IFMT) == S_IFDIR else {
                throw StoreError("cannot create \(path): the folder \(folder) does not exist. Create it, or pass another --db.", kind: .cannotCreate)
            }
            guard access(folder, W_OK) == 0 else {
                throw StoreError("cannot create \(path): the folder \(folder) is read-only. Pass a --db in a writable folder.", kind: .cannotCreate)
            }
            return Access(exists: false, immutable: false)
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR:
            throw StoreError("\(path) is a folder, not a knowledge store. Pass the store's file, e.g. --db \((path as NSString).appendingPathComponent("knowledge.db")).", kind: .missing)
        default:
            throw StoreError("\(path) is \(kindName(info.st_mode)), not a knowledge store file. Pass --db FILE (a SQLite file).", kind: .missing)
        }
        guard access(path, R_OK) == 0 else {
            throw StoreError("cannot read \(path): permission denied. Check its permissions, or pass another --db.", kind: .io)
        }
        let fileWritable = access(path, W_OK) == 0
        let folderWritable = access(folder, W_OK) == 0
        if writing {
            guard fileWritable else {
                throw StoreError("\(path) is read-only, and this command writes to it. Make it writable (chmod u+w), or copy it and pass the copy with --db.", kind: .cannotCreate)
            }
            guard folderWritable else {
                throw StoreError("\(path) is in a read-only folder (\(folder)), where SQLite cannot create its journal. Copy the store to a writable folder and pass the copy with --db.", kind: .cannotCreate)
            }
        }
        let immutable = !fileWritable || !folderWritable
        if immutable, let log = try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int, log > 0 {
            // Read as immutable, SQLite would ignore the log and show the store as it was before its last writes.
            throw StoreError("\(path) has a write-ahead log (\(path)-wal) that was never folded back, and this process may not write there to replay it. Open it once where it is writable (any sspa-knowledge command does), or copy both files to a writable folder.", kind: .io)
        }
        return Access(exists: true, immutable: immutable)
    }

    /// An `immutable=1` URI for `path` (the system SQLite accepts URI file names).
    static func immutableURI(_ path: String) -> String {
        let absolute = URL(fileURLWithPath: path).standardized.path
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#%")
        return "file:" + (absolute.addingPercentEncoding(withAllowedCharacters: allowed) ?? absolute) + "?immutable=1"
    }

    static func kindName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        case S_IFLNK: "a symbolic link"
        default: "not a regular file"
        }
    }
}
