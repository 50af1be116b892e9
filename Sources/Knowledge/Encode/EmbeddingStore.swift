import Foundation
import GRDB
import Tensor

// MARK: - Storage

extension KnowledgeStore {
    static func blob(_ values: UnsafeBufferPointer<Float>) -> Data {
        var data = Data(count: values.count * 4)
        data.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        }
        return data
    }

    static func floats(_ blob: Data) -> [Float] {
        blob.withUnsafeBytes { raw in
            (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    func saveEncoder(_ encoder: any TextEmbedder) throws {
        let provenance = encoder.provenance
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO encoders (id, path, config, dim, identity, files, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO NOTHING
                """, arguments: [encoder.id, provenance.path, provenance.config, encoder.width,
                                 provenance.scheme, Self.json(provenance.files), Self.now()])
        }
    }

    func embeddedTextHashes(encoderID: String) throws -> Set<String> {
        try queue.read { Set(try String.fetchAll($0, sql: "SELECT text_sha256 FROM embeddings WHERE encoder_id = ?", arguments: [encoderID])) }
    }

    func saveEmbeddings(encoderID: String, texts: [String], vectors: Tensor, tokens: [Int]) throws {
        let dim = vectors.shape[1]
        try queue.write { db in
            let now = Self.now()
            let statement = try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO embeddings (encoder_id, text_sha256, text, vector, tokens, truncated, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            try vectors.withUnsafeBufferPointer { buffer in
                for (i, text) in texts.enumerated() {
                    let row = UnsafeBufferPointer(rebasing: buffer[(i * dim)..<((i + 1) * dim)])
                    try statement.execute(arguments: [encoderID, SHA256.hex(text), text, Self.blob(row), tokens[i], tokens[i] > 77 ? 1 : 0, now])
                }
            }
        }
    }

    /// Stored embeddings of `texts` by text.
    public func embeddings(encoderID: String, texts: [String]) throws -> [String: [Float]] {
        try queue.read { db in
            var result: [String: [Float]] = [:]
            let statement = try db.cachedStatement(sql: "SELECT vector FROM embeddings WHERE encoder_id = ? AND text_sha256 = ?")
            for text in texts {
                if let blob = try Data.fetchOne(statement, arguments: [encoderID, SHA256.hex(text)]) { result[text] = Self.floats(blob) }
            }
            return result
        }
    }

    func truncatedCount(encoderID: String, texts: [String]) throws -> Int {
        let hashes = Set(texts.map(SHA256.hex))
        return try queue.read { db in
            try String.fetchAll(db, sql: "SELECT text_sha256 FROM embeddings WHERE encoder_id = ? AND truncated = 1", arguments: [encoderID])
                .filter(hashes.contains).count
        }
    }

    func saveKnowledgeVectors(encoderID: String, labelSet: String, runID: Int64, rows: [(label: String, vector: [Float], count: Int)]) throws {
        try queue.write { db in
            let now = Self.now()
            for row in rows {
                guard let labelID = try Int64.fetchOne(db, sql: """
                    SELECT l.id FROM labels l JOIN label_sets s ON s.id = l.label_set_id WHERE s.name = ? AND l.raw_name = ?
                    """, arguments: [labelSet, row.label]) else { continue }
                let blob = row.vector.withUnsafeBufferPointer { Self.blob($0) }
                try db.execute(sql: """
                    INSERT OR REPLACE INTO knowledge_vectors (encoder_id, run_id, label_id, vector, texts, created_at) VALUES (?, ?, ?, ?, ?, ?)
                    """, arguments: [encoderID, runID, labelID, blob, row.count, now])
            }
        }
    }

    /// The knowledge matrix `T^ka` `[C, d]` of a label set in label order, for an encoder, with the run it came from.
    public func knowledgeMatrix(labelSet: String, encoderID: String, runID: Int64? = nil) throws -> (labels: [String], matrix: Tensor, runID: Int64)? {
        try queue.read { db in
            let run: Int64? = try runID ?? Int64.fetchOne(db, sql: """
                SELECT k.run_id FROM knowledge_vectors k JOIN labels l ON l.id = k.label_id JOIN label_sets s ON s.id = l.label_set_id
                WHERE s.name = ? AND k.encoder_id = ? ORDER BY k.created_at DESC LIMIT 1
                """, arguments: [labelSet, encoderID])
            guard let run else { return nil }
            let rows = try Row.fetchAll(db, sql: """
                SELECT l.raw_name, k.vector FROM labels l JOIN label_sets s ON s.id = l.label_set_id
                LEFT JOIN knowledge_vectors k ON k.label_id = l.id AND k.encoder_id = ? AND k.run_id = ?
                WHERE s.name = ? ORDER BY l.position
                """, arguments: [encoderID, run, labelSet])
            guard !rows.isEmpty, rows.allSatisfy({ ($0["vector"] as Data?) != nil }) else { return nil }
            let vectors = rows.map { Self.floats($0["vector"]) }
            return (rows.map { $0["raw_name"] }, Tensor(vectors.flatMap { $0 }, shape: [vectors.count, vectors[0].count]), run)
        }
    }

    /// The ids of encoders that have knowledge vectors for `labelSet`.
    public func encoders(labelSet: String) throws -> [String] {
        try queue.read { db in
            try String.fetchAll(db, sql: """
                SELECT DISTINCT k.encoder_id FROM knowledge_vectors k JOIN labels l ON l.id = k.label_id JOIN label_sets s ON s.id = l.label_set_id
                WHERE s.name = ? ORDER BY k.encoder_id
                """, arguments: [labelSet])
        }
    }
}

extension KnowledgeExporter {
    /// The knowledge of a label set for PyTorch users, as safetensors: `knowledge` `[C, d]` (t^ka in label order),
    /// `descriptions` `[N, d]` (each description's embedding), `description_label` `[N]` (its label's row), with
    /// the labels, display names, encoder and run in the metadata.
    public static func safetensors(store: KnowledgeStore, labelSet: String, encoderID: String, runID: Int64? = nil) throws -> Data {
        guard let (labels, matrix, run) = try store.knowledgeMatrix(labelSet: labelSet, encoderID: encoderID, runID: runID) else {
            throw StoreError("label set '\(labelSet)' has no knowledge vectors for encoder \(encoderID.prefix(12)); run `sspa-knowledge encode --clip DIR --label-set \(labelSet)` first.")
        }
        let knowledge = try store.knowledge(labelSet: labelSet, runID: run)
        // The descriptions encoded: the usable ones, and flagged ones when `encode --keep-flagged` encoded them.
        let all = knowledge.flatMap(\.descriptions)
        let available = try store.embeddings(encoderID: encoderID, texts: all)
        var texts: [String] = []
        var owner: [Int64] = []
        for (index, entry) in knowledge.enumerated() {
            let usable = Set(entry.used())
            for text in entry.descriptions where usable.contains(text) || available[text] != nil {
                texts.append(text)
                owner.append(Int64(index))
            }
        }
        let vectors = available
        let dim = matrix.shape[1]
        var flat: [Float] = []
        flat.reserveCapacity(texts.count * dim)
        for text in texts {
            guard let v = vectors[text] else { throw StoreError("the embedding of a description of '\(labelSet)' is missing; run encode again.") }
            flat += v
        }
        func json(_ strings: [String]) -> String { String(decoding: (try? JSONValue.array(strings.map(JSONValue.string)).data()) ?? Data(), as: UTF8.self) }
        var writer = SafeTensorsWriter(metadata: [
            "label_set": labelSet, "labels": json(labels), "display_names": json(knowledge.map(\.displayName)),
            "encoder_sha256": encoderID, "run_id": String(run), "format": "sspa-knowledge/1",
        ])
        writer.add("knowledge", matrix)
        writer.add("descriptions", Tensor(flat, shape: [texts.count, dim]))
        writer.add("description_label", integers: owner, shape: [owner.count])
        return try writer.serialized(file: "\(labelSet).safetensors")
    }
}

extension KnowledgeStore {
    /// Stored vectors of a run that hold a NaN or an infinity: knowledge vectors and the embeddings of the run's
    /// descriptions, as (label, what, encoder id). Stores written before the checks existed can hold them.
    public func nonFiniteVectors(labelSet: String, runID: Int64) throws -> [(label: String, what: String, encoder: String)] {
        try queue.read { db in
            var found: [(String, String, String)] = []
            let vectors = try Row.fetchCursor(db, sql: """
                SELECT l.raw_name, k.encoder_id, k.vector FROM knowledge_vectors k JOIN labels l ON l.id = k.label_id
                JOIN label_sets s ON s.id = l.label_set_id WHERE s.name = ? AND k.run_id = ? ORDER BY l.position
                """, arguments: [labelSet, runID])
            while let row = try vectors.next() {
                if !Self.floats(row["vector"]).allSatisfy(\.isFinite) { found.append((row["raw_name"], "knowledge vector", row["encoder_id"])) }
            }
            let embeddings = try Row.fetchCursor(db, sql: """
                SELECT l.raw_name, d.position, e.encoder_id, e.vector FROM descriptions d JOIN labels l ON l.id = d.label_id
                JOIN embeddings e ON e.text = d.text WHERE d.run_id = ? ORDER BY l.position, d.position
                """, arguments: [runID])
            while let row = try embeddings.next() {
                if !Self.floats(row["vector"]).allSatisfy(\.isFinite) {
                    found.append((row["raw_name"], "embedding of description \((row["position"] as Int) + 1)", row["encoder_id"]))
                }
            }
            return found
        }
    }
}
