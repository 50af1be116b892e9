import Foundation
import Testing
import Tensor
@testable import CLIP

/// The Swift text tower against `transformers` CLIPModel outputs saved by scripts/make_clip_fixtures.py, on tiny random
/// checkpoints with the real architecture and vocabulary: one fp32 with quick_gelu, one fp16 on disk with gelu.
///
/// Tolerance: max-abs 1e-4 on pooled and projected outputs and hidden states (both sides compute in float32; the
/// observed error is about 1e-6, and the maximum relative error is printed).
@Suite("CLIP text model parity")
struct TextModelParityTests {
    static let checkpoints = ["tiny-quickgelu", "tiny-gelu-fp16"]

    func fixtures(_ name: String) throws -> (TextModel: CLIP.TextModel, outputs: SafeTensors, ids: [[Int32]]) {
        let root = TokenizerFixtures.directory
        let model = try CLIP.TextModel(directory: root.appendingPathComponent("checkpoints/\(name)"))
        let outputs = try SafeTensors(path: root.appendingPathComponent("outputs/\(name)/text_outputs.safetensors").path)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("outputs/\(name)/text_outputs.json"))) as? [String: Any]
        let unpadded = try #require(json?["ids_unpadded"] as? [[Int]])
        // Truncate as clip.tokenize does (the fixture's batch was truncated to 77 the same way).
        let ids = unpadded.map { row -> [Int32] in
            let r = row.map(Int32.init)
            return r.count <= 77 ? r : Array(r.prefix(76)) + [49407]
        }
        return (model, outputs, ids)
    }

    static func maxAbs(_ a: Tensor, _ b: Tensor) -> (abs: Float, rel: Float) {
        a.withUnsafeBufferPointer { x in
            b.withUnsafeBufferPointer { y in
                var worst: Float = 0, scale: Float = 0
                for i in 0..<x.count {
                    worst = max(worst, abs(x[i] - y[i]))
                    scale = max(scale, abs(y[i]))
                }
                return (worst, worst / max(scale, 1e-12))
            }
        }
    }

    @Test(arguments: checkpoints)
    func pooledAndProjectedOutputsMatchTransformers(name: String) throws {
        let (model, outputs, ids) = try fixtures(name)
        // The batch has mixed lengths (2 to 77 tokens); each bucket is padded to its own longest only.
        let out = model.encode(ids, batchSize: 3)
        let pooled = Self.maxAbs(out.pooled, try outputs.tensor("pooler_output"))
        let embeds = Self.maxAbs(out.embeddings, try outputs.tensor("text_embeds"))
        print("\(name): pooled max-abs \(pooled.abs) (relative \(pooled.rel)); text_embeds max-abs \(embeds.abs) (relative \(embeds.rel))")
        #expect(pooled.abs < 1e-4)
        #expect(embeds.abs < 1e-4)
    }

    @Test(arguments: checkpoints)
    func hiddenStatesMatchAtEveryRealPosition(name: String) throws {
        let (model, outputs, ids) = try fixtures(name)
        let expected = try outputs.tensor("last_hidden_state") // [B, 77, D], padded by transformers
        let d = model.config.hiddenSize
        for (row, sequence) in ids.enumerated() {
            let hidden = model.hiddenStates(embeddings: model.embed([sequence]))
            let want = Ops.slice(Ops.slice(expected, axis: 0, range: row..<(row + 1)), axis: 1, range: 0..<sequence.count)
            let diff = Self.maxAbs(hidden.reshaped([1, sequence.count, d]), want)
            #expect(diff.abs < 1e-4, "row \(row): max-abs \(diff.abs)")
        }
    }

    @Test func feedingLookedUpEmbeddingsEqualsFeedingIDs() throws {
        let (model, _, ids) = try fixtures("tiny-quickgelu")
        let batch = Array(ids.prefix(4))
        let fromIDs = model.encode(batch)
        let positions = batch.map { $0.firstIndex(of: 49407)! }
        let fromEmbeddings = model.forward(embeddings: model.embed(batch), poolAt: positions)
        #expect(fromIDs.embeddings == fromEmbeddings.embeddings)
    }

    @Test func paddingNeverChangesAResult() throws {
        let (model, _, ids) = try fixtures("tiny-quickgelu")
        let alone = model.encode([ids[0]]).embeddings
        let padded = model.encode([ids[0], ids[5]]).embeddings // ids[5] is the longest, so ids[0] is padded to 77
        let diff = Self.maxAbs(alone, Ops.slice(padded, axis: 0, range: 0..<1))
        #expect(diff.abs < 1e-5)
    }

    @Test func aMissingOrMisshapenTensorIsNamed() throws {
        let root = TokenizerFixtures.directory.appendingPathComponent("checkpoints/tiny-quickgelu")
        var config = try CLIP.loadTextConfig(directory: root)
        config.intermediateSize += 1
        do {
            _ = try CLIP.TextModel(config: config, checkpoint: CLIP.Checkpoint(directory: root))
            Issue.record("a misshapen checkpoint loaded")
        } catch let error as CheckpointError {
            #expect(error.message.contains("text_model.encoder.layers.0.mlp.fc1.weight"))
            #expect(error.message.contains("[32, 16]") && error.message.contains("[33, 16]"))
        }
        config.numHiddenLayers += 1
        config.intermediateSize -= 1
        do {
            _ = try CLIP.TextModel(config: config, checkpoint: CLIP.Checkpoint(directory: root))
            Issue.record("a checkpoint with a missing layer loaded")
        } catch let error as CheckpointError {
            #expect(error.message.contains("no tensor 'text_model.encoder.layers.2.layer_norm1.weight'"))
        }
    }

    @Test func aTruncatedCheckpointIsAnErrorNotACrash() throws {
        let source = TokenizerFixtures.directory.appendingPathComponent("checkpoints/tiny-quickgelu")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clip-trunc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for file in ["config.json", "vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: dir.appendingPathComponent(file))
        }
        let weights = try Data(contentsOf: source.appendingPathComponent("model.safetensors"))
        try weights.prefix(weights.count / 2).write(to: dir.appendingPathComponent("model.safetensors"))
        do {
            _ = try CLIP.TextModel(directory: dir)
            Issue.record("a truncated checkpoint loaded")
        } catch let error as CheckpointError {
            #expect(error.message.contains("model.safetensors"))
        }
    }
}
