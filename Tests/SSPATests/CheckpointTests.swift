import Foundation
import Knowledge
import Tensor
import TestSupport
import Testing
@testable import SSPA

/// Issue 10 B3 and C7 in the library: a checkpoint is saved as one unit and verified when read; non-finite values
/// never leave (save) or enter (load), and a diverging run stops naming the tensor.
@Suite("SSPA checkpoints as a unit", .enabled(if: SyntheticData.available, "needs the tiny CLIP fixture"))
struct CheckpointTests {
    static func trained(steps: Int = 3) throws -> (SSPA.Trainer, SSPA.Checkpoint.Contents) {
        let (trainer, data, _) = try TrainerTests.setup(epochs: 2)
        var done = 0
        try trainer.run(train: data, shouldStop: { done >= steps }, events: { if case .step = $0 { done += 1 } })
        let manifest = SSPA.Checkpoint.Manifest(model: trainer.model.config, training: trainer.options, labelSet: "synthetic",
                                                labels: data.labelNames, displayNames: data.labelNames,
                                                knowledgeEncoderSHA256: "tiny", knowledgeRunID: 1, clipDirectory: SyntheticData.checkpoint,
                                                width: 16, contextWidth: 16)
        return (trainer, .init(manifest: manifest, parameters: trainer.parameters, knowledge: trainer.model.knowledge,
                               optimizer: trainer.optimizer, state: trainer.state))
    }

    func entries(_ dir: URL) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() }

    @Test func aSaveReplacesTheStepFolderWholeAndCleansTemporaries() throws {
        let (_, contents) = try Self.trained()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try SSPA.Checkpoint.save(contents, to: dir)
        // What an interrupted save leaves: a staging folder and a temporary file.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent(".step-000009-dead.tmp"), withIntermediateDirectories: true)
        try Data("half".utf8).write(to: dir.appendingPathComponent(".checkpoint.json.x1y2z3.tmp"))
        var later = contents
        later.state?.step += 1
        later.optimizer?.step += 1
        try SSPA.Checkpoint.save(later, to: dir)
        let names = try entries(dir)
        #expect(names.count == 3 && names.contains("config.json") && names.contains("checkpoint.json"), "\(names)")
        #expect(names.filter { $0.hasPrefix("step-000004-") }.count == 1, "only the new step's folder is left: \(names)")
        #expect(try SSPA.Checkpoint.load(from: dir).state?.step == 4)
    }

    @Test func aDamagedOrInconsistentCheckpointIsRefusedOnResumeButNotWhereUnneeded() throws {
        let (_, contents) = try Self.trained()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try SSPA.Checkpoint.save(contents, to: dir)
        let step = try SSPA.Checkpoint.currentFolder(dir.path)
        try Data("not an optimizer".utf8).write(to: URL(fileURLWithPath: step + "/optimizer.safetensors"))
        #expect { try SSPA.Checkpoint.load(from: dir) } throws: {
            "\($0)".contains("optimizer.safetensors does not match checkpoint.json") && "\($0)".contains("damaged")
        }
        // Evaluation and prediction never read the optimizer state.
        #expect(try SSPA.Checkpoint.load(from: dir, forTraining: false).state == nil)

        // The old flat layout (no checkpoint.json) with an optimizer and a training state at different steps.
        let flat = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: flat) }
        for name in ["config.json", "model.safetensors", "knowledge.safetensors", "training-state.json"] {
            let source = name == "config.json" ? dir.path + "/" + name : step + "/" + name
            try FileManager.default.copyItem(atPath: source, toPath: flat.path + "/" + name)
        }
        var optimizer = contents.optimizer!
        optimizer.step += 2
        try optimizer.save(to: flat.appendingPathComponent("optimizer.safetensors"))
        #expect { try SSPA.Checkpoint.load(from: flat) } throws: { "\($0)".contains("optimizer.safetensors is at step 5 but training-state.json at step 3") }
    }

    @Test func nonFiniteValuesNeverLeaveNorEnter() throws {
        let (_, contents) = try Self.trained()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try SSPA.Checkpoint.save(contents, to: dir)
        let before = try entries(dir)
        var bad = contents
        bad.parameters.tensors["region.bias"] = Tensor([.nan], shape: [1])
        #expect { try SSPA.Checkpoint.save(bad, to: dir) } throws: {
            "\($0)".contains("parameter region.bias holds NaN") && "\($0)".contains("last finite checkpoint is kept")
        }
        #expect(try entries(dir) == before, "the refused save changed nothing")

        // A checkpoint file with an infinity (written past the checks, hashes updated) is refused at load, by name.
        let step = try SSPA.Checkpoint.currentFolder(dir.path)
        var knowledge = contents.knowledge
        knowledge.withUnsafeMutableBufferPointer { $0[17] = .infinity }
        try SafeTensors.write(["knowledge": knowledge], to: URL(fileURLWithPath: step + "/knowledge.safetensors"))
        let pointerURL = dir.appendingPathComponent("checkpoint.json")
        var pointer = try JSONDecoder().decode(SSPA.Checkpoint.Pointer.self, from: Data(contentsOf: pointerURL))
        pointer.sha256["knowledge.safetensors"] = SHA256.hex(try Data(contentsOf: URL(fileURLWithPath: step + "/knowledge.safetensors")))
        try JSONEncoder().encode(pointer).write(to: pointerURL)
        #expect { try SSPA.Checkpoint.load(from: dir) } throws: {
            "\($0)".contains("the knowledge vector of label '\(contents.manifest.labels[1])' holds an infinite value")
        }
    }

    @Test func aDivergingRunStopsNamingTheTensor() throws {
        let (trainer, data, _) = try TrainerTests.setup(epochs: 2)
        var options = trainer.options
        options.learningRate = 1e30
        let diverging = try SSPA.Trainer(model: trainer.model, options: options, parameters: trainer.parameters)
        #expect { try diverging.run(train: data) } throws: { error in
            "\(error)".contains("training diverged at step") || "\(error)".contains("training diverged: the loss became")
        }
    }
}
