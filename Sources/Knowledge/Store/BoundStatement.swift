import GRDB
import GRDBSQLite

/// An INSERT run through SQLite's C interface: its values bound and the statement stepped directly, without GRDB's
/// work around each execution (arguments converted to `DatabaseValue`s and checked, observers told). A build runs
/// its three inserts about seven times per label, and that work was a third of the time spent storing a label.
///
/// GRDB prepares the statement once per connection and keeps it in its statement cache, but never runs it, so nothing
/// it knows about the statement is out of date. (Prepared anew for every group of labels, the three inserts cost
/// about half as much as running them.) Values are still bound parameters, never SQL text.
struct BoundStatement {
    enum Value {
        case int(Int64)
        case double(Double)
        case text(String)
    }

    private let statement: Statement
    private let db: Database

    init(_ db: Database, sql: String) throws {
        self.db = db
        statement = try db.cachedStatement(sql: sql)
    }

    /// Binds `values` in order (nil binds NULL) and runs the statement to its end.
    func run(_ values: [Value?]) throws {
        let handle = statement.sqliteStatement
        sqlite3_reset(handle)
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch value {
            case nil: code = sqlite3_bind_null(handle, index)
            case .int(let v)?: code = sqlite3_bind_int64(handle, index, v)
            case .double(let v)?: code = sqlite3_bind_double(handle, index, v)
            case .text(var v)?:
                code = v.withUTF8 { bytes in
                    // A null pointer would bind NULL: an empty string points at an empty C string instead.
                    let start = UnsafeRawPointer(bytes.baseAddress ?? Self.empty.utf8Start).assumingMemoryBound(to: CChar.self)
                    return sqlite3_bind_text(handle, index, start, Int32(bytes.count), Self.transient)
                }
            }
            guard code == SQLITE_OK else { throw error(code) }
        }
        let code = sqlite3_step(handle)
        sqlite3_reset(handle)
        guard code == SQLITE_DONE else { throw error(code) }
    }

    private func error(_ code: Int32) -> DatabaseError {
        let connection = db.sqliteConnection
        return DatabaseError(resultCode: ResultCode(rawValue: connection.map { sqlite3_extended_errcode($0) } ?? code),
                             message: connection.map { String(cString: sqlite3_errmsg($0)) }, sql: statement.sql)
    }

    private static let empty: StaticString = ""

    /// SQLITE_TRANSIENT: SQLite copies the bytes before the bind returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}
