import Foundation
import Testing
@testable import SSPA

/// The pure start of `sspa train`: defaults and options for a fresh run, the checkpoint's settings on resume, and
/// conflicts named by option.
@Suite("Training plan")
struct TrainingPlanTests {
    static func manifest(_ config: SSPA.Config = SSPA.Config(), _ options: SSPA.TrainingOptions = SSPA.TrainingOptions()) -> SSPA.Checkpoint.Manifest {
        SSPA.Checkpoint.Manifest(model: config, training: options, labelSet: "voc", labels: ["dog"], displayNames: ["dog"],
                                 knowledgeEncoderSHA256: "e", knowledgeRunID: 1, clipDirectory: "/clip", width: 8, contextWidth: 8)
    }

    @Test func aFreshRunTakesTheDefaultsAndTheOptionsGiven() throws {
        var noQSM = SSPA.Config()
        noQSM.noQSM = true
        let plan = try SSPA.TrainingPlan(.init(labelSet: "voc", config: noQSM, epochs: 3, learningRate: 0.01, seed: 9), resuming: nil)
        var expected = SSPA.TrainingOptions()
        expected.epochs = 3
        expected.learningRate = 0.01
        expected.seed = 9
        #expect(plan.options == expected && plan.config == noQSM)
        #expect(try SSPA.TrainingPlan(.init(labelSet: "voc"), resuming: nil).config == SSPA.Config())
    }

    @Test func aResumedRunKeepsTheCheckpointsSettingsAndNamesEveryConflict() throws {
        var saved = SSPA.TrainingOptions()
        saved.epochs = 4
        saved.shuffleBlock = 0
        var sharp = SSPA.Config()
        sharp.sharp = true
        let resumed = try SSPA.TrainingPlan(.init(labelSet: "voc", epochs: 4), resuming: Self.manifest(sharp, saved))
        #expect(resumed.options == saved && resumed.config == sharp, "options not given come from the checkpoint")
        let conflict = #expect(throws: SSPA.TrainingPlan.Conflict.self) {
            try SSPA.TrainingPlan(.init(labelSet: "coco", epochs: 5, batchSize: 32, shuffleBlock: 64), resuming: Self.manifest(sharp, saved))
        }
        #expect(conflict?.message.contains("--epochs 5 (saved 4), --shuffle-block 64 (saved 0), --label-set coco (saved voc)") == true, "\(String(describing: conflict))")
        #expect(conflict?.message.contains("--batch") == false, "--batch 32 is what was saved")
        let ablation = #expect(throws: SSPA.TrainingPlan.Conflict.self) {
            try SSPA.TrainingPlan(.init(labelSet: "voc", config: SSPA.Config()), resuming: Self.manifest(sharp, saved))
        }
        #expect(ablation?.message.contains("trained as sharp, --ablate asks for full model") == true)
    }

    @Test func finishedRunsSayWhy() throws {
        var options = SSPA.TrainingOptions()
        options.epochs = 2
        let plan = try SSPA.TrainingPlan(.init(labelSet: "voc"), resuming: Self.manifest(SSPA.Config(), options))
        var state = SSPA.TrainingState()
        state.epoch = 1
        state.step = 10
        #expect(plan.finished(at: state, maxSteps: nil) == nil)
        #expect(plan.finished(at: state, maxSteps: 10) == .maxSteps)
        state.epoch = 2
        #expect(plan.finished(at: state, maxSteps: 100) == .allEpochs)
    }
}
