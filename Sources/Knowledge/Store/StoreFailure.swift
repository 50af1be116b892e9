import Foundation
import GRDB

extension KnowledgeStore {
    /// The tool's own sentence for an error from the store at `path`, or nil when it is not a store error.
    public static func explain(_ error: any Error, path: String) -> StoreError? {
        switch error {
        case let error as StoreError: error
        case let error as DatabaseError: explainDatabase(error, path: path)
        default: nil
        }
    }

    /// A SQLite failure as one sentence naming the file and what to do; the SQLite code stays as a hint.
    static func explainDatabase(_ error: DatabaseError, path: String) -> StoreError {
        let code = "SQLite error \(error.resultCode.rawValue)"
        switch error.resultCode {
        case .SQLITE_NOTADB, .SQLITE_CORRUPT:
            return StoreError("\(path) is not a SQLite database (or is damaged; \(code)). Pass another --db, or move this file away.", kind: .notAStore)
        case .SQLITE_FULL:
            return StoreError("cannot write to \(path): the disk is full or a file-size limit was reached (\(code)). Everything committed before is kept; free space and run the same command again.", kind: .io)
        case .SQLITE_IOERR:
            return StoreError("cannot write to \(path): an I/O error (a full disk, a file-size limit or a failing disk; \(code)). Everything committed before is kept; fix it and run the same command again.", kind: .io)
        case .SQLITE_READONLY:
            return StoreError("\(path) cannot be written here (\(code)). Make it and its folder writable, or copy it and pass the copy with --db.", kind: .cannotCreate)
        case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_AUTH:
            return StoreError("cannot open \(path) (\(code)). Check that it is a file you may read, in a folder you may read.", kind: .io)
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return StoreError("\(path) is locked by another process (\(code)). Wait for it to finish, or use another --db.", kind: .io)
        default:
            return StoreError("\(path): \(error.message ?? "an error") (\(code)).", kind: .io)
        }
    }
}

extension KnowledgeStore {
    /// Removes the store at `path` (with its `-wal` and `-shm` files) when it holds no request at all: what a build
    /// that failed before its first answer created. A store with any work in it is left alone.
    public static func removeIfHoldsNoWork(path: String) {
        guard FileManager.default.fileExists(atPath: path) else { return }
        let empty: Bool
        do {
            // Without a write-ahead log to replay the file alone is the truth, and reading it as immutable needs no
            // shared-memory file (which a full disk or a file-size limit may not allow).
            let walSize = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
            var configuration = Configuration()
            configuration.readonly = true
            let queue = try DatabaseQueue(path: walSize == 0 ? StorePath.immutableURI(path) : path, configuration: configuration)
            empty = try queue.read { db in
                guard try db.tableExists("requests") else { return true }
                // A batch created on a Batch API is work too: its results are still to collect.
                if try db.tableExists("remote_batches"), try Int.fetchOne(db, sql: "SELECT count(*) FROM remote_batches") ?? 0 > 0 { return false }
                return try Int.fetchOne(db, sql: "SELECT count(*) FROM requests") == 0
            }
            try queue.close()
        } catch {
            return
        }
        guard empty else { return }
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }
}
