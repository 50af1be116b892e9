import CLIP
import Foundation
import Tensor
import TestSupport
import Testing
@testable import SSPA

/// Parity with `scripts/sspa_reference.py`'s fixtures (main model and every ablation): logits `s^G`, `s^R`, the loss,
/// the gates, `ω`, `p`, the intermediates, the gradient of every trainable tensor, and one training step (AdamW with
/// weight decay on exactly `Config.weightDecayed`, then the clamp of `ℓ_G`, `ℓ_R` at ln 100).
///
/// Tolerance, stated once: for every tensor, max |swift − reference| ≤ 1e-4 · max |reference| + 1e-6, i.e. 1e-4
/// relative with an absolute floor of 1e-6 (the reference computes in float64 from the same float32 values; the
/// Swift model runs in float32). The floor matters only for a gradient that is a sum with heavy cancellation:
/// `grad.qsm.gamma` of no-gdma is 6.9e-4, a sum of 240 terms whose absolute values add up to 4.1, so float32 noise
/// of 1e-7 per term leaves about 4e-7 (measured 3.9e-7, 5.7e-4 relative); every other tensor is within 1e-4 relative.
/// The printed figure is max |swift − reference| / (max |reference| + 1e-6).
@Suite("SSPA reference parity")
struct ReferenceParityTests {
    static let tolerance = 1e-4
    static let absoluteFloor = 1e-6
    static let fixtures = ["sspa_reference", "sspa_reference_no-kap", "sspa_reference_no-cap", "sspa_reference_no-qsm",
                           "sspa_reference_no-gdma", "sspa_reference_max", "sspa_reference_mean",
                           "sspa_reference_sharp", "sspa_reference_no-global"]
    static let directory = Repo.path("Tests/SSPATests/Fixtures")
    static let checkpoint = Repo.path("Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu")

    struct Metadata: Decodable {
        var config: SSPA.Config
        var display_names: [String]
        var context_init_ids: [Int32]
        var name_token_ids: [[Int32]]
        var dot_token_id: [Int32]
        var sequences: [[Int32]]
        var pool_index: [Int]
        var weight_decayed: [String]
        var step: Step
        struct Step: Decodable {
            var lr: Float
            var weight_decay: Float
            var max_grad_norm: Float
        }
    }

    /// (max |a − b|, max |b|).
    static func errors(_ a: Tensor, _ b: Tensor) -> (difference: Double, scale: Double) {
        precondition(a.count == b.count, "sizes differ: \(a.shape) vs \(b.shape)")
        var diff = 0.0, scale = 0.0
        let x = a.scalars, y = b.scalars
        for i in x.indices {
            diff = max(diff, abs(Double(x[i]) - Double(y[i])))
            scale = max(scale, abs(Double(y[i])))
        }
        return (diff, scale)
    }

    @Test("fixtures are present")
    func present() {
        let missing = Self.fixtures.filter { !FileManager.default.fileExists(atPath: "\(Self.directory)/\($0).safetensors") }
        if !missing.isEmpty {
            loudSkip("SSPA parity fixtures missing: \(missing.joined(separator: ", ")); run python3 scripts/sspa_reference.py --write-fixtures")
        }
    }

    @Test("matches the PyTorch reference", arguments: fixtures)
    func parity(_ name: String) throws {
        let path = "\(Self.directory)/\(name).safetensors"
        guard FileManager.default.fileExists(atPath: path) else {
            loudSkip("\(path) missing; run python3 scripts/sspa_reference.py --write-fixtures")
            return
        }
        guard FileManager.default.fileExists(atPath: Self.checkpoint + "/model.safetensors") else {
            loudSkip("\(Self.checkpoint) missing; run python3 scripts/make_clip_fixtures.py")
            return
        }
        let file = try SafeTensors(path: path)
        let meta = try JSONDecoder().decode(Metadata.self, from: Data((file.metadata["sspa"] ?? "{}").utf8))
        let textModel = try CLIP.TextModel(directory: URL(fileURLWithPath: Self.checkpoint))
        let parameters = try SSPA.Parameters(contentsOf: URL(fileURLWithPath: path), config: meta.config)
        let encoder = try SSPA.PromptEncoder(textModel: textModel, nameTokenIDs: meta.name_token_ids,
                                             dotTokenIDs: meta.dot_token_id, nCtx: meta.config.nCtx)
        #expect(encoder.sequences == meta.sequences, "\(name): sequence layout differs from the reference")
        #expect(encoder.poolIndices == meta.pool_index, "\(name): pooling indices differ from the reference")
        let tokenizer = try CLIP.Tokenizer(directory: URL(fileURLWithPath: Self.checkpoint))
        let named = try SSPA.PromptEncoder(textModel: textModel, tokenizer: tokenizer, displayNames: meta.display_names,
                                           nCtx: meta.config.nCtx)
        #expect(named.sequences == meta.sequences, "\(name): tokenized display names differ from the reference's")
        if let cap = parameters["prompt.cap_context"] ?? parameters["prompt.global_context"] {
            let initial = try encoder.contextEmbeddings(text: meta.config.contextInitText, tokenizer: tokenizer)
            #expect(initial.shape == cap.shape)
            #expect(tokenizer.encode(meta.config.contextInitText) == meta.context_init_ids)
        }
        let model = try SSPA.Model(config: meta.config, promptEncoder: encoder, knowledge: try file.tensor("input.T_ka"))
        let (out, grads) = model.lossAndGradients(parameters, x0: try file.tensor("input.x0"),
                                                  regions: try file.tensor("input.X"), labels: try file.tensor("input.y"))

        var compared: [(String, Tensor)] = [
            ("out.s_R", out.regionLogits.value), ("out.p", out.probabilities), ("out.omega", out.omega),
            ("out.loss", Tensor([Float(out.lossValue ?? .nan)], shape: [1])),
        ]
        if let loss = out.loss { compared.append(("out.loss", loss.value)) }
        if let sG = out.globalLogits { compared.append(("out.s_G", sG.value)) }
        if let g = out.labelGates { compared.append(("out.g_t", g)) }
        if let g = out.regionGates { compared.append(("out.g_x", g)) }
        for (key, value) in out.intermediates { compared.append(("inter.\(key)", value)) }
        for (key, value) in grads { compared.append(("grad.\(key)", value)) }
        // Every reference output must be matched by one of ours.
        let ours = Set(compared.map(\.0))
        let expected = file.names.filter { $0.hasPrefix("out.") || $0.hasPrefix("grad.") || $0.hasPrefix("inter.") }
        #expect(Set(expected) == ours, "\(name): keys differ: reference-only \(Set(expected).subtracting(ours).sorted()), swift-only \(ours.subtracting(expected).sorted())")

        var worst = (key: "", error: 0.0)
        for (key, value) in compared where file.contains(key) {
            let reference = try file.tensor(key)
            #expect(value.count == reference.count, "\(name) \(key): shape \(value.shape) vs \(reference.shape)")
            guard value.count == reference.count else { continue }
            let (difference, scale) = Self.errors(value, reference)
            let error = difference / (scale + 1e-6)
            #expect(difference <= Self.tolerance * scale + Self.absoluteFloor,
                    "\(name) \(key): max difference \(difference), max |reference| \(scale), relative \(error)")
            if error > worst.error { worst = (key, error) }
        }
        print("SSPA parity \(name): \(compared.count) tensors, worst \(worst.key) \(String(format: "%.2e", worst.error)), loss \(out.lossValue ?? .nan)")

        // The weight-decay list is the reference's, and one training step matches its step.
        #expect(SSPA.Config.weightDecayed.filter { parameters[$0] != nil } == meta.weight_decayed,
                "\(name): the weight-decayed parameters differ from the reference's WEIGHT_DECAYED")
        try checkStep(file: file, meta: meta, parameters: parameters, name: name)
    }

    /// One step from the fixture's parameters (with the `step.before.*` overrides) and its float32 gradients: clip,
    /// AdamW, clamp, as `SSPA.Trainer` takes it, against the reference's `train_step`. The gradients are the
    /// reference's, so the comparison isolates the update (float32 here, float64 there).
    func checkStep(file: SafeTensors, meta: Metadata, parameters: SSPA.Parameters, name: String) throws {
        var before = parameters
        var clamped = 0
        for key in file.names where key.hasPrefix("step.before.") {
            let parameter = String(key.dropFirst("step.before.".count))
            before[parameter] = try file.tensor(key)
            if SSPA.Config.logitScales.contains(parameter) { clamped += 1 }
        }
        #expect(clamped == 1, "\(name): the fixture should start one logit scale above ln 100")
        var gradients = try parameters.map { key, _ in try file.tensor("grad.\(key.rawValue)") }
        var after = before
        var optimizer = SSPA.AdamW(weightDecay: meta.step.weight_decay)
        SSPA.AdamW.clipGradientNorm(&gradients, maxNorm: meta.step.max_grad_norm)
        SSPA.Trainer.update(&after, optimizer: &optimizer, gradients: gradients, learningRate: meta.step.lr, config: meta.config)
        var worst = (key: "", error: 0.0)
        for parameter in parameters.names {
            let reference = try file.tensor("step.after.\(parameter)")
            let (difference, scale) = Self.errors(after[parameter]!, reference)
            #expect(difference <= Self.tolerance * scale + Self.absoluteFloor,
                    "\(name) step \(parameter): max difference \(difference), max |reference| \(scale)")
            if difference / (scale + 1e-6) > worst.error { worst = (parameter, difference / (scale + 1e-6)) }
        }
        // The clamp acted: the logit scale that started at ln 150 ends exactly at ln 100 (float32).
        for key in SSPA.Config.logitScales where file.contains("step.before.\(key)") {
            #expect(after[key]!.scalars == [logf(meta.config.kappaMax)], "\(name): \(key) not clamped at ln 100")
        }
        print("SSPA parity \(name) training step: worst \(worst.key) \(String(format: "%.2e", worst.error))")
    }
}
