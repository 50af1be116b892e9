import CLIP
import Foundation
import Tensor
import TestSupport
import Testing
@testable import SSPA

/// Issue 4, section 5: a learning test that can fail.
///
/// Data: `SyntheticData` (6 labels of the tiny CLIP, d = 16, M = 12 regions; each positive label spreads a weak signal
/// over 6 regions, and 2 regions per image hold a strong spike of a label the image does NOT have), 192 training and
/// 96 validation images. Each variant trains 8 epochs of batch 32 (48 steps) with the spec's optimiser, schedule and
/// clipping, at learning rate 0.005 instead of 5e-4 (5e-4 needs thousands of steps; the suite has under 60 s).
///
/// Asserts:
/// - the full model's validation mAP ends at least 0.10 above its step-0 value;
/// - it beats `aggregator = max` and `sharp` (fixed τ_a = 0.05), trained the same way, by at least 0.04 mAP each.
///
/// Measured after the spec revision of issue 11 (unit features, ASL summed per image; debug build, 2 cores; data seed
/// pairs (1, 2), (3, 4), (5, 6), (7, 8) for training and validation): full 0.70–0.78 from 0.50–0.56 at step 0;
/// max 0.55–0.56; sharp 0.52–0.55; the smallest full-minus-ablation margin seen was 0.135, the smallest rise 0.146.
/// The learning rate was 0.02 before the revision; under it 0.02 overshoots (validation mAP peaks at epoch 2 and
/// falls, the rise was 0.07–0.17), and 0.01 gave margins down to 0.12. (max and sharp end below their own step-0
/// values on this data; the test does not depend on that.)
@Suite("SSPA learning", .serialized, .enabled(if: SyntheticData.available, "needs the tiny CLIP fixture"))
struct LearningTests {
    static func train(_ config: SSPA.Config, train: SSPA.Features, validation: SSPA.Features, knowledge: Tensor)
        throws -> (initial: Double, final: Double, history: [SSPA.EpochRecord]) {
        var options = SSPA.TrainingOptions()
        options.epochs = 8
        options.learningRate = 0.005
        options.seed = 3
        let (model, tokenizer) = try SyntheticData.model(config, knowledge: knowledge)
        let trainer = try SSPA.Trainer(model: model, options: options,
                                       parameters: SSPA.Trainer.initialParameters(model: model, tokenizer: tokenizer, seed: options.seed))
        let initial = try #require(try trainer.meanAveragePrecision(validation))
        try trainer.run(train: train, validation: validation)
        let final = try #require(trainer.state.history.last?.validationMAP)
        return (initial, final, trainer.state.history)
    }

    @Test func fullModelLearnsAndBeatsSharpPooling() throws {
        let started = Date()
        let u = try SyntheticData.directions()
        let common = try SyntheticData.commonDirection()
        let generator = SyntheticData()
        let train = try generator.make(count: 192, directions: u, common: common, seed: 1)
        let validation = try generator.make(count: 96, directions: u, common: common, seed: 2)

        let full = try Self.train(SSPA.Config(), train: train, validation: validation, knowledge: u)
        var maxConfig = SSPA.Config()
        maxConfig.aggregator = .max
        let max = try Self.train(maxConfig, train: train, validation: validation, knowledge: u)
        var sharpConfig = SSPA.Config()
        sharpConfig.sharp = true
        let sharp = try Self.train(sharpConfig, train: train, validation: validation, knowledge: u)

        func f(_ v: Double) -> String { String(format: "%.3f", v) }
        let summary = "full \(f(full.initial)) → \(f(full.final)) (per epoch \(full.history.map { f($0.validationMAP ?? 0) })); "
            + "max \(f(max.initial)) → \(f(max.final)); sharp \(f(sharp.initial)) → \(f(sharp.final)); "
            + String(format: "%.1f s", Date().timeIntervalSince(started))
        print("learning test: \(summary)")
        #expect(full.final >= full.initial + 0.10, "validation mAP did not rise well above step 0: \(summary)")
        #expect(full.final >= max.final + 0.04, "the soft aggregator did not beat max pooling: \(summary)")
        #expect(full.final >= sharp.final + 0.04, "the soft aggregator did not beat the sharp one: \(summary)")
        #expect(full.history.first!.trainLoss > full.history.last!.trainLoss, "the training loss did not fall: \(summary)")
    }
}
