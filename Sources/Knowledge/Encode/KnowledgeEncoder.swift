import CLIP
import Foundation
import GRDB
import Tensor

/// A text encoder and its identity in the store.
public struct TextEncoder: Sendable {
    /// The checkpoint's identity (`CLIP.Checkpoint.Identity`): weights, config, vocabulary and merges. Two encoders
    /// are the same exactly when every file that changes an embedding is.
    public var id: String
    /// Each file that went into `id`, with its SHA-256.
    public var files: [String: String]
    public var path: String
    public var model: CLIP.TextModel
    public var tokenizer: CLIP.Tokenizer

    /// Loads a Hugging Face CLIP checkpoint folder and computes its identity.
    public static func load(directory: String) throws -> TextEncoder {
        let url = URL(fileURLWithPath: directory)
        let checkpoint = try CLIP.Checkpoint(directory: url)
        let model = try CLIP.TextModel(config: CLIP.loadTextConfig(directory: url), checkpoint: checkpoint)
        let tokenizer: CLIP.Tokenizer
        do { tokenizer = try CLIP.Tokenizer(directory: url) } catch { throw CheckpointError("\(error)") }
        guard tokenizer.vocabularySize == model.config.vocabSize else {
            throw CheckpointError("\(url.path): vocab.json holds \(tokenizer.vocabularySize) tokens, but config.json's vocab_size is \(model.config.vocabSize). Use the vocab.json of this checkpoint.")
        }
        let identity = try checkpoint.identity()
        return TextEncoder(id: identity.id, files: identity.files, path: url.standardized.path, model: model, tokenizer: tokenizer)
    }
}

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

/// Stage 4: turns a run's descriptions into CLIP text embeddings and the per-label knowledge vectors `t^ka`.
///
/// `t^ka_c = norm(mean over s in D_c ∪ {"a photo of a {display name}."} of norm(E_t(s)))` (SSPA-SPEC.md). Each text
/// is encoded once per encoder: a re-run encodes only what is new. Batches are saved as they finish, so Ctrl-C
/// loses at most the batch in flight.
public struct KnowledgeEncoder: Sendable {
    public var store: KnowledgeStore
    public var encoder: TextEncoder
    public var batchSize: Int
    /// Encode every text again, replacing what the store holds for this encoder.
    public var force: Bool
    /// Use flagged descriptions too (copied, duplicate, off-topic, incomplete, too long), which are left out by default.
    public var keepFlagged: Bool

    public init(store: KnowledgeStore, encoder: TextEncoder, batchSize: Int = 64, force: Bool = false, keepFlagged: Bool = false) {
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
        // The tokenizer is at hand: `too-long` is judged on its count, not the build's word-count estimate.
        var counts: [(id: Int64, tokens: Int)] = []
        for index in knowledge.indices {
            for (position, text) in knowledge[index].descriptions.enumerated() {
                let tokens = encoder.tokenizer.tokenCount(text)
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
            let tokens = chunk.map { encoder.tokenizer.tokenize($0) }
            let fullLengths = chunk.map { encoder.tokenizer.tokenCount($0) }
            let output = encoder.model.encode(tokens, batchSize: batchSize)
            if let row = Self.firstNonFiniteRow(output.embeddings) {
                let text = chunk[row]
                throw EncodeError(message: "the embedding of '\(text.prefix(60))\(text.count > 60 ? "…" : "")' (label '\(owner[text] ?? "?")') is NaN or infinite, so the checkpoint at \(encoder.path) is broken (its weights or config.json, e.g. layer_norm_eps); nothing of this batch was stored. Fix the checkpoint and run encode again.")
            }
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
