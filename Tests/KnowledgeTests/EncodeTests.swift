import CLIP
import Foundation
import GRDB
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
        let encoder = try TextEncoder.load(directory: Self.checkpoint)
        #expect(encoder.id == (try SHA256.hex(fileAt: Self.checkpoint + "/model.safetensors")))
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
            let e = encoder.model.encode(texts.map { encoder.tokenizer.tokenize($0) }).embeddings
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
        let encoder = try TextEncoder.load(directory: Self.checkpoint)
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
