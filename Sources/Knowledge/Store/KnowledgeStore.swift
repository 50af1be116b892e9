import Foundation
import GRDB

/// The knowledge store: one SQLite file (`knowledge.db`) with label sets, runs, every request, every description and
/// the per-label state of each run.
///
/// It uses SQLite's write-ahead log with `synchronous=NORMAL`: readers never block a build, commits cost no fsync,
/// and a commit is atomic, so `kill -9` never leaves half a label (the log is folded back into the one file when the
/// last connection closes, and recovered on the next open after a crash). A label is always written whole, in one
/// transaction, alone or with the other labels of its group (`saveOutcomes`, the build's group commit).
public final class KnowledgeStore: Sendable {
    public let path: String
    let queue: DatabaseQueue

    /// Migrations the file has that this version does not know: a newer sspa-knowledge wrote it. Only a read-only
    /// store may have any; the command warns.
    public let unknownMigrations: [String]

    /// Opens (creating if needed) the store at `path` and applies pending migrations. Read-only, a file or folder this
    /// process may not write is read as immutable (SQLite creates no journal or shared-memory file next to it).
    ///
    /// `migrateNow: false` is for a file this process has just created empty: its schema is then written by
    /// `migrate()`, which must come before anything else uses the store (a build does it first on its writer's
    /// thread, while its first requests are on their way).
    public init(path: String, readOnly: Bool = false, migrateNow: Bool = true) throws {
        self.path = path
        let access = try StorePath.check(path, writing: !readOnly)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.foreignKeysEnabled = true
        configuration.readonly = readOnly
        configuration.label = "knowledge.db"
        configuration.prepareDatabase { db in
            if !readOnly {
                // WAL: readers (sqlite3, `show`) never block a build, and a commit needs no fsync with
                // synchronous=NORMAL while staying atomic, so kill -9 or power loss never leaves half a label.
                // NORMAL first: a new file's switch to WAL is a commit in the rollback journal, which then syncs
                // three times instead of four.
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
                try db.execute(sql: "PRAGMA journal_mode = WAL")
            }
        }
        do {
            (queue, unknownMigrations) = try Self.open(path: path, access: access, readOnly: readOnly, migrate: migrateNow,
                                                        configuration: configuration)
        } catch let error as DatabaseError {
            throw Self.explainDatabase(error, path: path)
        }
    }

    private static func open(path: String, access: StorePath.Access, readOnly: Bool, migrate: Bool,
                             configuration: Configuration) throws -> (DatabaseQueue, [String]) {
        let queue = try DatabaseQueue(path: readOnly && access.immutable ? StorePath.immutableURI(path) : path, configuration: configuration)
        let unknown = try queue.read { try StoreSchema.unknownMigrations($0) }
        if !unknown.isEmpty {
            guard readOnly else {
                throw StoreError("\(path) was written by a newer version of sspa-knowledge (its schema has \(unknown.joined(separator: ", ")), which this version does not know). Upgrade sspa-knowledge to build or encode into it; list, show, validate and export can still read it.", kind: .newerSchema)
            }
        } else if !readOnly {
            if migrate { try StoreSchema.migrate(queue) }
        } else if try queue.read({ try !StoreSchema.migrator.hasCompletedMigrations($0) }) {
            // An older file: migrations only add, so bring it up to date once if we may write it.
            guard !access.immutable else {
                throw StoreError("\(path) was written by an older version of sspa-knowledge and is read-only here. Copy it somewhere writable, or run `sspa-knowledge build` on it to migrate it.", kind: .cannotCreate)
            }
            var writable = Configuration()
            writable.busyMode = .timeout(10)
            try StoreSchema.migrate(DatabaseQueue(path: path, configuration: writable))
        }
        return (queue, unknown)
    }

    /// An in-memory store, for tests.
    public init(inMemory: Void = ()) throws {
        path = ":memory:"
        unknownMigrations = []
        queue = try DatabaseQueue()
        try StoreSchema.migrate(queue)
    }

    /// Applies the migrations this file does not have yet (all of them, for a store opened with `migrateNow: false`).
    public func migrate() throws {
        do { try StoreSchema.migrate(queue) } catch let error as DatabaseError { throw Self.explainDatabase(error, path: path) }
    }

    /// Migration names applied to this file, in order.
    public func appliedMigrations() throws -> [String] {
        try queue.read { try StoreSchema.migrator.appliedMigrations($0) }
    }

    /// ISO 8601 UTC time with milliseconds. Formatted by hand: a DateFormatter per row costs more than the row.
    static func now() -> String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        var t = time_t(time.tv_sec)
        var parts = tm()
        gmtime_r(&t, &parts)
        return timestamp(year: Int(parts.tm_year) + 1900, month: Int(parts.tm_mon) + 1, day: Int(parts.tm_mday),
                         hour: Int(parts.tm_hour), minute: Int(parts.tm_min), second: Int(parts.tm_sec),
                         millisecond: Int(time.tv_nsec / 1_000_000))
    }

    /// `yyyy-MM-ddTHH:mm:ss.SSSZ`, digit by digit (`String(format:)` looks up the locale on every call).
    static func timestamp(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, millisecond: Int) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(24)
        func digits(_ value: Int, _ width: Int) {
            let text = String(value).utf8
            out += repeatElement(UInt8(ascii: "0"), count: max(width - text.count, 0))
            out += text
        }
        digits(year, 4); out.append(UInt8(ascii: "-")); digits(month, 2); out.append(UInt8(ascii: "-")); digits(day, 2)
        out.append(UInt8(ascii: "T")); digits(hour, 2); out.append(UInt8(ascii: ":")); digits(minute, 2)
        out.append(UInt8(ascii: ":")); digits(second, 2); out.append(UInt8(ascii: ".")); digits(millisecond, 3)
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    /// A list of strings as `json` writes it (compact, slashes as they are), without `JSONEncoder`'s cost per call:
    /// a label's synonyms, stored and compared for every label of a set.
    static func json(strings: [String]) -> String {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (index, string) in strings.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            JSONValue.writeString(string, into: &out)
        }
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }

    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self)
    }
}

/// A store failure with a message that says what to do.
public struct StoreError: Error, CustomStringConvertible {
    /// What went wrong, so a command can pick its exit code.
    public enum Kind: Sendable {
        /// The store is not there (or is not a file).
        case missing
        /// It cannot be created or written here (a read-only file or folder).
        case cannotCreate
        /// It is not a knowledge store, or is damaged.
        case notAStore
        /// A newer version wrote it.
        case newerSchema
        /// Reading or writing failed (disk full, file-size limit, I/O error).
        case io
    }

    public var message: String
    public var kind: Kind
    public init(_ message: String, kind: Kind = .io) {
        self.message = message
        self.kind = kind
    }
    public var description: String { message }
}

// MARK: - Label sets

extension KnowledgeStore {
    /// Stores a label set, or brings a stored one up to date with its file: new labels are added, display names,
    /// synonyms and order are updated. Labels that have left the file are an error when they hold knowledge, so
    /// nothing is lost by a changed file.
    @discardableResult
    public func saveLabelSet(_ set: LabelSet) throws -> (setID: Int64, labelIDs: [Int64]) {
        try queue.write { db in
            let now = Self.now()
            let existing = try Int64.fetchOne(db, sql: "SELECT id FROM label_sets WHERE name = ?", arguments: [set.name])
            let setID: Int64
            if let existing {
                setID = existing
                try db.execute(
                    sql: "UPDATE label_sets SET source = ?, source_sha256 = ?, template_hint = ?, updated_at = ? WHERE id = ?",
                    arguments: [set.source, set.sourceSHA256, set.templateHint, now, setID])
                let stored = try Row.fetchAll(db, sql: "SELECT id, raw_name FROM labels WHERE label_set_id = ?", arguments: [setID])
                let names = Set(set.labels.map(\.rawName))
                let gone = stored.filter { !names.contains($0["raw_name"] as String) }
                var blocking: [String] = []
                for row in gone {
                    let id: Int64 = row["id"]
                    let held = try Int.fetchOne(db, sql: "SELECT count(*) FROM descriptions WHERE label_id = ?", arguments: [id]) ?? 0
                    if held > 0 { blocking.append(row["raw_name"]) } else {
                        try db.execute(sql: "DELETE FROM labels WHERE id = ?", arguments: [id])
                    }
                }
                if !blocking.isEmpty {
                    throw StoreError("label set '\(set.name)' in \(path) has knowledge for labels that are not in \(set.source): \(blocking.prefix(10).joined(separator: ", "))\(blocking.count > 10 ? ", …" : ""). Build under another name with --name, or restore those lines.")
                }
                // Positions are unique per set only after the update, so move them out of the way first.
                try db.execute(sql: "UPDATE labels SET position = -1 - position WHERE label_set_id = ?", arguments: [setID])
            } else {
                try db.execute(
                    sql: "INSERT INTO label_sets (name, source, source_sha256, template_hint, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [set.name, set.source, set.sourceSHA256, set.templateHint, now, now])
                setID = db.lastInsertedRowID
            }
            // Every label in one statement: the labels go in as one JSON array of [raw name, display name, synonyms as
            // JSON text], and each row says its id and position (RETURNING, SQLite 3.35+), inserted or updated. A
            // statement per label cost a tenth of a 200-label build's start.
            var rows: [UInt8] = [UInt8(ascii: "[")]
            rows.reserveCapacity(set.labels.count * 48)
            for (position, label) in set.labels.enumerated() {
                if position > 0 { rows.append(UInt8(ascii: ",")) }
                rows.append(UInt8(ascii: "["))
                JSONValue.writeString(label.rawName, into: &rows)
                rows.append(UInt8(ascii: ","))
                JSONValue.writeString(label.displayName, into: &rows)
                rows.append(UInt8(ascii: ","))
                JSONValue.writeString(Self.json(strings: label.synonyms), into: &rows)
                rows.append(UInt8(ascii: "]"))
            }
            rows.append(UInt8(ascii: "]"))
            // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT, not to a join.
            let saved = try Row.fetchAll(db, sql: """
                INSERT INTO labels (label_set_id, position, raw_name, display_name, synonyms)
                SELECT ?, label.key, json_extract(label.value, '$[0]'), json_extract(label.value, '$[1]'),
                    json_extract(label.value, '$[2]')
                FROM json_each(?) AS label WHERE true
                ON CONFLICT (label_set_id, raw_name) DO UPDATE SET position = excluded.position,
                    display_name = excluded.display_name, synonyms = excluded.synonyms
                RETURNING id, position
                """, arguments: [setID, String(decoding: rows, as: UTF8.self)])
            var ids = [Int64](repeating: 0, count: set.labels.count)
            for row in saved {
                let position: Int = row["position"]
                guard ids.indices.contains(position) else { throw StoreError("\(path): saving label set '\(set.name)' gave a row at position \(position)") }
                ids[position] = row["id"]
            }
            if let missing = ids.firstIndex(of: 0) {
                throw StoreError("\(path): saving label '\(set.labels[missing].rawName)' gave no row id")
            }
            return (setID, ids)
        }
    }

    /// A stored label set, in its order.
    public func labelSet(named name: String) throws -> LabelSet? {
        try queue.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT id, source, source_sha256, template_hint FROM label_sets WHERE name = ?", arguments: [name]) else { return nil }
            let id: Int64 = row["id"]
            let labels = try Row.fetchAll(db, sql: "SELECT raw_name, display_name, synonyms FROM labels WHERE label_set_id = ? ORDER BY position", arguments: [id]).map { row -> Label in
                let synonyms = (try? JSONDecoder().decode([String].self, from: Data((row["synonyms"] as String).utf8))) ?? []
                return Label(rawName: row["raw_name"], displayName: row["display_name"], synonyms: synonyms)
            }
            return LabelSet(name: name, labels: labels, templateHint: row["template_hint"], source: row["source"], sourceSHA256: row["source_sha256"])
        }
    }

    public func labelSetNames() throws -> [String] {
        try queue.read { try String.fetchAll($0, sql: "SELECT name FROM label_sets ORDER BY name") }
    }
}
