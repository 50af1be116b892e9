import CLIP
import Foundation
import Tensor
import TestSupport
import Testing
@testable import SSPA

/// Issue 11 §3: `SSPA.TrainingRun`, the body of `sspa train` as a library type. A run checkpoints after every epoch
/// and when it stops early, an interrupted run resumes to the weights of an uninterrupted one, `maxSteps` stops and
/// saves, a checkpoint that cannot be written stops the run, a diverging run keeps its last finite checkpoint, and
/// inputs that do not belong together are refused before any training. Real files throughout: the tiny CLIP
/// checkpoint, features written as safetensors and read back streamed, checkpoints saved and loaded.
@Suite("Training run", .enabled(if: SyntheticData.available, "needs the tiny CLIP fixture"))
final class TrainingRunTests {
    let dir: URL
    let encoder: CLIP.TextEncoder
    let directions: Tensor

    init() throws {
        dir = try temporaryDirectory()
        encoder = try CLIP.TextEncoder(directory: URL(fileURLWithPath: SyntheticData.checkpoint))
        directions = try SyntheticData.directions()
    }
    deinit { try? FileManager.default.removeItem(at: dir) }

    /// 20 generated images (5 regions, d 16, 6 labels) from the tiny CLIP's encoder, written as `name`.
    func features(_ name: String = "train.safetensors", encoderID: String? = nil) throws -> SSPA.FeaturesDataset {
        var generator = SyntheticData()
        generator.regions = 5
        let data = try generator.make(count: 20, directions: directions, seed: 4, encoder: encoderID ?? encoder.id)
        let url = dir.appendingPathComponent(name)
        try data.write(to: url, dtype: .f16)
        return try SSPA.FeaturesDataset(path: url.path)
    }

    var knowledge: SSPA.TrainingRun.Knowledge {
        .init(labelSet: "synthetic", labels: SyntheticData.labelNames, displayNames: SyntheticData.labelNames,
              matrix: directions, runID: 1, source: "test.db (label set synthetic)")
    }

    /// 3 epochs of 3 steps (batch 8 of 20 images).
    func plan(resuming saved: SSPA.Checkpoint.Manifest? = nil) throws -> SSPA.TrainingPlan {
        try SSPA.TrainingPlan(.init(labelSet: "synthetic", epochs: 3, batchSize: 8, learningRate: 0.01, seed: 3), resuming: saved)
    }

    func folder(_ name: String) -> URL { dir.appendingPathComponent(name) }

    func run(_ folder: URL, resume: Bool = false, plan: SSPA.TrainingPlan? = nil, knowledge: SSPA.TrainingRun.Knowledge? = nil,
             train: SSPA.FeaturesDataset? = nil, maxSteps: Int? = nil,
             io: SSPA.Checkpoint.FileIO = SSPA.Checkpoint.testIO) throws -> SSPA.TrainingRun {
        let checkpoint = resume ? try SSPA.Checkpoint.load(from: folder) : nil
        return try SSPA.TrainingRun(folder: folder, resuming: checkpoint, plan: plan ?? self.plan(resuming: checkpoint?.manifest),
                                    encoder: encoder, clipDirectory: URL(fileURLWithPath: SyntheticData.checkpoint),
                                    knowledge: knowledge ?? self.knowledge, train: train ?? features(), validation: nil,
                                    maxSteps: maxSteps, io: io)
    }

    /// The training state of the checkpoint in `folder`.
    func state(_ folder: URL) throws -> SSPA.TrainingState { try #require(try SSPA.Checkpoint.load(from: folder).state) }

    static func bits(_ p: SSPA.Parameters) -> [String: [UInt32]] {
        Dictionary(uniqueKeysWithValues: p.names.map { ($0, p[$0]!.scalars.map(\.bitPattern)) })
    }

    @Test func aRunCheckpointsEveryEpochAndASecondRunHasNothingToDo() throws {
        let out = folder("run")
        let training = try run(out)
        #expect(training.nothingLeft == nil && training.stepsPerEpoch == 3 && training.totalSteps == 9 && !training.resumed)
        var epochsSaved: [Int] = []
        let outcome = try training.run(events: { event in
            // An epoch's checkpoint is written after its event: the folder holds the previous epoch's.
            if case .epoch(let record) = event {
                let saved = (try? SSPA.Checkpoint.load(from: out))?.state?.epoch ?? 0
                epochsSaved.append(saved)
                #expect(saved == record.epoch - 1)
            }
        })
        #expect(outcome == .finished && training.savedEpoch == 3 && epochsSaved == [0, 1, 2])
        let saved = try SSPA.Checkpoint.load(from: out)
        #expect(try state(out).epoch == 3 && state(out).step == 9)
        #expect(Self.bits(saved.parameters) == Self.bits(training.trainer.parameters))
        #expect(saved.manifest.labels == SyntheticData.labelNames && saved.manifest.knowledgeEncoderSHA256 == encoder.id)

        let pointer = out.appendingPathComponent("checkpoint.json")
        let before = try Data(contentsOf: pointer)
        let again = try run(out, resume: true)
        #expect(again.resumed && again.nothingLeft == .allEpochs)
        #expect(try again.run() == .nothingToDo(.allEpochs))
        #expect(try Data(contentsOf: pointer) == before, "a run with nothing to do wrote a checkpoint")
    }

    @Test func anInterruptedRunResumesToTheWeightsOfAnUninterruptedOne() throws {
        let whole = try run(folder("whole"))
        #expect(try whole.run() == .finished)

        let out = folder("interrupted")
        let first = try run(out)
        var steps = 0
        let outcome = try first.run(shouldStop: { steps == 4 }) { event in
            if case .step = event { steps += 1 }
        }
        #expect(outcome == .stopped(.interrupted))
        let keptState = try state(out)
        #expect(keptState.step == 4 && keptState.epoch == 1 && keptState.batchInEpoch == 1, "the stop was not saved where it happened")

        let second = try run(out, resume: true)
        #expect(second.resumed && second.nothingLeft == nil)
        #expect(try second.run() == .finished)
        #expect(Self.bits(second.trainer.parameters) == Self.bits(whole.trainer.parameters))
        #expect(Self.bits(try SSPA.Checkpoint.load(from: out).parameters) == Self.bits(whole.trainer.parameters))
        #expect(Self.bits(whole.trainer.parameters) != Self.bits(try run(folder("fresh")).trainer.parameters), "training changed nothing")
    }

    @Test func maxStepsStopsAndSavesAndAResumeUnderTheSameLimitHasNothingToDo() throws {
        let out = folder("limited")
        #expect(try run(out, maxSteps: 5).run() == .stopped(.maxSteps))
        #expect(try state(out).step == 5)
        let same = try run(out, resume: true, maxSteps: 5)
        #expect(same.nothingLeft == .maxSteps)
        #expect(try same.run() == .nothingToDo(.maxSteps))
        // A Ctrl-C on the last allowed step is still an interruption.
        let both = try run(folder("both"), maxSteps: 2)
        #expect(try both.run(shouldStop: { both.trainer.state.step == 2 }) == .stopped(.interrupted))
        // Without the limit the run goes on to the end of the same schedule.
        #expect(try run(out, resume: true).run() == .finished)
        #expect(try state(out).step == 9)
    }

    struct DiskFull: Error, CustomStringConvertible { var description: String { "no space left on device" } }

    @Test func aCheckpointThatCannotBeWrittenStopsTheRunAtOnce() throws {
        let failing = SSPA.Checkpoint.FileIO(write: { _, _ in throw DiskFull() })
        let afterEpoch = try run(folder("full"), io: failing)
        #expect { try afterEpoch.run() } throws: { error in
            guard let error = error as? SSPA.TrainingRun.SaveFailed else { return false }
            return error.stop == nil && "\(error)".contains("no space left on device")
        }
        #expect(afterEpoch.trainer.state.epoch == 1 && afterEpoch.trainer.state.step == 3, "the run went on after a failed save")
        #expect(!FileManager.default.fileExists(atPath: folder("full").appendingPathComponent("checkpoint.json").path))

        let onStop = try run(folder("full-stop"), io: failing)
        #expect { try onStop.run(shouldStop: { true }) } throws: { error in
            (error as? SSPA.TrainingRun.SaveFailed)?.stop == .interrupted
        }
    }

    @Test func aDivergingRunKeepsItsLastFiniteCheckpoint() throws {
        let out = folder("diverging")
        #expect(try run(out, maxSteps: 3).run() == .stopped(.maxSteps))
        let kept = try SSPA.Checkpoint.load(from: out)
        #expect(try state(out).epoch == 1)
        // The same checkpoint continued at a learning rate that cannot work.
        var wild = try plan(resuming: kept.manifest)
        wild.options.learningRate = 1e30
        #expect { try self.run(out, resume: true, plan: wild).run() } throws: { error in
            guard let error = error as? SSPA.TrainingRun.Diverged else { return false }
            return error.keptEpoch == 1 && error.message.contains("training diverged") && "\(error)".contains("(epoch 1) is kept")
        }
        let after = try SSPA.Checkpoint.load(from: out)
        #expect(after.state == kept.state && Self.bits(after.parameters) == Self.bits(kept.parameters))

        var fresh = try plan()
        fresh.options.learningRate = 1e30
        #expect { try self.run(self.folder("never"), plan: fresh).run() } throws: { error in
            (error as? SSPA.TrainingRun.Diverged).map { $0.keptEpoch == nil && "\($0)".contains("no checkpoint was saved") } ?? false
        }
    }

    @Test func inputsThatDoNotBelongTogetherAreRefusedBeforeTraining() throws {
        // A checkpoint trained on other labels.
        let out = folder("other-labels")
        #expect(try run(out, maxSteps: 1).run() == .stopped(.maxSteps))
        var renamed = knowledge
        renamed.labels[0] = "puppy"
        #expect { try self.run(out, resume: true, knowledge: renamed) } throws: { error in
            (error as? SSPA.CheckpointError).map { $0.message.contains("a checkpoint from another config") } ?? false
        }
        // Knowledge with a NaN, named by label and source.
        var broken = knowledge
        var scalars = broken.matrix.scalars
        scalars[16 * 1 + 3] = .nan
        broken.matrix = Tensor(scalars, shape: broken.matrix.shape)
        #expect { try self.run(self.folder("nan"), knowledge: broken) } throws: { error in
            (error as? SSPA.KnowledgeError).map {
                $0.message.contains("test.db (label set synthetic)") && $0.message.contains("'cat' holds NaN")
            } ?? false
        }
        // Features of another encoder, named by file.
        let foreign = try features("foreign.safetensors", encoderID: String(repeating: "ab", count: 32))
        #expect { try self.run(self.folder("foreign"), train: foreign) } throws: { error in
            (error as? SSPA.FeaturesError).map { "\($0)".contains("foreign.safetensors") && "\($0)".contains("CLIP encoder abab") } ?? false
        }
        // Knowledge of another width than the features.
        var narrow = knowledge
        narrow.matrix = Tensor(Array(directions.scalars.prefix(6 * 8)), shape: [6, 8])
        #expect { try self.run(self.folder("narrow"), knowledge: narrow) } throws: { error in
            (error as? SSPA.FeaturesError).map { "\($0)".contains("width d = 16") && "\($0)".contains("d = 8") } ?? false
        }
        for name in ["nan", "foreign", "narrow"] {
            #expect(!FileManager.default.fileExists(atPath: folder(name).path), "a refused run wrote \(name)")
        }
    }
}
