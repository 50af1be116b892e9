import CLIP
import Foundation
import GRDB
import KnowledgeCLIP
import Tensor
import Testing
@testable import Knowledge
import TestSupport

/// Stage 4 on a real (tiny, random) Hugging Face CLIP checkpoint from the CLIP parity fixtures.
@Suite("Encoding knowledge", .enabled(if: wordnetAvailable, "needs wordnet-base to build knowledge to encode"))
struct EncodeTests {
    static let checkpoint = Repo.path("Tests/CLIPTests/Fixtures/checkpoints/tiny-gelu-fp16")

    func builtStore(_ dir: URL) async throws -> KnowledgeStore {
        let store = try KnowledgeStore(path: dir.appendingPathComponent("knowledge.db").path)
        let set = try LabelFile.parse(Data("dog\ncat => house cat\ndiningtable => dining table\n".utf8), file: "pets.txt", name: "pets")
        let template = try TemplateLocator(searchDirectories: [Repo.path("templates")]).load("natural")
        let builder = KnowledgeBuilder(store: store, provider: try .wordnet(directory: wordnetDirectory), prompts: PromptBuilder(template: template),
                                       sampling: Sampling(), options: BuildOptions(), toolVersion: "test")
        _ = try await builder.run(set, structured: .auto) { _ in }
        return store
    }

    @Test func knowledgeVectorsFollowTheSpecAndReRunsReuseEmbeddings() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try await builtStore(dir)
        let encoder = try CLIPTextEmbedder(directory: Self.checkpoint)
        #expect(encoder.id == (try CLIP.Checkpoint.identity(directory: URL(fileURLWithPath: Self.checkpoint)).id))
        let run = try #require(try store.latestRun(labelSet: "pets")).id
        let first = try KnowledgeEncoder(store: store, encoder: encoder, batchSize: 5).encode(labelSet: "pets", runID: run) { _ in }
        #expect(first.labels == 3)
        #expect(first.encoded == first.texts && first.reused == 0)
        let again = try KnowledgeEncoder(store: store, encoder: encoder, batchSize: 5).encode(labelSet: "pets", runID: run) { _ in }
        #expect(again.encoded == 0 && again.reused == first.texts)

        // t^ka_c = norm(mean over D_c ∪ {"a photo of a {display}."} of norm(E(s))), computed here independently.
        let (labels, matrix, _) = try #require(try store.knowledgeMatrix(labelSet: "pets", encoderID: encoder.id))
        #expect(labels == ["dog", "cat", "diningtable"])
        let knowledge = try store.knowledge(labelSet: "pets", runID: run)
        for (row, entry) in knowledge.enumerated() {
            let texts = entry.descriptions + ["a photo of a \(entry.displayName)."]
            let e = encoder.encoder.model.encode(texts.map { encoder.encoder.tokenizer.tokenize($0) }).embeddings
            let expected = Ops.l2Normalize(Ops.mean(Ops.l2Normalize(e), axis: 0, keepDims: true))
            let got = Ops.slice(matrix, axis: 0, range: row..<(row + 1))
            let diff = zip(got.scalars, expected.scalars).map { abs($0 - $1) }.max() ?? 1
            #expect(diff < 1e-5, "\(entry.label): max-abs \(diff)")
        }
        // Embeddings are stored as little-endian float32 blobs a person can check with sqlite3.
        let blobBytes = try await store.queue.read { try Int.fetchOne($0, sql: "SELECT length(vector) FROM embeddings LIMIT 1") }
        #expect(blobBytes == 16 * 4)
    }

    @Test func safetensorsExportLoadsBack() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try await builtStore(dir)
        let encoder = try CLIPTextEmbedder(directory: Self.checkpoint)
        let run = try #require(try store.latestRun(labelSet: "pets")).id
        _ = try KnowledgeEncoder(store: store, encoder: encoder).encode(labelSet: "pets", runID: run) { _ in }
        let data = try KnowledgeExporter.safetensors(store: store, labelSet: "pets", encoderID: encoder.id)
        let path = dir.appendingPathComponent("pets.safetensors").path
        try data.write(to: URL(fileURLWithPath: path))
        let file = try SafeTensors(path: path)
        let n = try store.knowledge(labelSet: "pets", runID: run).reduce(0) { $0 + $1.descriptions.count }
        #expect(try file.tensor("knowledge").shape == [3, 16])
        #expect(try file.tensor("descriptions").shape == [n, 16])
        #expect(try file.integers("description_label").count == n)
        #expect(file.metadata["labels"] == #"["dog","cat","diningtable"]"#)
        #expect(file.metadata["encoder_sha256"] == encoder.id)
    }

    @Test func flaggedDescriptionsAreLeftOutUnlessKept() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try await builtStore(dir)
        let encoder = try CLIPTextEmbedder(directory: Self.checkpoint)
        let run = try #require(try store.latestRun(labelSet: "pets")).id
        // Flag the dog's first description as copied, and its second as too long by a wrong estimate.
        let dog = try #require(try store.knowledge(labelSet: "pets", runID: run).first { $0.label == "dog" })
        #expect(dog.descriptions.count >= 3)
        try await store.queue.write { db in
            try db.execute(sql: "UPDATE descriptions SET flags = 'copied' WHERE id = ?", arguments: [dog.ids[0]])
            try db.execute(sql: "UPDATE descriptions SET flags = 'too-long' WHERE id = ?", arguments: [dog.ids[1]])
        }
        func vector(keepFlagged: Bool) throws -> (EncodeSummary, [Float]) {
            let summary = try KnowledgeEncoder(store: store, encoder: encoder, keepFlagged: keepFlagged).encode(labelSet: "pets", runID: run) { _ in }
            let (_, matrix, _) = try #require(try store.knowledgeMatrix(labelSet: "pets", encoderID: encoder.id))
            return (summary, Array(Ops.slice(matrix, axis: 0, range: 0..<1).scalars))
        }
        func expected(_ texts: [String]) -> [Float] {
            let e = encoder.encoder.model.encode(texts.map { encoder.encoder.tokenizer.tokenize($0) }).embeddings
            return Ops.l2Normalize(Ops.mean(Ops.l2Normalize(e), axis: 0, keepDims: true)).scalars
        }
        // The tokenizer counts the second one short, so only the copied one is left out.
        let (summary, left) = try vector(keepFlagged: false)
        #expect(summary.excludedDescriptions == 1 && summary.excluded == [.copied: 1])
        let used = Array(dog.descriptions.dropFirst()) + ["a photo of a dog."]
        #expect(zip(left, expected(used)).map { abs($0 - $1) }.max()! < 1e-5)
        let recounted = try store.queue.read { try Row.fetchOne($0, sql: "SELECT flags, quality FROM descriptions WHERE id = ?", arguments: [dog.ids[1]]) }
        #expect(recounted?["flags"] as String? == "")
        #expect((recounted?["quality"] as String?)?.contains("clip-tokenizer") == true)
        // --keep-flagged uses every description.
        let (kept, all) = try vector(keepFlagged: true)
        #expect(kept.excludedDescriptions == 0)
        #expect(zip(all, expected(dog.descriptions + ["a photo of a dog."])).map { abs($0 - $1) }.max()! < 1e-5)
    }

    @Test func overlongDescriptionsAreReported() throws {
        let tokenizer = try CLIP.Tokenizer(directory: URL(fileURLWithPath: Self.checkpoint))
        let long = String(repeating: "a dog with a red collar ", count: 20)
        let findings = KnowledgeValidator.overlong([LabelKnowledge(label: "dog", displayName: "dog", synonyms: [], runID: 1, state: "complete", descriptions: ["A dog.", long])]) {
            tokenizer.tokenCount($0)
        }
        #expect(findings.count == 1)
        #expect(findings.first?.detail.hasPrefix("description 2 is ") == true)
    }
}

extension Tensor {
    var scalars: [Float] { withUnsafeBufferPointer { Array($0) } }
}

@Suite("Encoding knowledge: interruption and checkpoints", .enabled(if: wordnetAvailable, "needs wordnet-base to build knowledge to encode"))
struct EncodeInterruptionTests {
    @Test func cancellingKeepsFinishedBatchesAndTheNextRunFinishes() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try await EncodeTests().builtStore(dir)
        let encoder = try CLIPTextEmbedder(directory: EncodeTests.checkpoint)
        let run = try #require(try store.latestRun(labelSet: "pets")).id
        let worker = KnowledgeEncoder(store: store, encoder: encoder, batchSize: 4)
        // Cancel the task as soon as the first batch is saved, as Ctrl-C does.
        let task = Task.detached {
            try worker.encode(labelSet: "pets", runID: run) { event in
                if case .batch = event { withUnsafeCurrentTask { $0?.cancel() } }
            }
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        let saved = try await store.queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM embeddings") }
        #expect(saved == 4, "exactly the finished batch is kept")
        #expect(try store.knowledgeMatrix(labelSet: "pets", encoderID: encoder.id) == nil, "no knowledge vectors from half the texts")
        let resumed = try worker.encode(labelSet: "pets", runID: run) { _ in }
        #expect(resumed.reused == 4)
        #expect(resumed.encoded == resumed.texts - 4)
        #expect(try store.knowledgeMatrix(labelSet: "pets", encoderID: encoder.id)?.labels.count == 3)
    }

    /// A sharded checkpoint (model.safetensors.index.json) loads and computes the same as the single file.
    @Test func shardedCheckpointsLoad() throws {
        let source = EncodeTests.checkpoint
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for file in ["config.json", "vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: dir.appendingPathComponent(file).path)
        }
        let whole = try SafeTensors(path: source + "/model.safetensors")
        var first = SafeTensorsWriter(), second = SafeTensorsWriter()
        var map: [String: JSONValue] = [:]
        for (i, name) in whole.names.enumerated() {
            let shard = i % 2 == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors"
            if i % 2 == 0 { first.add(name, try whole.tensor(name)) } else { second.add(name, try whole.tensor(name)) }
            map[name] = .string(shard)
        }
        try first.write(to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        try second.write(to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        try JSONValue.object(["metadata": .object([:]), "weight_map": .object(map)]).data()
            .write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        let sharded = try CLIPTextEmbedder(directory: dir.path)
        let single = try CLIPTextEmbedder(directory: source)
        let ids = [single.encoder.tokenizer.tokenize("a photo of a dog."), single.encoder.tokenizer.tokenize("A traffic light is tall.")]
        #expect(sharded.encoder.model.encode(ids).embeddings == single.encoder.model.encode(ids).embeddings)
        #expect(sharded.id != single.id, "the encoder id hashes the weight files as they are")
    }
}

extension EncodeTests {
    /// issue 10 C5: `--force` encodes everything again; an encoder keyed the old way (weights' SHA-256 alone) is a
    /// different encoder, so its stale vectors are never reused.
    @Test func forceReEncodesAndOldWeightsOnlyIdsAreNotReused() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try await builtStore(dir)
        let encoder = try CLIPTextEmbedder(directory: Self.checkpoint)
        let run = try #require(try store.latestRun(labelSet: "pets")).id
        // A store made by the old version: the same texts under the weights-only id, with wrong vectors.
        var old = encoder
        old.id = try SHA256.hex(fileAt: Self.checkpoint + "/model.safetensors")
        _ = try KnowledgeEncoder(store: store, encoder: old).encode(labelSet: "pets", runID: run) { _ in }
        try await store.queue.write { try $0.execute(sql: "UPDATE embeddings SET vector = zeroblob(length(vector))") }
        let first = try KnowledgeEncoder(store: store, encoder: encoder).encode(labelSet: "pets", runID: run) { _ in }
        #expect(first.reused == 0 && first.encoded == first.texts, "vectors of the weights-only id were reused")
        let forced = try KnowledgeEncoder(store: store, encoder: encoder, force: true).encode(labelSet: "pets", runID: run) { _ in }
        #expect(forced.encoded == forced.texts && forced.reused == 0)
        let identity = try await store.queue.read { try String.fetchOne($0, sql: "SELECT identity FROM encoders WHERE id = ?", arguments: [encoder.id]) }
        #expect(identity == CLIP.Checkpoint.Identity.scheme)
    }

    /// issue 10 C7: a NaN embedding is never stored; a NaN vector already in a store is found by the check.
    @Test func nonFiniteVectorsAreRefusedAndFound() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try await builtStore(dir)
        let run = try #require(try store.latestRun(labelSet: "pets")).id
        let encoder = try CLIPTextEmbedder(directory: Self.checkpoint)
        _ = try KnowledgeEncoder(store: store, encoder: encoder).encode(labelSet: "pets", runID: run) { _ in }
        #expect(try store.nonFiniteVectors(labelSet: "pets", runID: run).isEmpty)
        // As an old version stored it: t^ka of 'cat' all NaN.
        try await store.queue.write { db in
            try db.execute(sql: """
                UPDATE knowledge_vectors SET vector = (SELECT vector FROM knowledge_vectors LIMIT 1)
                WHERE label_id = (SELECT id FROM labels WHERE raw_name = 'cat')
                """)
            let nan = Data(repeating: 0xFF, count: 64)
            try db.execute(sql: "UPDATE knowledge_vectors SET vector = ? WHERE label_id = (SELECT id FROM labels WHERE raw_name = 'cat')", arguments: [nan])
        }
        let found = try store.nonFiniteVectors(labelSet: "pets", runID: run)
        #expect(found.map { $0.label } == ["cat"] && found.first?.what == "knowledge vector")
        // An embedding that comes out NaN stops the run before anything of its batch is stored.
        #expect(KnowledgeEncoder.firstNonFiniteRow(Tensor([1, 2, 3, .nan], shape: [2, 2])) == 1)
        #expect(KnowledgeEncoder.firstNonFiniteRow(Tensor([1, 2, 3, 4], shape: [2, 2])) == nil)
    }
}
