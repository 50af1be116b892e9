import Foundation
import Tensor
import TestSupport
import Testing
@testable import SSPA

/// `SSPA.Config` coding and validation, `SSPA.Parameters` initialisation and safetensors round trips, and the ASL.
@Suite("SSPA config, parameters and loss")
struct ConfigAndParametersTests {
    @Test("config defaults are the spec's and survive a JSON round trip")
    func configRoundTrip() throws {
        let c = SSPA.Config()
        #expect(c.nCtx == 4 && c.kappaInit == 20 && c.biasInit == -5 && c.tauInit == 0.2 && c.betaInit == -2)
        #expect(c.lambda == 1 && c.gammaPos == 0 && c.gammaNeg == 2 && c.margin == 0.05 && c.clampMin == 1e-8)
        var changed = c
        changed.aggregator = .mean
        changed.noGDMA = true
        let back = try JSONDecoder().decode(SSPA.Config.self, from: JSONEncoder().encode(changed))
        #expect(back == changed)
        let partial = try JSONDecoder().decode(SSPA.Config.self, from: Data(#"{"no_qsm": true, "aggregator": "max"}"#.utf8))
        #expect(partial.noQSM && partial.aggregator == .max && partial.kappaInit == 20)
    }

    @Test("sharp needs the soft aggregator")
    func validation() {
        var c = SSPA.Config()
        c.sharp = true
        c.aggregator = .max
        #expect(throws: SSPA.ConfigError.self) { try c.validate() }
    }

    @Test("initial parameters: shapes, identity, zeros, scalars; seeded; safetensors round trip")
    func parameters() throws {
        let config = SSPA.Config(), d = 8
        let ctx = Tensor.randomNormal([4, 6], seed: 1)
        let p = SSPA.Parameters.initial(config: config, d: d, contextInit: ctx, seed: 3)
        try p.validate(config: config, d: d, contextWidth: 6)
        #expect(p["prompt.cap_context"] == ctx && p["prompt.global_context"] == ctx)
        #expect(p["gdma.v2s.Wo"]!.scalars.allSatisfy { $0 == 0 } && p["qsm.gamma"]!.scalars == [0])
        #expect(abs(p["region.log_kappa"]!.scalar - logf(20)) < 1e-6 && p["global.bias"]!.scalars == [-5])
        #expect(abs(p["agg.log_tau"]!.scalar - logf(0.2)) < 1e-6 && p["gdma.s2v.beta"]!.scalars == [-2])
        let wf = p["dsf.W_f"]!.scalars
        #expect((0..<d).allSatisfy { wf[$0 * d + $0] == 1 } && wf.reduce(0, +) == Float(d))
        #expect(SSPA.Parameters.initial(config: config, d: d, contextInit: ctx, seed: 3)["qsm.W_o"] == p["qsm.W_o"])
        var ablated = config
        ablated.noQSM = true
        ablated.sharp = true
        let q = SSPA.Parameters.initial(config: ablated, d: d, contextInit: ctx, seed: 3)
        #expect(q["qsm.W_o"] == nil && q["agg.log_tau"] == nil)

        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.safetensors")
        try p.save(to: url)
        let loaded = try SSPA.Parameters(contentsOf: url, config: config)
        #expect(loaded.names == p.names && loaded.names.allSatisfy { loaded[$0] == p[$0] })
        #expect(throws: SSPA.ConfigError.self) { try SSPA.Parameters(contentsOf: url, config: ablated) }
    }

    /// One image: the loss is the sum over its known labels (SSPA-SPEC.md: per image the sum, then the mean over
    /// images); the gradient holds the focusing weights constant, so the differences freeze them too.
    @Test("ASL: hand-computed values, unknown labels ignored, gradient matches differences")
    func asl() {
        let config = SSPA.Config()
        let s = Tensor([2, -1, 0.5, 3], shape: [1, 4]), y = Tensor([1, 0, -1, 0], shape: [1, 4])
        let (loss, grad) = SSPA.AsymmetricLoss.evaluate(logits: s, labels: y, config: config)
        func sig(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
        let pos = log(sig(2))
        let pm1 = max(sig(-1) - 0.05, 0), pm3 = max(sig(3) - 0.05, 0)
        let neg1 = pm1 * pm1 * log(1 - pm1), neg3 = pm3 * pm3 * log(1 - pm3)
        #expect(abs(loss - -(pos + neg1 + neg3)) < 1e-12)
        let frozen = SSPA.AsymmetricLoss.focusingWeights(logits: s, labels: y, config: config)
        #expect(grad.scalars[2] == 0)
        for i in [0, 1, 3] {
            var plus = s.scalars.map(Double.init), minus = plus
            plus[i] += 1e-5
            minus[i] -= 1e-5
            let lp = SSPA.AsymmetricLoss.evaluate(logits: Tensor(plus.map(Float.init), shape: [1, 4]), labels: y, config: config, weights: frozen).loss
            let lm = SSPA.AsymmetricLoss.evaluate(logits: Tensor(minus.map(Float.init), shape: [1, 4]), labels: y, config: config, weights: frozen).loss
            let spacing = Double(Float(plus[i])) - Double(Float(minus[i]))
            #expect(abs((lp - lm) / spacing - Double(grad.scalars[i])) < 1e-4)
        }
    }
}
