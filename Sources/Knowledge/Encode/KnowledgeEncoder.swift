import Foundation
import GRDB
import Tensor

/// Embeddings that cannot be right: a NaN or an infinity, from broken weights or config. Nothing of them is stored.
public struct EncodeError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
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
    /// Descriptions left out because of their flags, by flag (a description counts under each of its flags).
    public var excluded: [DescriptionFlag: Int] = [:]
    public var excludedDescriptions = 0
    public var seconds = 0.0
}

/// Stage 4: turns a run's descriptions into text embeddings (CLIP's, through a `TextEmbedder`) and the per-label
/// knowledge vectors `t^ka`.
///
/// `t^ka_c = norm(mean over s in D_c ∪ {"a photo of a {display name}."} of norm(E_t(s)))` (SSPA-SPEC.md). Each text
/// is encoded once per encoder: a re-run encodes only what is new. Batches are saved as they finish, so Ctrl-C
/// loses at most the batch in flight.
public struct KnowledgeEncoder: Sendable {
    public var store: KnowledgeStore
    public var encoder: any TextEmbedder
    public var batchSize: Int
    /// Encode every text again, replacing what the store holds for this encoder.
    public var force: Bool
    /// Use flagged descriptions too (copied, duplicate, off-topic, incomplete, too long), which are left out by default.
    public var keepFlagged: Bool

    public init(store: KnowledgeStore, encoder: any TextEmbedder, batchSize: Int = 64, force: Bool = false, keepFlagged: Bool = false) {
        self.store = store
        self.encoder = encoder
        self.batchSize = batchSize
        self.force = force
        self.keepFlagged = keepFlagged
    }

    public static func classPrompt(_ displayName: String) -> String { "a photo of a \(displayName)." }

    public func encode(labelSet: String, runID: Int64, events: @Sendable (EncodeEvent) -> Void) throws -> EncodeSummary {
        let started = ContinuousClock.now
        var knowledge = try store.knowledge(labelSet: labelSet, runID: runID)
        var summary = EncodeSummary(labelSet: labelSet, runID: runID)
        // The encoder's tokenizer is at hand: `too-long` is judged on its count, not the build's word-count estimate.
        var counts: [(id: Int64, tokens: Int)] = []
        for index in knowledge.indices {
            for (position, text) in knowledge[index].descriptions.enumerated() {
                let tokens = encoder.tokenCount(text)
                counts.append((knowledge[index].ids[position], tokens))
                var flags = Set(knowledge[index].flags[position])
                if tokens > DescriptionQuality.tokenLimit { flags.insert(.tooLong) } else { flags.remove(.tooLong) }
                knowledge[index].flags[position] = flags.sorted()
            }
        }
        try store.recordTokenCounts(counts)
        for entry in knowledge where !keepFlagged {
            for flags in entry.flags where flags.contains(where: \.excludesByDefault) {
                summary.excludedDescriptions += 1
                for flag in flags where flag.excludesByDefault { summary.excluded[flag, default: 0] += 1 }
            }
        }
        // Every text of every label, in label order, without repeats.
        var texts: [String] = []
        var owner: [String: String] = [:]
        for entry in knowledge {
            for text in entry.used(keepFlagged: keepFlagged) + [Self.classPrompt(entry.displayName)] where owner[text] == nil {
                owner[text] = entry.label
                texts.append(text)
            }
        }
        summary.texts = texts.count
        try store.saveEncoder(encoder)
        let stored = try store.embeddedTextHashes(encoderID: encoder.id)
        let missing = force ? texts : texts.filter { !stored.contains(SHA256.hex($0)) }
        summary.reused = texts.count - missing.count
        events(.started(texts: texts.count, new: missing.count))

        var done = 0
        var start = 0
        while start < missing.count {
            if Task.isCancelled { throw CancellationError() }
            let chunk = Array(missing[start..<(start + min(batchSize, missing.count - start))])
            let fullLengths = chunk.map { encoder.tokenCount($0) }
            let embeddings = try encoder.embed(chunk)
            guard embeddings.shape == [chunk.count, encoder.width] else {
                throw EncodeError(message: "the encoder at \(encoder.provenance.path) gave embeddings of shape \(embeddings.shape) for \(chunk.count) texts of width \(encoder.width); nothing of this batch was stored.")
            }
            if let row = Self.firstNonFiniteRow(embeddings) {
                let text = chunk[row]
                throw EncodeError(message: "the embedding of '\(text.prefix(60))\(text.count > 60 ? "…" : "")' (label '\(owner[text] ?? "?")') is NaN or infinite, so the checkpoint at \(encoder.provenance.path) is broken (its weights or config.json, e.g. layer_norm_eps); nothing of this batch was stored. Fix the checkpoint and run encode again.")
            }
            try store.saveEmbeddings(encoderID: encoder.id, texts: chunk, vectors: embeddings, tokens: fullLengths)
            done += chunk.count
            start += chunk.count
            events(.batch(done: done, total: missing.count))
        }
        summary.encoded = missing.count

        // t^ka per label, from the stored vectors.
        let vectors = try store.embeddings(encoderID: encoder.id, texts: texts)
        let dim = encoder.width
        var rows: [(label: String, vector: [Float], count: Int)] = []
        for entry in knowledge {
            let sources = entry.used(keepFlagged: keepFlagged) + [Self.classPrompt(entry.displayName)]
            var mean = [Float](repeating: 0, count: dim)
            for text in sources {
                guard let v = vectors[text] else { throw StoreError("the embedding of '\(text)' is missing from \(store.path); run encode again.") }
                let n = max(sqrt(v.reduce(0) { $0 + $1 * $1 }), 1e-6)
                for j in 0..<dim { mean[j] += v[j] / n }
            }
            let n = max(sqrt(mean.reduce(0) { $0 + $1 * $1 }), 1e-6)
            let vector = mean.map { $0 / n }
            guard vector.allSatisfy(\.isFinite) else {
                throw EncodeError(message: "the knowledge vector of label '\(entry.label)' is NaN or infinite (a stored embedding of it is); run `sspa-knowledge encode --force` with a sound checkpoint.")
            }
            rows.append((entry.label, vector, sources.count))
        }
        try store.saveKnowledgeVectors(encoderID: encoder.id, labelSet: labelSet, runID: runID, rows: rows)
        summary.labels = rows.count
        summary.truncated = try store.truncatedCount(encoderID: encoder.id, texts: texts)
        summary.seconds = JSONPoster.seconds(ContinuousClock.now - started)
        return summary
    }
}

extension KnowledgeEncoder {
    /// The first row of `[N, d]` with a NaN or an infinity, or nil.
    static func firstNonFiniteRow(_ matrix: Tensor) -> Int? {
        let d = matrix.shape[1]
        return matrix.withUnsafeBufferPointer { values in values.firstIndex { !$0.isFinite }.map { $0 / max(d, 1) } }
    }
}
