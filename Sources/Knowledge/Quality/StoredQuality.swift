import Foundation
import GRDB

/// Judges descriptions already in a store, from what the store holds: the label set, the request each came from
/// (its demonstrations, its finish reason) and the answer's other sentences. Used by the migration that added the
/// flags, so an older knowledge.db gets the same verdicts a new build would give (without WordNet's relations, which
/// only widen what counts as on topic; an older build kept only sentences naming the label anyway).
enum StoredQuality {
    static func assessAll(_ db: Database) throws {
        let runs = try Row.fetchAll(db, sql: "SELECT id, label_set_id FROM runs")
        for run in runs {
            let runID: Int64 = run["id"]
            let labelRows = try Row.fetchAll(db, sql: "SELECT id, raw_name, display_name, synonyms FROM labels WHERE label_set_id = ? ORDER BY position",
                                             arguments: [run["label_set_id"] as Int64])
            let labels: [(id: Int64, label: Label)] = labelRows.map { row in
                let synonyms = (try? JSONDecoder().decode([String].self, from: Data((row["synonyms"] as String).utf8))) ?? []
                return (row["id"], Label(rawName: row["raw_name"], displayName: row["display_name"], synonyms: synonyms))
            }
            let set = labels.map(\.label)
            let names = DescriptionQuality.NameIndex(set)
            for (labelID, label) in labels {
                let rows = try Row.fetchAll(db, sql: """
                    SELECT d.id, d.text, d.request_id, q.prompt, q.demonstrations, q.finish_reason FROM descriptions d
                    JOIN requests q ON q.id = d.request_id WHERE d.run_id = ? AND d.label_id = ? ORDER BY d.position
                    """, arguments: [runID, labelID])
                guard !rows.isEmpty else { continue }
                let context = DescriptionQuality.Context(label: label, names: names)
                var earlier: [String] = []
                for (index, row) in rows.enumerated() {
                    let text: String = row["text"]
                    let requestID: Int64 = row["request_id"]
                    let answer = rows.filter { $0["request_id"] as Int64 == requestID }.map { $0["text"] as String }
                    let lastOfAnswer = rows[(index + 1)...].allSatisfy { $0["request_id"] as Int64 != requestID }
                    let verdict = DescriptionQuality.assess(
                        text, context: context, demonstrations: demonstrations(prompt: row["prompt"], labels: row["demonstrations"]),
                        earlier: earlier, answerOnTopic: DescriptionQuality.onTopic(answer, context),
                        cutOff: lastOfAnswer && (row["finish_reason"] as String?)?.contains("length") == true)
                    earlier.append(text)
                    try db.execute(sql: "UPDATE descriptions SET flags = ?, quality = ? WHERE id = ?",
                                   arguments: [DescriptionFlag.column(verdict.flags), verdict.json, row["id"] as Int64])
                }
            }
        }
    }

    /// The demonstration answers a stored prompt showed: its assistant turns (`{"descriptions": [...]}`), each with
    /// the demonstration's label from the request's `demonstrations` column.
    static func demonstrations(prompt: String, labels: String) -> [(label: String, text: String)] {
        guard let messages = try? JSONSerialization.jsonObject(with: Data(prompt.utf8)) as? [[String: Any]],
              let names = try? JSONSerialization.jsonObject(with: Data(labels.utf8)) as? [String] else { return [] }
        let answers = messages.filter { $0["role"] as? String == "assistant" }.compactMap { $0["content"] as? String }
        var shown: [(label: String, text: String)] = []
        for (index, answer) in answers.enumerated() {
            let texts = ResponseParser.jsonObjectStrings(answer) ?? []
            for text in texts { shown.append((index < names.count ? names[index] : "", text)) }
        }
        return shown
    }
}
