import CLIP
import Foundation
import Tensor
import TestSupport
import Testing
@testable import SSPA

/// Issue 11 §4: the details SSPA-SPEC.md's revision tightened (feature scale, κ clamp, ASL, the weight-decay list,
/// old checkpoints). The reference parity tests cover the same points against PyTorch; these check each behaviour
/// on its own, where a user would notice it.
@Suite("SSPA spec revision", .enabled(if: SyntheticData.available, "needs the tiny CLIP fixture"))
struct SpecRevisionTests {
    // MARK: Feature scale

    /// (max |a − b|, max |b|) over two equally long float arrays.
    static func difference(_ a: [Float], _ b: [Float]) -> (Double, Double) {
        zip(a, b).reduce((0.0, 0.0)) { acc, pair in
            (max(acc.0, abs(Double(pair.0) - Double(pair.1))), max(acc.1, abs(Double(pair.1))))
        }
    }

    @Test("predictions are unchanged when x0 and X are scaled by the same factor (×10, ×0.1)",
          arguments: ["full", "no-gdma", "no-qsm", "max"])
    func featureScale(_ variant: String) throws {
        var config = SSPA.Config()
        switch variant {
        case "no-gdma": config.noGDMA = true
        case "no-qsm": config.noQSM = true
        case "max": config.aggregator = .max
        default: break
        }
        guard let s = try ModelGradientTests.setup(config) else { return }
        func run(_ factor: Float) -> SSPA.Model.Output {
            let tape = Tape()
            return s.model.forward(s.model.variables(s.parameters, on: tape, trainable: false), x0: Ops.scale(s.x0, by: factor),
                                   regions: Ops.scale(s.regions, by: factor), labels: s.labels, on: tape)
        }
        let base = run(1)
        for factor: Float in [10, 0.1] {
            let scaled = run(factor)
            let (dp, _) = Self.difference(scaled.probabilities.scalars, base.probabilities.scalars)
            let (ds, scale) = Self.difference(scaled.regionLogits.value.scalars, base.regionLogits.value.scalars)
            #expect(dp <= 1e-5, "\(variant) ×\(factor): p moves by \(dp)")
            #expect(ds <= 1e-5 * scale + 1e-5, "\(variant) ×\(factor): s^R moves by \(ds)")
            if let g = scaled.globalLogits, let g0 = base.globalLogits {
                #expect(Self.difference(g.value.scalars, g0.value.scalars).0 <= 1e-4, "\(variant) ×\(factor): s^G moves")
            }
            #expect(abs(scaled.lossValue! - base.lossValue!) <= 1e-5 * abs(base.lossValue!), "\(variant) ×\(factor): loss moves")
        }
    }

    // MARK: κ clamp

    @Test("κ_G and κ_R are learned and clamped at 100 after each step")
    func logitScaleClamp() throws {
        let (trainer, data, _) = try TrainerTests.setup(epochs: 1)
        trainer.parameters["global.log_kappa"] = Tensor([logf(150)], shape: [1])
        let regionBefore = trainer.parameters["region.log_kappa"]!.scalar
        let batch = data.batch(Array(0..<16))
        try trainer.step(x0: batch.x0, regions: batch.regions, labels: batch.labels, learningRate: 0.01)
        #expect(trainer.parameters["global.log_kappa"]!.scalars == [logf(100)], "ℓ_G above ln 100 is clamped to ln 100")
        let regionAfter = trainer.parameters["region.log_kappa"]!.scalar
        #expect(regionAfter != regionBefore && regionAfter < logf(100), "ℓ_R is learned and left alone below ln 100")
        // The bound is a config value (default 100), saved with the model; configs without it read as 100.
        #expect(SSPA.Config().kappaMax == 100)
        let old = try JSONDecoder().decode(SSPA.Config.self, from: Data(#"{"aggregator": "soft"}"#.utf8))
        #expect(old.kappaMax == 100)
        var p = try SSPA.Parameters(tensors: ["region.log_kappa": Tensor([5], shape: [1]), "global.log_kappa": Tensor([1], shape: [1]),
                                              "region.bias": Tensor([0], shape: [1]), "global.bias": Tensor([0], shape: [1]),
                                              "prompt.global_context": Tensor([0], shape: [1, 1])])
        p.clampLogitScales(kappaMax: 50)
        #expect(p["region.log_kappa"]!.scalars == [logf(50)] && p["global.log_kappa"]!.scalars == [1])
    }

    // MARK: ASL

    @Test("ASL: the focusing weights are constants of the backward pass")
    func aslConstantWeights() {
        // One negative with p = σ(1) = 0.731, p_m = 0.681, γ− = 2: with w = p_m² held constant,
        // d/ds [w · log(1 − p_m)] = −w · p(1−p) / (1 − p_m); the loss is the negative of the term.
        let config = SSPA.Config()
        let s = Tensor([1], shape: [1, 1]), y = Tensor([0], shape: [1, 1])
        let (loss, gradient) = SSPA.AsymmetricLoss.evaluate(logits: s, labels: y, config: config)
        let p = 1 / (1 + exp(-1.0)), pm = p - 0.05, w = pm * pm
        #expect(abs(loss + w * log(1 - pm)) < 1e-12)
        let constant = w * p * (1 - p) / (1 - pm)
        #expect(abs(Double(gradient.scalar) - constant) < 1e-6, "gradient \(gradient.scalar), expected \(constant)")
        // The full derivative (weights differentiated too) is larger by −2·p_m·p(1−p)·log(1 − p_m): not what we use.
        let full = constant - 2 * pm * p * (1 - p) * log(1 - pm)
        #expect(abs(Double(gradient.scalar) - full) > 0.1)
        // Frozen weights give the same loss at the point and the same slope by finite differences.
        let frozen = SSPA.AsymmetricLoss.focusingWeights(logits: s, labels: y, config: config)
        func lossAt(_ v: Float) -> Double {
            SSPA.AsymmetricLoss.evaluate(logits: Tensor([v], shape: [1, 1]), labels: y, config: config, weights: frozen).loss
        }
        let h: Float = 1e-3
        let numeric = (lossAt(1 + h) - lossAt(1 - h)) / (Double(1 + h) - Double(1 - h))
        #expect(abs(numeric - constant) < 1e-5)
    }

    @Test("ASL: no NaN where a focusing weight's base is 0")
    func aslZeroBase() {
        // γ+ = γ− = 0.5: d/dp of base^0.5 is infinite at 0. A positive with σ(40) = 1 in float64 (base 1 − p = 0)
        // and a negative below the margin (p = σ(−5) = 0.0067 < 0.05, so p_m = 0) both have weight 0.
        var config = SSPA.Config()
        config.gammaPos = 0.5
        config.gammaNeg = 0.5
        let s = Tensor([40, -5, 2, -1], shape: [1, 4]), y = Tensor([1, 0, 1, 0], shape: [1, 4])
        let weights = SSPA.AsymmetricLoss.focusingWeights(logits: s, labels: y, config: config)
        #expect(weights[0] == 0 && weights[1] == 0 && weights[2] > 0 && weights[3] > 0)
        let (loss, gradient) = SSPA.AsymmetricLoss.evaluate(logits: s, labels: y, config: config)
        #expect(loss.isFinite && gradient.scalars.allSatisfy(\.isFinite), "loss \(loss), gradient \(gradient.scalars)")
        #expect(gradient.scalars[0] == 0 && gradient.scalars[1] == 0)
    }

    @Test("ASL: the sum over each image's known labels, the mean over images with a known label")
    func aslPerImage() {
        let config = SSPA.Config()
        let s: [Float] = [0.5, -1, 3, 2, 2, 2, -0.3, 1, 1.5]
        let y: [Float] = [1, 0, -1, -1, -1, -1, 0, -1, 1]  // image 1 has no known label
        let (loss, gradient) = SSPA.AsymmetricLoss.evaluate(logits: Tensor(s, shape: [3, 3]), labels: Tensor(y, shape: [3, 3]), config: config)
        func single(_ i: Int) -> (Double, Float) {
            let r = SSPA.AsymmetricLoss.evaluate(logits: Tensor([s[i]], shape: [1, 1]), labels: Tensor([y[i]], shape: [1, 1]), config: config)
            return (r.loss, r.gradient.scalar)
        }
        let known = [0, 1, 6, 8]
        let expected = known.map { single($0).0 }.reduce(0, +) / 2  // two images with a known label
        #expect(abs(loss - expected) < 1e-12, "loss \(loss), expected \(expected) (the mean over entries would be \(expected * 2 / 4))")
        for i in 0..<9 {
            let want: Float = known.contains(i) ? single(i).1 / 2 : 0
            #expect(abs(gradient.scalars[i] - want) < 1e-7, "entry \(i): \(gradient.scalars[i]) vs \(want)")
        }
        // No known label at all: loss 0, no gradient.
        let none = SSPA.AsymmetricLoss.evaluate(logits: Tensor([1, 2], shape: [1, 2]), labels: Tensor([-1, -1], shape: [1, 2]), config: config)
        #expect(none.loss == 0 && none.gradient.scalars == [0, 0])
    }

    // MARK: Weight decay

    @Test("weight decay goes to exactly the weight matrices the spec names")
    func weightDecayList() {
        let names = SSPA.Config.weightDecayed
        #expect(names.count == 18 && Set(names).count == 18)
        // They are exactly the full model's matrices other than the context vectors (W_f, 8 quaternion weights,
        // W_o, 8 GDMA projections), and AdamW decays those and nothing else.
        let shapes = SSPA.Config().parameterShapes(d: 16, contextWidth: 16)
        let matrices = shapes.filter { $0.shape.count == 2 && !$0.name.hasPrefix("prompt.") }.map(\.name)
        #expect(Set(matrices) == Set(names))
        for (name, _) in shapes { #expect(SSPA.AdamW.decays(name) == names.contains(name), "\(name)") }
    }

    // MARK: Old checkpoints

    @Test("a checkpoint trained before the revision is refused with what to redo")
    func oldCheckpointRefused() throws {
        let (_, contents) = try CheckpointTests.trained()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try SSPA.Checkpoint.save(contents, to: dir)
        #expect(try SSPA.Checkpoint.load(from: dir).manifest.format == "sspa-checkpoint/2")
        let url = dir.appendingPathComponent("config.json")
        func setFormat(_ format: String) throws {
            var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
            manifest["format"] = format
            try JSONSerialization.data(withJSONObject: manifest).write(to: url)
        }
        try setFormat("sspa-checkpoint/1")
        #expect { try SSPA.Checkpoint.load(from: dir, forTraining: false) } throws: { error in
            let message = "\(error)"
            return message.contains("format sspa-checkpoint/1") && message.contains("Retrain it with `sspa train`")
                && message.contains("L2-normalised") && message.contains("features files need no re-extraction")
        }
        try setFormat("sspa-checkpoint/9")
        #expect { try SSPA.Checkpoint.load(from: dir, forTraining: false) } throws: { "\($0)".contains("newer sspa") }
    }
}
