import Foundation
import GRDB
import Tensor
import Testing
@testable import Knowledge
import TestSupport

/// What stage 4 does with an encoder's answers (reuse, batches, failures, flags, provenance), with a fake
/// `TextEmbedder`; the real CLIP text tower is tested in EncodeTests.
@Suite("Encoding knowledge with a fake embedder")
struct EmbedderTests {
    /// Vectors made from the text alone, `tokensPerWord` tokens a word, and a record of every text embedded.
    final class FakeEmbedder: TextEmbedder, @unchecked Sendable {
        let id: String
        let width: Int
        /// A text containing this embeds to NaN.
        let poison: String?
        let tokensPerWord: Int
        private let lock = NSLock()
        private var texts: [String] = []

        init(id: String = "fake-1", width: Int = 4, poison: String? = nil, tokensPerWord: Int = 1) {
            self.id = id
            self.width = width
            self.poison = poison
            self.tokensPerWord = tokensPerWord
        }

        var embedded: [String] { lock.withLock { texts } }

        var provenance: EmbedderProvenance {
            EmbedderProvenance(path: "/fake/\(id)", config: #"{"kind":"fake"}"#, scheme: "fake/1", files: ["weights": "abc"])
        }

        static func vector(_ text: String) -> [Float] {
            let bytes = Array(text.utf8)
            return [Float(bytes.count % 7 + 1), Float(bytes.reduce(0) { $0 + Int($1) } % 13) - 6,
                    Float(text.split(separator: " ").count), 1]
        }

        func embed(_ texts: [String]) throws -> Tensor {
            lock.withLock { self.texts += texts }
            let rows = texts.map { text in text.contains(poison ?? "\u{0}") ? [Float](repeating: .nan, count: 4) : Self.vector(text) }
            return Tensor(rows.flatMap { Array($0.prefix(width)) + [Float](repeating: 0, count: max(0, width - 4)) },
                          shape: [texts.count, width])
        }

        func tokenCount(_ text: String) -> Int { tokensPerWord * text.split(separator: " ").count }
    }

    /// A store with a finished build of four farm labels, two descriptions each, from a fake provider.
    func builtStore(_ dir: URL) async throws -> (KnowledgeStore, Int64) {
        let helper = LabelWorkerTests()
        let provider = helper.provider(LabelWorkerTests.Calls()) { label, seed in
            .choices([.init(content: LabelWorkerTests.good(label.rawName, seed), finishReason: "stop")])
        }
        guard case .success = try await helper.build(provider, dir: dir) else { throw StoreError("the build stopped") }
        let store = try KnowledgeStore(path: dir.appendingPathComponent("knowledge.db").path)
        let run = try #require(try store.latestRun(labelSet: "farm")).id
        return (store, run)
    }

    func normalised(_ v: [Float]) -> [Float] {
        let n = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-6)
        return v.map { $0 / n }
    }

    @Test func knowledgeVectorsAreTheNormalisedMeanAndOnlyNewTextsAreEmbedded() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (store, run) = try await builtStore(dir)
        let fake = FakeEmbedder()
        let first = try KnowledgeEncoder(store: store, encoder: fake, batchSize: 3).encode(labelSet: "farm", runID: run) { _ in }
        #expect(first.labels == 4 && first.encoded == first.texts && first.reused == 0)
        #expect(fake.embedded.count == first.texts, "each text once")
        let (labels, matrix, _) = try #require(try store.knowledgeMatrix(labelSet: "farm", encoderID: fake.id))
        #expect(matrix.shape == [4, 4])
        for (row, entry) in try store.knowledge(labelSet: "farm", runID: run).enumerated() {
            #expect(labels[row] == entry.label)
            let texts = entry.descriptions + [KnowledgeEncoder.classPrompt(entry.displayName)]
            var mean = [Float](repeating: 0, count: 4)
            for text in texts { for (j, x) in normalised(FakeEmbedder.vector(text)).enumerated() { mean[j] += x } }
            let got = matrix.withUnsafeBufferPointer { Array($0[(row * 4)..<((row + 1) * 4)]) }
            #expect(zip(got, normalised(mean)).allSatisfy { abs($0 - $1) < 1e-6 }, "\(entry.label)")
        }

        let again = try KnowledgeEncoder(store: store, encoder: fake).encode(labelSet: "farm", runID: run) { _ in }
        #expect(again.encoded == 0 && again.reused == first.texts && fake.embedded.count == first.texts)
        let forced = try KnowledgeEncoder(store: store, encoder: fake, force: true).encode(labelSet: "farm", runID: run) { _ in }
        #expect(forced.encoded == first.texts && fake.embedded.count == 2 * first.texts)
        // Another encoder id reuses nothing: its embeddings may differ.
        let other = FakeEmbedder(id: "fake-2")
        let fresh = try KnowledgeEncoder(store: store, encoder: other).encode(labelSet: "farm", runID: run) { _ in }
        #expect(fresh.reused == 0 && other.embedded.count == first.texts)
    }

    @Test func aNonFiniteEmbeddingStoresNothingOfItsBatch() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (store, run) = try await builtStore(dir)
        // Texts go in label order: the cow's come after the first batch of four.
        let fake = FakeEmbedder(poison: "cow")
        #expect(throws: EncodeError.self) {
            try KnowledgeEncoder(store: store, encoder: fake, batchSize: 4).encode(labelSet: "farm", runID: run) { _ in }
        }
        let stored = try store.embeddings(encoderID: fake.id, texts: fake.embedded)
        #expect(stored.count == 4, "the finished batch is kept, the poisoned one not")
        #expect(stored.values.allSatisfy { $0.allSatisfy(\.isFinite) })
        #expect(try store.knowledgeMatrix(labelSet: "farm", encoderID: fake.id) == nil)
    }

    @Test func anEmbeddingOfTheWrongWidthIsRefused() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (store, run) = try await builtStore(dir)
        /// Says width 8 but gives rows of 4.
        struct Liar: TextEmbedder {
            let inner = FakeEmbedder()
            var id: String { "liar" }
            var width: Int { 8 }
            var provenance: EmbedderProvenance { inner.provenance }
            func embed(_ texts: [String]) throws -> Tensor { try inner.embed(texts) }
            func tokenCount(_ text: String) -> Int { inner.tokenCount(text) }
        }
        let error = #expect(throws: EncodeError.self) {
            try KnowledgeEncoder(store: store, encoder: Liar()).encode(labelSet: "farm", runID: run) { _ in }
        }
        #expect(error?.message.contains("shape") == true)
        #expect(try store.embeddings(encoderID: "liar", texts: ["a photo of a dog."]).isEmpty)
    }

    @Test func tooLongIsJudgedByTheEmbeddersTokenCount() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (store, run) = try await builtStore(dir)
        // Ten tokens a word: every description of 8 words or more is over 77 tokens, the class prompts are not.
        let fake = FakeEmbedder(tokensPerWord: 10)
        let summary = try KnowledgeEncoder(store: store, encoder: fake).encode(labelSet: "farm", runID: run) { _ in }
        let descriptions = try store.knowledge(labelSet: "farm", runID: run).flatMap(\.descriptions)
        let long = descriptions.filter { fake.tokenCount($0) > DescriptionQuality.tokenLimit }
        #expect(!long.isEmpty)
        #expect(summary.excluded[.tooLong] == long.count)
        #expect(summary.texts == descriptions.count - long.count + 4)
        let kept = try KnowledgeEncoder(store: store, encoder: fake, keepFlagged: true).encode(labelSet: "farm", runID: run) { _ in }
        #expect(kept.texts == descriptions.count + 4 && kept.excludedDescriptions == 0)
        #expect(kept.truncated == long.count, "over 77 tokens is stored as truncated")
    }

    @Test func theStoreRecordsTheEmbeddersProvenance() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (store, run) = try await builtStore(dir)
        let fake = FakeEmbedder()
        _ = try KnowledgeEncoder(store: store, encoder: fake).encode(labelSet: "farm", runID: run) { _ in }
        let row = try #require(try store.queue.read { try Row.fetchOne($0, sql: "SELECT * FROM encoders WHERE id = ?", arguments: [fake.id]) })
        #expect(row["path"] as String? == "/fake/fake-1")
        #expect(row["identity"] as String? == "fake/1")
        #expect(row["dim"] as Int? == 4)
        #expect(row["config"] as String? == #"{"kind":"fake"}"#)
        #expect((row["files"] as String?)?.contains("abc") == true)
    }
}
