import CLIP
import Foundation
import Tensor
import TestSupport
import Testing
@testable import SSPA

/// The full model's loss against central finite differences, on a tiny random config (the tiny CLIP text tower of
/// the CLIP fixtures, d = 16, M = 7, C = 3, B = 2), independent of the SSPA reference fixtures.
///
/// Scheme: every parameter is perturbed with seeded noise (so γ_q, GDMA's Wo and the gates are live). For a few
/// entries of several parameters, the loss (float32 forward, loss in float64 from the float32 logits) is evaluated at
/// θ ± h, h = 2e-2, and the divided difference is taken in float64 over the actual float32 spacing of the two values.
/// The ASL focusing weights are constants of the backward pass (SSPA-SPEC.md), so the loss differentiated is the one
/// with the weights frozen at θ: the same value at θ, and the gradient the model computes.
/// Tolerance: |analytic − numeric| ≤ 2e-2 · max(|numeric| of that parameter's checked entries) + 2e-4 (float32
/// forward noise over 2h plus the O(h²) truncation term).
@Suite("SSPA model finite differences")
struct ModelGradientTests {
    static let checkpoint = Repo.path("Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu")

    struct Setup {
        var model: SSPA.Model
        var parameters: SSPA.Parameters
        var x0: Tensor, regions: Tensor, labels: Tensor
    }

    static func setup(_ config: SSPA.Config) throws -> Setup? {
        guard FileManager.default.fileExists(atPath: checkpoint + "/model.safetensors") else {
            loudSkip("\(checkpoint) missing; run python3 scripts/make_clip_fixtures.py")
            return nil
        }
        let textModel = try CLIP.TextModel(directory: URL(fileURLWithPath: checkpoint))
        let encoder = try SSPA.PromptEncoder(textModel: textModel, nameTokenIDs: [[1929], [3399, 1395], [2368]],
                                             dotTokenIDs: [269], nCtx: config.nCtx)
        let d = textModel.config.projectionDim, b = 2, m = 7, c = 3
        let knowledge = Ops.l2Normalize(Tensor.randomNormal([c, d], seed: 11))
        let model = try SSPA.Model(config: config, promptEncoder: encoder, knowledge: knowledge)
        var parameters = SSPA.Parameters.initial(config: config, d: d,
                                                 contextInit: encoder.contextEmbeddings(ids: [320, 1125, 539, 320]), seed: 5)
        for (i, name) in parameters.names.enumerated() {
            let t = parameters.tensors[name]!
            parameters.tensors[name] = t + Tensor.randomNormal(t.shape, std: 0.05, seed: 100 + UInt64(i))
        }
        let labels = Tensor([1, 0, -1, 0, 1, 1], shape: [b, c])
        return Setup(model: model, parameters: parameters, x0: Tensor.randomNormal([b, d], seed: 12),
                     regions: Tensor.randomNormal([b, m, d], seed: 13), labels: labels)
    }

    static func loss(_ s: Setup, _ parameters: SSPA.Parameters, frozen: SSPA.Model.FocusingWeights?) -> Double {
        let tape = Tape()
        let out = s.model.forward(s.model.variables(parameters, on: tape, trainable: false), x0: s.x0,
                                  regions: s.regions, labels: s.labels, on: tape, focusingWeights: frozen)
        return out.lossValue!
    }

    static let checked = ["prompt.cap_context", "prompt.global_context", "dsf.W_f", "qsm.layer1.W_j", "qsm.layer2.W_r",
                          "qsm.W_o", "qsm.gamma", "gdma.v2s.Wq", "gdma.v2s.Wo", "gdma.v2s.w_gate", "gdma.s2v.Wk",
                          "gdma.s2v.Wo", "gdma.s2v.beta", "agg.log_tau", "global.log_kappa", "region.bias"]

    @Test("loss gradient matches central differences", arguments: ["full", "no-qsm", "sharp", "max"])
    func finiteDifferences(_ variant: String) throws {
        var config = SSPA.Config()
        switch variant {
        case "no-qsm": config.noQSM = true
        case "sharp": config.sharp = true
        case "max": config.aggregator = .max
        default: break
        }
        guard let s = try Self.setup(config) else { return }
        let (out, grads) = s.model.lossAndGradients(s.parameters, x0: s.x0, regions: s.regions, labels: s.labels)
        let frozen = try #require(out.focusingWeights)
        #expect(Self.loss(s, s.parameters, frozen: frozen) == out.lossValue, "freezing the weights changes the loss at θ")
        let h: Float = 2e-2
        var worst = (name: "", error: 0.0)
        for name in Self.checked {
            guard let base = s.parameters.tensors[name], let analytic = grads[name] else { continue }
            let picks = Array(Set([0, base.count / 2, base.count - 1, (7 * base.count) / 11])).sorted()
            var numeric: [Double] = [], exact: [Double] = []
            for index in picks {
                var plus = base.scalars, minus = base.scalars
                plus[index] += h
                minus[index] -= h
                var pp = s.parameters, pm = s.parameters
                pp.tensors[name] = Tensor(plus, shape: base.shape)
                pm.tensors[name] = Tensor(minus, shape: base.shape)
                let spacing = Double(plus[index]) - Double(minus[index])
                numeric.append((Self.loss(s, pp, frozen: frozen) - Self.loss(s, pm, frozen: frozen)) / spacing)
                exact.append(Double(analytic.scalars[index]))
            }
            let scale = numeric.map(abs).max() ?? 0
            for (a, n) in zip(exact, numeric) {
                let error = abs(a - n)
                #expect(error <= 2e-2 * scale + 2e-4, "\(variant) \(name): analytic \(a), numeric \(n)")
                if error / (scale + 1e-3) > worst.error { worst = (name, error / (scale + 1e-3)) }
            }
        }
        print("SSPA finite differences \(variant): worst |analytic − numeric| / (scale + 1e-3) = \(String(format: "%.2e", worst.error)) (\(worst.name))")
    }

    @Test("gradients reach only the trainable tensors; the text tower stays frozen")
    func frozenTower() throws {
        guard let s = try Self.setup(SSPA.Config()) else { return }
        let tape = Tape()
        let vars = s.model.variables(s.parameters, on: tape)
        let out = s.model.forward(vars, x0: s.x0, regions: s.regions, labels: s.labels, on: tape)
        tape.backward(from: out.loss!)
        for (name, v) in vars {
            let g = try #require(tape.gradient(of: v), "\(name): no gradient")
            let finite = g.scalars.allSatisfy { $0.isFinite }
            #expect(finite, "\(name): non-finite gradient")
        }
        // Only the parameters and the recorded ops are on the tape: no node per CLIP weight.
        #expect(tape.nodeCount < 400, "tape has \(tape.nodeCount) nodes")
        // Inference (no labels, nothing trainable): same prediction, no loss, nothing recorded.
        let frozen = Tape()
        let inference = s.model.forward(s.model.variables(s.parameters, on: frozen, trainable: false), x0: s.x0,
                                        regions: s.regions, labels: nil, on: frozen)
        #expect(inference.loss == nil && inference.lossValue == nil && frozen.nodeCount == 0)
        #expect(inference.probabilities == out.probabilities)
        #expect(inference.omega.shape == [2, 7, 3] && inference.labelGates?.shape == [2, 3] && inference.regionGates?.shape == [2, 7])
        let omegaSums = Ops.sum(inference.omega, axis: 1).scalars
        #expect(omegaSums.allSatisfy { abs($0 - 1) < 1e-5 })
    }
}
