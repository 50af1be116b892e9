import Foundation
import GRDB

/// `build --provider openai-batch`: the batch round trip against an OpenAI-compatible Batch API. Each round exports
/// the requests of every label still to do (as `batch export` would), uploads them to `/v1/files`, creates a batch,
/// polls it with backoff, downloads its output and error files and imports them (as `batch import` would). Labels
/// left short or failed go into the next round with the next seed, until `--max-attempts`.
///
/// A created batch is recorded in `remote_batches` in the same transaction as its lines, so after Ctrl-C (the remote
/// batch keeps running) the same build, or `batch resume`, collects it instead of sending its requests again.
/// Requests a batch never ran (it expired or was cancelled first) are released and go out again with the same seed;
/// they do not count as attempts.
public struct BatchRoundTrip: Sendable {
    public enum Event: Sendable {
        case exported(set: String, runID: Int64, round: Int, requests: Int, promptTokens: Int, maxCompletionTokens: Int)
        case uploaded(fileID: String, bytes: Int)
        case created(RemoteBatch)
        /// A poll's answer, and the seconds until the next one (nil when the batch is done).
        case status(RemoteBatch, nextCheck: Double?)
        case collected(batchID: String, file: String, report: BatchImport)
        /// Requests of a batch that ended without running them (expired, cancelled): sent again in the next round.
        case released(batchID: String, requests: Int)
    }

    /// Seconds between polls: `initial`, growing by `factor` after every unchanged answer, at most `maximum`.
    public struct PollPolicy: Sendable {
        public var initial: Double
        public var maximum: Double
        public var factor: Double

        public init(initial: Double = 5, maximum: Double = 60, factor: Double = 1.5) {
            self.initial = initial
            self.maximum = max(maximum, initial)
            self.factor = factor
        }
    }

    public var store: KnowledgeStore
    public var api: BatchAPIClient
    public var importer: BatchImporter
    public var poll: PollPolicy
    public var events: @Sendable (Event) -> Void

    public init(store: KnowledgeStore, api: BatchAPIClient, importer: BatchImporter, poll: PollPolicy = PollPolicy(),
                events: @escaping @Sendable (Event) -> Void = { _ in }) {
        self.store = store
        self.api = api
        self.importer = importer
        self.poll = poll
        self.events = events
    }

    /// Rounds for `set` until no label needs a request. Batches of the run still open from an earlier, interrupted
    /// build are collected first. Returns the run's id.
    @discardableResult
    public func run(_ set: LabelSet, builder: KnowledgeBuilder, structured: StructuredMode) async throws -> Int64 {
        var round = 0
        while true {
            try Task.checkCancellation()
            let export = try builder.exportBatch(set, structured: structured)
            let open = try store.openRemoteBatches(runID: export.runID)
            if !open.isEmpty {
                for batch in open { try await collect(batch.id) }
                continue
            }
            if export.lines.isEmpty {
                if !export.awaiting.isEmpty {
                    throw ProviderError(.configuration, "\(export.awaiting.count) label(s) of '\(set.name)' await the results of a `batch export` that no Batch API batch carries (\(export.awaiting.prefix(5).joined(separator: ", "))); import its results with `sspa-knowledge batch import`, or pass --resend to send them again.")
                }
                return export.runID
            }
            round += 1
            events(.exported(set: set.name, runID: export.runID, round: round, requests: export.lines.count,
                             promptTokens: export.promptTokens, maxCompletionTokens: export.maxCompletionTokens))
            var ids: [String] = []
            var start = 0
            for (part, lines) in BatchJobs.split(export.lines).enumerated() {
                let rows = export.rows[start..<(start + lines.count)]
                start += lines.count
                var data = Data()
                for line in lines { data.append(line); data.append(0x0A) }
                ids.append(try await submit(data, rows: rows, runID: export.runID, filename: "sspa-r\(export.runID)-round\(round)-\(part + 1).jsonl"))
            }
            var progressed = false
            for id in ids {
                let batch = try await collect(id)
                if (batch.requestCounts?.completed ?? 0) + (batch.requestCounts?.failed ?? 0) > 0 || batch.status == "completed" { progressed = true }
            }
            if !progressed {
                throw ProviderError(.server, "batch \(ids.joined(separator: ", ")) ended without running any request; nothing was lost. Run the same command again later.")
            }
        }
    }

    /// Uploads one input file, creates its batch and records both, with the lines it carries, in one transaction.
    func submit(_ data: Data, rows: ArraySlice<BatchExport.Row>, runID: Int64, filename: String) async throws -> String {
        let fileID = try await api.upload(data, filename: filename)
        events(.uploaded(fileID: fileID, bytes: data.count))
        let batch = try await api.create(inputFileID: fileID, metadata: ["tool": "sspa-knowledge", "run": String(runID)])
        try store.recordRemoteBatch(batch, runID: runID, endpoint: api.display, inputFileID: fileID, rows: rows)
        events(.created(batch))
        return batch.id
    }

    /// Polls a recorded batch until it ends, imports its output and error files, and releases the requests it never
    /// ran. A batch that failed (its input was refused) is an error naming the API's reasons.
    @discardableResult
    public func collect(_ id: String) async throws -> RemoteBatch {
        var wait = poll.initial
        var last: RemoteBatch?
        var batch: RemoteBatch
        while true {
            batch = try await api.retrieve(id)
            try store.updateRemoteBatch(batch)
            if batch.isTerminal { events(.status(batch, nextCheck: nil)); break }
            if let last, last.status != batch.status || last.requestCounts != batch.requestCounts { wait = poll.initial }
            events(.status(batch, nextCheck: wait))
            last = batch
            try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
            wait = min(wait * poll.factor, poll.maximum)
        }
        for (fileID, kind) in [(batch.outputFileID, "output"), (batch.errorFileID, "errors")] {
            guard let fileID, !fileID.isEmpty else { continue }
            let data = try await api.content(ofFile: fileID)
            let name = "openai-batch:\(id)/\(kind)"
            let report = try await importer.importResults(data, file: name)
            events(.collected(batchID: id, file: name, report: report))
        }
        let released = try store.releaseUnanswered(remoteBatchID: id)
        if released > 0 { events(.released(batchID: id, requests: released)) }
        try store.markCollected(id)
        if batch.status == "failed" {
            throw ProviderError(.badRequest, "batch \(id) failed: \(batch.errorSummary). Nothing was lost; fix the cause and run again.")
        }
        return batch
    }
}

/// A Batch API batch this store created, as last seen.
public struct RecordedBatch: Sendable, Hashable {
    public var id: String
    public var runID: Int64
    public var endpoint: String
    public var status: String
    public var requests: Int
    public var collected: Bool
}

extension KnowledgeStore {
    /// Records a created batch and marks its lines as exported to it, awaiting results.
    func recordRemoteBatch(_ batch: RemoteBatch, runID: Int64, endpoint: String, inputFileID: String, rows: ArraySlice<BatchExport.Row>) throws {
        try queue.write { db in
            let now = Self.now()
            try db.execute(sql: """
                INSERT INTO remote_batches (id, run_id, endpoint, input_file_id, requests, status, counts, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [batch.id, runID, endpoint, inputFileID, rows.count, batch.status, Self.countsJSON(batch), now, now])
            for row in rows {
                try db.cachedStatement(sql: """
                    INSERT INTO batch_requests (custom_id, run_id, label_id, attempt, request, input_file, exported_at, remote_batch_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (custom_id) DO UPDATE SET request = excluded.request, input_file = excluded.input_file,
                        exported_at = excluded.exported_at, remote_batch_id = excluded.remote_batch_id,
                        result = NULL, result_file = NULL, imported_at = NULL
                    """).execute(arguments: [row.customID, runID, row.labelID, row.attempt, String(decoding: row.line, as: UTF8.self),
                                             "openai-batch:\(batch.id)", now, batch.id])
            }
        }
    }

    func updateRemoteBatch(_ batch: RemoteBatch) throws {
        try queue.write { db in
            try db.execute(sql: """
                UPDATE remote_batches SET status = ?, counts = ?, output_file_id = ?, error_file_id = ?, updated_at = ? WHERE id = ?
                """, arguments: [batch.status, Self.countsJSON(batch), batch.outputFileID, batch.errorFileID, Self.now(), batch.id])
        }
    }

    /// Drops the lines of a finished batch that got no result, so the next export sends them again (same attempt,
    /// same seed). Returns how many.
    func releaseUnanswered(remoteBatchID: String) throws -> Int {
        try queue.write { db in
            try db.execute(sql: "DELETE FROM batch_requests WHERE remote_batch_id = ? AND result IS NULL", arguments: [remoteBatchID])
            return db.changesCount
        }
    }

    func markCollected(_ id: String) throws {
        try queue.write { db in
            try db.execute(sql: "UPDATE remote_batches SET collected_at = ? WHERE id = ?", arguments: [Self.now(), id])
        }
    }

    /// Batches of a run created but not yet collected.
    public func openRemoteBatches(runID: Int64? = nil) throws -> [RecordedBatch] {
        try remoteBatches(where: "collected_at IS NULL" + (runID == nil ? "" : " AND run_id = ?"), runID.map { [$0] } ?? [])
    }

    public func remoteBatch(_ id: String) throws -> RecordedBatch? {
        try remoteBatches(where: "id = ?", [id]).first
    }

    func remoteBatches(where condition: String, _ arguments: [any DatabaseValueConvertible]) throws -> [RecordedBatch] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM remote_batches WHERE \(condition) ORDER BY created_at, id", arguments: StatementArguments(arguments)).map {
                RecordedBatch(id: $0["id"], runID: $0["run_id"], endpoint: $0["endpoint"], status: $0["status"], requests: $0["requests"],
                              collected: ($0["collected_at"] as String?) != nil)
            }
        }
    }

    /// How many labels of a run are in each state.
    public func labelStateCounts(runID: Int64) throws -> [LabelState: Int] {
        var counts: [LabelState: Int] = [:]
        for (_, status) in try labelStatus(runID: runID) { counts[status.state, default: 0] += 1 }
        return counts
    }

    static func countsJSON(_ batch: RemoteBatch) -> String? {
        guard let counts = batch.requestCounts else { return nil }
        return #"{"total":\#(counts.total),"completed":\#(counts.completed),"failed":\#(counts.failed)}"#
    }
}
