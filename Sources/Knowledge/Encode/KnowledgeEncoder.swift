import CLIP
import Foundation
import GRDB
import Tensor

/// A text encoder and its identity in the store.
public struct TextEncoder: Sendable {
    /// SHA-256 of the checkpoint's weight files: two encoders are the same exactly when their weights are.
    public var id: String
    public var path: String
    public var model: CLIP.TextModel
    public var tokenizer: CLIP.Tokenizer

    /// Loads a Hugging Face CLIP checkpoint folder and hashes its weights.
    public static func load(directory: String) throws -> TextEncoder {
        let url = URL(fileURLWithPath: directory)
        let checkpoint = try CLIP.Checkpoint(directory: url)
        let model = try CLIP.TextModel(config: CLIP.loadTextConfig(directory: url), checkpoint: checkpoint)
        let tokenizer: CLIP.Tokenizer
        do { tokenizer = try CLIP.Tokenizer(directory: url) } catch { throw CheckpointError("\(error)") }
        var hasher = SHA256()
        for file in checkpoint.files {
            guard let handle = FileHandle(forReadingAtPath: file.path) else { throw CheckpointError("\(file.path): cannot read.") }
            defer { try? handle.close() }
            while let chunk = try handle.read(upToCount: 1 << 22), !chunk.isEmpty { hasher.update(chunk) }
        }
        let id = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        return TextEncoder(id: id, path: url.standardized.path, model: model, tokenizer: tokenizer)
    }
}

/// What `encode` reports while it works.
public enum EncodeEvent: Sendable {
    case started(texts: Int, new: Int)
    case batch(done: Int, total: Int)
}

public struct EncodeSummary: Sendable {
    public var labelSet: String
    public var runID: Int64
    public var texts = 0
    public var encoded = 0
    public var reused = 0
    public var labels = 0
    public var truncated = 0
    public var seconds = 0.0
}

/// Stage 4: turns a run's descriptions into CLIP text embeddings and the per-label knowledge vectors `t^ka`.
///
/// `t^ka_c = norm(mean over s in D_c ∪ {"a photo of a {display name}."} of norm(E_t(s)))` (SSPA-SPEC.md). Each text
/// is encoded once per encoder: a re-run encodes only what is new. Batches are saved as they finish, so Ctrl-C
/// loses at most the batch in flight.
public struct KnowledgeEncoder: Sendable {
    public var store: KnowledgeStore
    public var encoder: TextEncoder
    public var batchSize: Int

    public init(store: KnowledgeStore, encoder: TextEncoder, batchSize: Int = 64) {
        self.store = store
        self.encoder = encoder
        self.batchSize = batchSize
    }

    public static func classPrompt(_ displayName: String) -> String { "a photo of a \(displayName)." }

    public func encode(labelSet: String, runID: Int64, events: @Sendable (EncodeEvent) -> Void) throws -> EncodeSummary {
        let started = ContinuousClock.now
        let knowledge = try store.knowledge(labelSet: labelSet, runID: runID)
        var summary = EncodeSummary(labelSet: labelSet, runID: runID)
        // Every text of every label, in label order, without repeats.
        var texts: [String] = []
        var seen = Set<String>()
        for entry in knowledge {
            for text in entry.descriptions + [Self.classPrompt(entry.displayName)] where seen.insert(text).inserted {
                texts.append(text)
            }
        }
        summary.texts = texts.count
        try store.saveEncoder(encoder)
        let stored = try store.embeddedTextHashes(encoderID: encoder.id)
        let missing = texts.filter { !stored.contains(SHA256.hex($0)) }
        summary.reused = texts.count - missing.count
        events(.started(texts: texts.count, new: missing.count))

        var done = 0
        var start = 0
        while start < missing.count {
            if Task.isCancelled { throw CancellationError() }
            let chunk = Array(missing[start..<min(start + batchSize, missing.count)])
            let tokens = chunk.map { encoder.tokenizer.tokenize($0) }
            let fullLengths = chunk.map { encoder.tokenizer.tokenCount($0) }
            let output = encoder.model.encode(tokens, batchSize: batchSize)
            try store.saveEmbeddings(encoderID: encoder.id, texts: chunk, vectors: output.embeddings, tokens: fullLengths)
            done += chunk.count
            start += chunk.count
            events(.batch(done: done, total: missing.count))
        }
        summary.encoded = missing.count

        // t^ka per label, from the stored vectors.
        let vectors = try store.embeddings(encoderID: encoder.id, texts: texts)
        let dim = encoder.model.config.projectionDim
        var rows: [(label: String, vector: [Float], count: Int)] = []
        for entry in knowledge {
            let sources = entry.descriptions + [Self.classPrompt(entry.displayName)]
            var mean = [Float](repeating: 0, count: dim)
            for text in sources {
                guard let v = vectors[text] else { throw StoreError("the embedding of '\(text)' is missing from \(store.path); run encode again.") }
                let n = max(sqrt(v.reduce(0) { $0 + $1 * $1 }), 1e-6)
                for j in 0..<dim { mean[j] += v[j] / n }
            }
            let n = max(sqrt(mean.reduce(0) { $0 + $1 * $1 }), 1e-6)
            rows.append((entry.label, mean.map { $0 / n }, sources.count))
        }
        try store.saveKnowledgeVectors(encoderID: encoder.id, labelSet: labelSet, runID: runID, rows: rows)
        summary.labels = rows.count
        summary.truncated = try store.truncatedCount(encoderID: encoder.id, texts: texts)
        summary.seconds = JSONPoster.seconds(ContinuousClock.now - started)
        return summary
    }
}

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

    func saveEncoder(_ encoder: TextEncoder) throws {
        let config = String(decoding: try JSONEncoder().encode(encoder.model.config), as: UTF8.self)
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO encoders (id, path, config, dim, created_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (id) DO NOTHING
                """, arguments: [encoder.id, encoder.path, config, encoder.model.config.projectionDim, Self.now()])
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
        var texts: [String] = []
        var owner: [Int64] = []
        for (index, entry) in knowledge.enumerated() {
            for text in entry.descriptions {
                texts.append(text)
                owner.append(Int64(index))
            }
        }
        let vectors = try store.embeddings(encoderID: encoderID, texts: texts)
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
