import CSQLite
import Foundation

/// Every finished cell of every study in one SQLite file (`<lab dir>/results.sqlite`), so results can be queried
/// across studies, e.g. `sqlite3 runs/lab/results.sqlite "select grp, avg(value) from metrics join cells using(hash)
/// where study = 'knobs' and name = 'accuracy' group by grp"`. The per-cell JSON files are the source of truth (a
/// job array's processes each write their own); `rebuild` re-indexes them all, `record` adds one.
public final class ResultsStore {
    let path: String
    private var db: OpaquePointer?

    public init(path: String) throws {
        self.path = path
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil) == SQLITE_OK else {
            let why = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(db)
            throw LabError("\(path): cannot open the results store: \(why)")
        }
        sqlite3_busy_timeout(db, 10_000)
        try exec(
            """
            create table if not exists cells (hash text primary key, study text not null, kind text not null, grp text not null,
              seed integer not null, inputs text not null, outputs text not null, seconds real not null, finished text not null);
            create table if not exists metrics (hash text not null, name text not null, value real, primary key (hash, name));
            """)
    }

    deinit { sqlite3_close(db) }

    private func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(db, sql, nil, nil, &err) == SQLITE_OK else {
            let why = err.map { String(cString: $0) } ?? "error"
            sqlite3_free(err)
            throw LabError("\(path): \(why)")
        }
    }

    private func run(_ sql: String, _ values: [Any?]) throws {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK else {
            throw LabError("\(path): \(String(cString: sqlite3_errmsg(db)))")
        }
        defer { sqlite3_finalize(stmt) }
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        for (i, v) in values.enumerated() {
            let k = Int32(i + 1)
            switch v {
            case let s as String: sqlite3_bind_text(stmt, k, s, -1, transient)
            case let d as Double: if d.isFinite { sqlite3_bind_double(stmt, k, d) } else { sqlite3_bind_null(stmt, k) }
            case let n as Int: sqlite3_bind_int64(stmt, k, Int64(n))
            case let n as UInt64: sqlite3_bind_int64(stmt, k, Int64(bitPattern: n))
            default: sqlite3_bind_null(stmt, k)
            }
        }
        guard sqlite3_step(stmt) == SQLITE_DONE else { throw LabError("\(path): \(String(cString: sqlite3_errmsg(db)))") }
    }

    /// Adds (or replaces) one finished cell.
    public func record(_ r: CellResult) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let inputs = String(decoding: try enc.encode(r.cell.inputs), as: UTF8.self)
        let outputs = String(decoding: try enc.encode(r.outputs), as: UTF8.self)
        try exec("begin immediate")
        do {
            try run(
                "insert or replace into cells values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [r.hash, r.study, r.cell.kind, r.cell.group, r.cell.seed, inputs, outputs, r.seconds, r.finished])
            try run("delete from metrics where hash = ?", [r.hash])
            for (k, v) in r.metrics.sorted(by: { $0.key < $1.key }) { try run("insert into metrics values (?, ?, ?)", [r.hash, k, v]) }
            try exec("commit")
        } catch {
            try? exec("rollback")
            throw error
        }
    }

    /// Rows of a query, each column as text (for tests and quick looks).
    public func query(_ sql: String) throws -> [[String]] {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK else {
            throw LabError("\(path): \(String(cString: sqlite3_errmsg(db)))")
        }
        defer { sqlite3_finalize(stmt) }
        var rows: [[String]] = []
        while sqlite3_step(stmt) == SQLITE_ROW {
            rows.append((0..<sqlite3_column_count(stmt)).map { c in sqlite3_column_text(stmt, c).map { String(cString: $0) } ?? "" })
        }
        return rows
    }
}
