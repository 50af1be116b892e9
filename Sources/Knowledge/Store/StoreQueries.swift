import Foundation
import GRDB

/// A run as `list` shows it.
public struct RunInfo: Sendable, Codable, Hashable {
    public var id: Int64
    public var labelSet: String
    public var provider: String
    public var endpoint: String
    public var model: String
    public var template: String
    public var seed: Int
    public var temperature: Double
    public var status: String
    public var labels: Int
    public var complete: Int
    public var short: Int
    public var none: Int
    public var failed: Int
    public var descriptions: Int
    public var updatedAt: String
}

/// One label's descriptions in one run.
public struct LabelKnowledge: Sendable, Codable, Hashable {
    public var label: String
    public var displayName: String
    public var synonyms: [String]
    public var runID: Int64
    public var state: String?
    public var descriptions: [String]
    /// Each description's quality flags, parallel to `descriptions`.
    public var flags: [[DescriptionFlag]]
    /// Each description's row id, parallel to `descriptions`.
    public var ids: [Int64]

    public init(label: String, displayName: String, synonyms: [String], runID: Int64, state: String?, descriptions: [String],
                flags: [[DescriptionFlag]]? = nil, ids: [Int64]? = nil) {
        self.label = label
        self.displayName = displayName
        self.synonyms = synonyms
        self.runID = runID
        self.state = state
        self.descriptions = descriptions
        self.flags = flags ?? descriptions.map { _ in [] }
        self.ids = ids ?? descriptions.map { _ in 0 }
    }

    /// The descriptions `encode` uses: without a flag that excludes, or all of them with `keepFlagged`.
    public func used(keepFlagged: Bool = false) -> [String] {
        keepFlagged ? descriptions : zip(descriptions, flags).filter { !$0.1.contains { $0.excludesByDefault } }.map(\.0)
    }
}

extension KnowledgeStore {
    /// Every run with its counts, newest first within each label set.
    public func runs(labelSet: String? = nil) throws -> [RunInfo] {
        try queue.read { db in
            try Row.fetchAll(db, sql: """
                SELECT r.id, ls.name AS label_set, r.provider, r.endpoint, r.model, r.template_name, r.seed, r.temperature,
                       r.status, r.updated_at,
                       (SELECT count(*) FROM labels l WHERE l.label_set_id = ls.id) AS labels,
                       (SELECT count(*) FROM label_status s WHERE s.run_id = r.id AND s.state = 'complete') AS complete,
                       (SELECT count(*) FROM label_status s WHERE s.run_id = r.id AND s.state = 'short') AS short,
                       (SELECT count(*) FROM label_status s WHERE s.run_id = r.id AND s.state = 'none') AS none,
                       (SELECT count(*) FROM label_status s WHERE s.run_id = r.id AND s.state = 'failed') AS failed,
                       (SELECT count(*) FROM descriptions d WHERE d.run_id = r.id) AS descriptions
                FROM runs r JOIN label_sets ls ON ls.id = r.label_set_id
                WHERE (? IS NULL OR ls.name = ?)
                ORDER BY ls.name, r.updated_at DESC, r.id DESC
                """, arguments: [labelSet, labelSet]).map { row in
                RunInfo(
                    id: row["id"], labelSet: row["label_set"], provider: row["provider"], endpoint: row["endpoint"],
                    model: row["model"], template: row["template_name"], seed: row["seed"], temperature: row["temperature"],
                    status: row["status"], labels: row["labels"], complete: row["complete"], short: row["short"],
                    none: row["none"], failed: row["failed"], descriptions: row["descriptions"], updatedAt: row["updated_at"])
            }
        }
    }

    /// The run `export`, `show` and `validate` use by default: the most recently updated run of the set.
    public func latestRun(labelSet: String) throws -> RunInfo? {
        try runs(labelSet: labelSet).first
    }

    /// The label sets whose labels include `label` (by raw name, display name, or case-insensitively).
    public func labelSets(containing label: String) throws -> [String] {
        try queue.read { db in
            try String.fetchAll(db, sql: """
                SELECT DISTINCT ls.name FROM labels l JOIN label_sets ls ON ls.id = l.label_set_id
                WHERE l.raw_name = ? OR l.display_name = ? OR lower(l.raw_name) = lower(?) OR lower(l.display_name) = lower(?)
                ORDER BY ls.name
                """, arguments: [label, label, label, label])
        }
    }

    /// The knowledge of every label of `labelSet` in run `runID`, in label order. Labels without any are included.
    public func knowledge(labelSet: String, runID: Int64, label: String? = nil) throws -> [LabelKnowledge] {
        try queue.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT l.id, l.raw_name, l.display_name, l.synonyms, s.state
                FROM labels l JOIN label_sets ls ON ls.id = l.label_set_id
                LEFT JOIN label_status s ON s.label_id = l.id AND s.run_id = ?
                WHERE ls.name = ? AND (? IS NULL OR l.raw_name = ? OR l.display_name = ? OR lower(l.raw_name) = lower(?) OR lower(l.display_name) = lower(?))
                ORDER BY l.position
                """, arguments: [runID, labelSet, label, label, label, label, label])
            return try rows.map { row in
                let id: Int64 = row["id"]
                let stored = try Row.fetchAll(db, sql: "SELECT id, text, flags FROM descriptions WHERE run_id = ? AND label_id = ? ORDER BY position", arguments: [runID, id])
                let synonyms = (try? JSONDecoder().decode([String].self, from: Data((row["synonyms"] as String).utf8))) ?? []
                return LabelKnowledge(label: row["raw_name"], displayName: row["display_name"], synonyms: synonyms, runID: runID, state: row["state"],
                                      descriptions: stored.map { $0["text"] }, flags: stored.map { DescriptionFlag.parse($0["flags"]) },
                                      ids: stored.map { $0["id"] })
            }
        }
    }

    /// Requests of a run that were flagged (refusal, off-topic, empty) or failed, by label.
    public func flaggedRequests(runID: Int64) throws -> [(label: String, attempt: Int, flag: String?, error: String?)] {
        try queue.read { db in
            try Row.fetchAll(db, sql: """
                SELECT l.raw_name, q.attempt, q.flag, q.error FROM requests q JOIN labels l ON l.id = q.label_id
                WHERE q.run_id = ? AND (q.flag IS NOT NULL OR q.error IS NOT NULL) ORDER BY l.position, q.attempt
                """, arguments: [runID]).map { ($0["raw_name"], $0["attempt"], $0["flag"], $0["error"]) }
        }
    }

    /// `PRAGMA integrity_check`'s answer: `["ok"]` for a healthy file.
    public func integrityCheck() throws -> [String] {
        try queue.read { try String.fetchAll($0, sql: "PRAGMA integrity_check") }
    }
}

extension KnowledgeStore {
    /// Replaces the word-count estimate behind `too-long` with a tokenizer's count (`encode` has one at hand).
    public func recordTokenCounts(_ counts: [(id: Int64, tokens: Int)]) throws {
        guard !counts.isEmpty else { return }
        try queue.write { db in
            for (id, tokens) in counts {
                guard let flags = try String.fetchOne(db, sql: "SELECT flags FROM descriptions WHERE id = ?", arguments: [id]) else { continue }
                var set = Set(DescriptionFlag.parse(flags))
                if tokens > DescriptionQuality.tokenLimit { set.insert(.tooLong) } else { set.remove(.tooLong) }
                try db.cachedStatement(sql: """
                    UPDATE descriptions SET flags = ?, quality = json_set(quality, '$.tokens', ?, '$.tokens_by', 'clip-tokenizer') WHERE id = ?
                    """).execute(arguments: [DescriptionFlag.column(Array(set)), tokens, id])
            }
        }
    }

    /// How many descriptions the run asked for per label.
    public func descriptionsWanted(runID: Int64) throws -> Int {
        try queue.read { try Int.fetchOne($0, sql: "SELECT descriptions_wanted FROM runs WHERE id = ?", arguments: [runID]) ?? 0 }
    }
}
