import Foundation
import GRDB
import Tensor

/// Everything that identifies a build run. Two builds with equal specs are the same run, so the second resumes it.
public struct RunSpec: Sendable, Hashable, Codable {
    public var labelSet: String
    public var provider: String
    public var endpoint: String
    public var model: String
    public var templateName: String
    public var templateSHA256: String
    public var sampling: Sampling
    public var descriptionsWanted: Int
    public var demos: Int
    public var demoSelection: DemoSelection
    public var structured: StructuredMode

    public init(labelSet: String, provider: String, endpoint: String, model: String, templateName: String, templateSHA256: String,
                sampling: Sampling, descriptionsWanted: Int, demos: Int, demoSelection: DemoSelection, structured: StructuredMode) {
        self.labelSet = labelSet
        self.provider = provider
        self.endpoint = endpoint
        self.model = model
        self.templateName = templateName
        self.templateSHA256 = templateSHA256
        self.sampling = sampling
        self.descriptionsWanted = descriptionsWanted
        self.demos = demos
        self.demoSelection = demoSelection
        self.structured = structured
    }

    /// SHA-256 of the canonical JSON of the spec.
    public var key: String { SHA256.hex(KnowledgeStore.json(self)) }
}

/// The state of one label in one run.
public enum LabelState: String, Sendable, Codable, CaseIterable {
    /// Got every description asked for.
    case complete
    /// Got fewer after every attempt; `--resample-short` tries again.
    case short
    /// The source has no knowledge of it (WordNet lacks the word); never faked.
    case none
    /// Every attempt failed with an error; the next build tries again.
    case failed
}

/// One request made for a label, as the request log keeps it.
public struct RequestRecord: Sendable {
    public var attempt: Int
    public var prompt: RenderedPrompt
    public var sampling: Sampling
    public var response: KnowledgeResponse?
    public var parseFormat: String?
    public var flag: String?
    public var error: String?
    public var errorStatus: Int?
    public var errorBody: String?
    /// What the source was given, JSON, when it is not the rendered prompt (the offline source's inputs).
    public var sourceInput: String?
}

/// What a build did for one label: the requests, the descriptions kept (each pointing at its request, with its
/// quality verdict), the state.
public struct LabelOutcome: Sendable {
    public var label: Label
    public var requests: [RequestRecord]
    /// (index into `requests`, text, verdict). Flagged descriptions are kept too, marked; `usable` counts the rest.
    public var descriptions: [(request: Int, text: String, verdict: QualityVerdict)]
    public var state: LabelState
    public var wanted: Int
    public var message: String?
    /// Set when the label stopped on an error that would fail every other label too (a bad key, no quota).
    public var fatal: Bool = false

    /// Descriptions `encode` uses by default (no flag that excludes).
    public var usable: Int { descriptions.filter { $0.verdict.usable }.count }
}

public enum RunStatus: String, Sendable, Codable { case running, complete, interrupted, failed }

extension KnowledgeStore {
    /// Creates the run for `spec`, or finds the existing one; marks it running. With `force`, the run's previous
    /// descriptions and states are deleted first.
    public func beginRun(_ spec: RunSpec, labelSetID: Int64, force: Bool, toolVersion: String) throws -> Int64 {
        try openRun(spec, labelSetID: labelSetID, force: force, toolVersion: toolVersion).id
    }

    /// `beginRun`, and whether the run holds no label's rows yet (made now, or emptied by `force`): its labels'
    /// first writes then have nothing to replace (`saveOutcomes(replacing: false)`).
    func openRun(_ spec: RunSpec, labelSetID: Int64, force: Bool, toolVersion: String) throws -> (id: Int64, empty: Bool) {
        try queue.write { db in
            let now = Self.now()
            if let id = try Int64.fetchOne(db, sql: "SELECT id FROM runs WHERE run_key = ?", arguments: [spec.key]) {
                if force {
                    try db.execute(sql: "DELETE FROM descriptions WHERE run_id = ?", arguments: [id])
                    try db.execute(sql: "DELETE FROM requests WHERE run_id = ?", arguments: [id])
                    try db.execute(sql: "DELETE FROM label_status WHERE run_id = ?", arguments: [id])
                }
                try db.execute(sql: "UPDATE runs SET status = 'running', message = NULL, tool_version = ?, updated_at = ? WHERE id = ?", arguments: [toolVersion, now, id])
                return (id, force)
            }
            try db.execute(sql: """
                INSERT INTO runs (run_key, label_set_id, provider, endpoint, model, template_name, template_sha256, temperature, seed, n,
                    max_tokens, descriptions_wanted, demos, demo_selection, structured, status, tool_version, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)
                """, arguments: [
                    spec.key, labelSetID, spec.provider, spec.endpoint, spec.model, spec.templateName, spec.templateSHA256,
                    spec.sampling.temperature, spec.sampling.seed, spec.sampling.n, spec.sampling.maxTokens, spec.descriptionsWanted,
                    spec.demos, spec.demoSelection.rawValue, spec.structured.rawValue, toolVersion, now, now,
                ])
            return (db.lastInsertedRowID, true)
        }
    }

    /// The state of every label of a run that has one, by raw name.
    public func labelStates(runID: Int64) throws -> [String: LabelState] {
        try queue.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT l.raw_name, s.state FROM label_status s JOIN labels l ON l.id = s.label_id WHERE s.run_id = ?
                """, arguments: [runID])
            var states: [String: LabelState] = [:]
            for row in rows { states[row["raw_name"]] = LabelState(rawValue: row["state"]) }
            return states
        }
    }

    /// Writes one label's requests, descriptions and state in one transaction, replacing what the run held for it.
    public func saveOutcome(_ outcome: LabelOutcome, runID: Int64, labelID: Int64) throws {
        try saveOutcomes([(outcome, labelID)], runID: runID)
    }

    /// Writes several labels in one transaction (each as `saveOutcome` writes it): one commit for a group of labels
    /// that finished together. All or none of them are stored, so no label is ever half-written.
    /// - Parameter replacing: false when none of these labels has rows in the run yet (its first write to a run that
    ///   `openRun` found empty), which skips looking for rows to replace.
    public func saveOutcomes(_ outcomes: [(outcome: LabelOutcome, labelID: Int64)], runID: Int64, replacing: Bool = true) throws {
        guard !outcomes.isEmpty else { return }
        try queue.write { db in
            let now = Self.now()
            let inserts = try OutcomeInserts(db)
            for (outcome, labelID) in outcomes {
                try Self.write(outcome, runID: runID, labelID: labelID, now: now, replacing: replacing, inserts, db)
            }
            try db.cachedStatement(sql: "UPDATE runs SET updated_at = ? WHERE id = ?").execute(arguments: [now, runID])
        }
    }

    /// The three inserts that store a label (prepared once per connection).
    private struct OutcomeInserts {
        let request: BoundStatement
        let description: BoundStatement
        let status: BoundStatement

        init(_ db: Database) throws {
            request = try BoundStatement(db, sql: """
                INSERT INTO requests (run_id, label_id, attempt, prompt, demonstrations, params, raw_response, http_status,
                    finish_reason, prompt_tokens, completion_tokens, latency_ms, system_fingerprint, metadata, parse_format,
                    flag, error, created_at)
                VALUES (?, ?, ?, ?, ?, json(?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            description = try BoundStatement(
                db, sql: "INSERT INTO descriptions (run_id, label_id, request_id, position, text, flags, quality, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            status = try BoundStatement(db, sql: """
                INSERT INTO label_status (run_id, label_id, state, descriptions, wanted, attempts, message, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (run_id, label_id) DO UPDATE SET state = excluded.state, descriptions = excluded.descriptions,
                    wanted = excluded.wanted, attempts = excluded.attempts, message = excluded.message, updated_at = excluded.updated_at
                """)
        }
    }

    private static func write(_ outcome: LabelOutcome, runID: Int64, labelID: Int64, now: String, replacing: Bool,
                              _ inserts: OutcomeInserts, _ db: Database) throws {
        if replacing {
            try db.cachedStatement(sql: "DELETE FROM descriptions WHERE run_id = ? AND label_id = ?").execute(arguments: [runID, labelID])
            try db.cachedStatement(sql: "DELETE FROM requests WHERE run_id = ? AND label_id = ?").execute(arguments: [runID, labelID])
        }
        func int(_ value: Int?) -> BoundStatement.Value? { value.map { .int(Int64($0)) } }
        func text(_ value: String?) -> BoundStatement.Value? { value.map(BoundStatement.Value.text) }
        var requestIDs: [Int64] = []
        for request in outcome.requests {
            let response = request.response
            let params = JSONValue.object([
                "temperature": .double(request.sampling.temperature), "seed": .int(request.sampling.seed),
                "n": .int(request.sampling.n), "max_tokens": .int(request.sampling.maxTokens),
            ])
            let finish = response?.choices.compactMap(\.finishReason).joined(separator: ",")
            try inserts.request.run([
                .int(runID), .int(labelID), int(request.attempt), .text(request.sourceInput ?? request.prompt.json),
                .text(try JSONValue.array((request.sourceInput == nil ? request.prompt.demonstrations : []).map(JSONValue.string)).text()),
                .text(try params.text()),
                text(response?.raw ?? request.errorBody), int(response?.httpStatus ?? request.errorStatus),
                text(finish?.isEmpty == false ? finish : nil), int(response?.promptTokens), int(response?.completionTokens),
                response.map { .double($0.latency * 1000) }, text(response?.systemFingerprint),
                .text(try JSONValue.object((response?.metadata ?? [:]).mapValues(JSONValue.string)).text()),
                text(request.parseFormat), text(request.flag), text(request.error), .text(now),
            ])
            requestIDs.append(db.lastInsertedRowID)
        }
        for (position, description) in outcome.descriptions.enumerated() {
            try inserts.description.run([
                .int(runID), .int(labelID), .int(requestIDs[description.request]), int(position), .text(description.text),
                .text(DescriptionFlag.column(description.verdict.flags)), .text(description.verdict.json), .text(now),
            ])
        }
        try inserts.status.run([
            .int(runID), .int(labelID), .text(outcome.state.rawValue), int(outcome.usable), int(outcome.wanted),
            int(outcome.requests.count), text(outcome.message), .text(now),
        ])
    }

    /// Copies what the write-ahead log holds into the file, without waiting for readers (SQLite's PASSIVE
    /// checkpoint). Closing the store does the same for whatever is left, so an early one, taken while the build waits
    /// for its last answers, leaves the close little to copy.
    public func checkpoint() throws {
        try queue.writeWithoutTransaction { db in _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(PASSIVE)") }
    }

    public func finishRun(_ runID: Int64, status: RunStatus, message: String? = nil) throws {
        try queue.write { db in
            try db.execute(sql: "UPDATE runs SET status = ?, message = ?, updated_at = ? WHERE id = ?",
                           arguments: [status.rawValue, message, Self.now(), runID])
        }
    }
}

extension KnowledgeStore {
    /// The summary of a build that has nothing to do, read without writing: the set is stored exactly as `set` (same
    /// file contents, names, order and template hint), the run of `spec` is complete, and every label has a final
    /// state (complete, short, or no knowledge; short labels count as to do when `resampleShort`). Nil otherwise.
    public func upToDate(_ set: LabelSet, spec: RunSpec, resampleShort: Bool) throws -> BuildSummary? {
        try queue.read { db in
            guard let stored = try Row.fetchOne(db, sql: "SELECT id, source_sha256, template_hint FROM label_sets WHERE name = ?", arguments: [set.name]),
                  stored["source_sha256"] as String? == set.sourceSHA256, stored["template_hint"] as String? == set.templateHint
            else { return nil }
            let setID: Int64 = stored["id"]
            let labels = try Row.fetchAll(db, sql: "SELECT raw_name, display_name, synonyms FROM labels WHERE label_set_id = ? ORDER BY position", arguments: [setID])
            guard labels.count == set.labels.count else { return nil }
            for (row, label) in zip(labels, set.labels) {
                guard row["raw_name"] as String == label.rawName, row["display_name"] as String == label.displayName,
                      row["synonyms"] as String == Self.json(strings: label.synonyms) else { return nil }
            }
            guard let run = try Row.fetchOne(db, sql: "SELECT id, status FROM runs WHERE run_key = ?", arguments: [spec.key]),
                  run["status"] as String == RunStatus.complete.rawValue else { return nil }
            let runID: Int64 = run["id"]
            let states = try Row.fetchAll(db, sql: """
                SELECT l.raw_name AS name, s.state AS state, s.descriptions AS descriptions FROM labels l
                LEFT JOIN label_status s ON s.label_id = l.id AND s.run_id = ? WHERE l.label_set_id = ? ORDER BY l.position
                """, arguments: [runID, setID])
            var summary = BuildSummary(runID: runID)
            summary.total = set.labels.count
            summary.skipped = set.labels.count
            summary.status = .complete
            summary.upToDate = true
            for row in states {
                let name: String = row["name"]
                switch (row["state"] as String?).flatMap(LabelState.init(rawValue:)) {
                case .complete?: summary.complete += 1
                case .short?: if resampleShort { return nil } else { summary.short.append(name) }
                case LabelState.none?: summary.none.append(name)
                default: return nil
                }
                summary.descriptions += row["descriptions"] as Int? ?? 0
            }
            return summary
        }
    }

    /// The models (sources) of earlier runs of `labelSet` by `provider` whose identity differs from `spec`: why a
    /// build starts afresh ("built by wordnet 3.0, now wordnet 3.0, senses-5").
    public func otherModels(labelSet: String, spec: RunSpec) throws -> [String] {
        try queue.read { db in
            try String.fetchAll(db, sql: """
                SELECT DISTINCT r.model FROM runs r JOIN label_sets ls ON ls.id = r.label_set_id
                WHERE ls.name = ? AND r.provider = ? AND r.run_key <> ? AND r.model <> ? ORDER BY r.id
                """, arguments: [labelSet, spec.provider, spec.key, spec.model])
        }
    }

    /// Whether a run of `spec` exists already.
    public func hasRun(_ spec: RunSpec) throws -> Bool {
        try queue.read { db in try Int64.fetchOne(db, sql: "SELECT id FROM runs WHERE run_key = ?", arguments: [spec.key]) != nil }
    }
}
