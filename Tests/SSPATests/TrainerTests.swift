import CLIP
import Foundation
import Tensor
import TestSupport
import Testing
@testable import SSPA

@Suite("SSPA trainer", .enabled(if: SyntheticData.available, "needs the tiny CLIP fixture"))
struct TrainerTests {
    static func setup(epochs: Int = 2, seed: UInt64 = 7) throws -> (SSPA.Trainer, SSPA.Features, CLIP.Tokenizer) {
        let u = try SyntheticData.directions()
        var generator = SyntheticData()
        generator.regions = 5
        let data = try generator.make(count: 40, directions: u, seed: 9)
        let (model, tokenizer) = try SyntheticData.model(SSPA.Config(), knowledge: u)
        var options = SSPA.TrainingOptions()
        options.epochs = epochs
        options.batchSize = 16
        options.learningRate = 0.01
        options.seed = seed
        let trainer = try SSPA.Trainer(model: model, options: options,
                                       parameters: SSPA.Trainer.initialParameters(model: model, tokenizer: tokenizer, seed: seed))
        return (trainer, data, tokenizer)
    }

    static func identical(_ a: SSPA.Parameters, _ b: SSPA.Parameters) -> Bool {
        a.names == b.names && a.names.allSatisfy { a[$0]!.scalars.map(\.bitPattern) == b[$0]!.scalars.map(\.bitPattern) }
    }

    @Test func sameSeedSameWeightsBitForBit() throws {
        let (a, data, _) = try Self.setup()
        let (b, _, _) = try Self.setup()
        try a.run(train: data)
        try b.run(train: data)
        #expect(Self.identical(a.parameters, b.parameters))
        #expect(a.state.step == 6)
        let (c, _, _) = try Self.setup(seed: 8)
        try c.run(train: data)
        #expect(!Self.identical(a.parameters, c.parameters))
    }

    @Test func resumingFromACheckpointMatchesAnUninterruptedRun() throws {
        let (whole, data, _) = try Self.setup(epochs: 3)
        try whole.run(train: data)

        let (first, _, _) = try Self.setup(epochs: 3)
        var steps = 0
        let finished = try first.run(train: data, shouldStop: { steps >= 4 }, events: { if case .step = $0 { steps += 1 } })
        #expect(!finished)
        #expect(first.state.epoch == 1 && first.state.batchInEpoch == 1)
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let manifest = SSPA.Checkpoint.Manifest(model: first.model.config, training: first.options, labelSet: "synthetic",
                                                labels: data.labelNames, displayNames: data.labelNames,
                                                knowledgeEncoderSHA256: "tiny", knowledgeRunID: 1, clipDirectory: SyntheticData.checkpoint,
                                                width: 16, contextWidth: 16)
        try SSPA.Checkpoint.save(.init(manifest: manifest, parameters: first.parameters, knowledge: first.model.knowledge,
                                       optimizer: first.optimizer, state: first.state), to: dir)
        let loaded = try SSPA.Checkpoint.load(from: dir)
        #expect(loaded.manifest == manifest)
        #expect(loaded.state == first.state)
        let resumed = try SSPA.Trainer(model: first.model, options: loaded.manifest.training, parameters: loaded.parameters,
                                       optimizer: loaded.optimizer, state: loaded.state)
        #expect(try resumed.run(train: data))
        #expect(resumed.state.step == whole.state.step)
        #expect(Self.identical(resumed.parameters, whole.parameters))
    }

    @Test func checkpointFromAnotherConfigIsRejected() throws {
        let (trainer, data, _) = try Self.setup(epochs: 1)
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var other = SSPA.Config()
        other.noQSM = true
        let manifest = SSPA.Checkpoint.Manifest(model: other, training: trainer.options, labelSet: "synthetic",
                                                labels: data.labelNames, displayNames: data.labelNames,
                                                knowledgeEncoderSHA256: "tiny", knowledgeRunID: 1, clipDirectory: "",
                                                width: 16, contextWidth: 16)
        try SSPA.Checkpoint.save(.init(manifest: manifest, parameters: trainer.parameters, knowledge: trainer.model.knowledge), to: dir)
        #expect { try SSPA.Checkpoint.load(from: dir) } throws: { "\($0)".contains("another config") }
    }

    @Test func scheduleWarmsUpThenDecays() {
        let s = SSPA.LearningRateSchedule(peak: 1, warmupSteps: 4, totalSteps: 12)
        #expect(s.rate(at: 0) == 0.25 && s.rate(at: 3) == 1)
        #expect(abs(s.rate(at: 8) - 0.5) < 1e-6)
        #expect(s.rate(at: 11) < s.rate(at: 10) && s.rate(at: 12) == 0)
    }

    @Test func adamWDecaysOnlyMatrices() throws {
        #expect(SSPA.AdamW.decays("dsf.W_f") && SSPA.AdamW.decays("qsm.layer1.W_r") && SSPA.AdamW.decays("gdma.v2s.Wo"))
        for name in ["prompt.cap_context", "prompt.global_context", "qsm.gamma", "agg.log_tau", "global.log_kappa",
                     "region.bias", "gdma.s2v.beta", "gdma.v2s.w_gate"] {
            #expect(!SSPA.AdamW.decays(name), "\(name)")
        }
        // Zero gradient: only decoupled decay moves a matrix, nothing moves a scalar.
        var p = try SSPA.Parameters(tensors: ["prompt.cap_context": Tensor([1, 2], shape: [1, 2]), "dsf.W_f": Tensor([1, 2], shape: [1, 2]),
                                              "region.log_kappa": Tensor([2], shape: [1]), "region.bias": Tensor([3], shape: [1])])
        var opt = SSPA.AdamW(weightDecay: 0.5)
        opt.update(&p, gradients: p.map { Tensor(zeros: $1.shape) }, lr: 0.1)
        #expect(p["dsf.W_f"]!.scalars == [0.95, 1.9])
        #expect(p["region.bias"]!.scalars == [3] && p["prompt.cap_context"]!.scalars == [1, 2])
        var g = ["a": Tensor([3, 4], shape: [2])]
        #expect(SSPA.AdamW.clipGradientNorm(&g, maxNorm: 1) == 5)
        #expect(abs(g["a"]!.scalars[0] - 0.6) < 1e-5)
    }

    @Test func featuresFilesRoundTripAndBadOnesAreClearErrors() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let u = try SyntheticData.directions()
        let data = try SyntheticData().make(count: 4, directions: u, seed: 1)
        let url = dir.appendingPathComponent("f.safetensors")
        try data.write(to: url, dtype: .f16)
        let back = try SSPA.Features(contentsOf: url)
        #expect(back.labels == data.labels && back.labelNames == data.labelNames && back.imagePaths == data.imagePaths)
        #expect(back.regions.shape == [4, 12, 16] && back.encoderSHA256 == "tiny")

        func expectError(_ fragment: String, _ build: () throws -> SSPA.Features) {
            #expect { _ = try build() } throws: { "\($0)".contains(fragment) }
        }
        var nan = data.regions
        nan.withUnsafeMutableBufferPointer { $0[100] = .nan }
        expectError("X holds NaN at image 0 (synthetic/0.jpg)") {
            try SSPA.Features(x0: data.x0, regions: nan, labels: data.labels, labelNames: data.labelNames, encoderSHA256: "e",
                              imagePaths: data.imagePaths)
        }
        expectError("X has shape [4, 12, 8]") {
            try SSPA.Features(x0: data.x0, regions: Tensor(zeros: [4, 12, 8]), labels: data.labels, labelNames: data.labelNames, encoderSHA256: "e")
        }
        expectError("empty") {
            try SSPA.Features(x0: Tensor(zeros: [0, 16]), regions: Tensor(zeros: [0, 12, 16]), labels: Tensor(zeros: [0, 6]),
                              labelNames: data.labelNames, encoderSHA256: "e")
        }
        expectError("must be 1, 0 or -1") {
            try SSPA.Features(x0: data.x0, regions: data.regions, labels: Ops.scale(data.labels, by: 2), labelNames: data.labelNames, encoderSHA256: "e")
        }
        #expect { try back.check(labelNames: ["dog", "cat"], encoderID: "tiny", against: "knowledge.db", file: "f") } throws: {
            "\($0)".contains("do not match the 2 labels of knowledge.db")
        }
        #expect { try back.check(labelNames: data.labelNames, encoderID: "other", against: "knowledge.db", file: "f") } throws: {
            "\($0)".contains("encoder")
        }
        // The region mode travels with the file; an unknown one is an error naming the key.
        #expect(back.regionMode == nil)
        var valueMode = data
        valueMode.regionMode = "value"
        try valueMode.write(to: url)
        #expect(try SSPA.Features(contentsOf: url).regionMode == "value")
        #expect { try SSPA.Features(contentsOf: url).check(regionMode: "patch", of: "the checkpoint runs/x", file: url.path) } throws: {
            "\($0)".contains("made with --regions value, but the checkpoint runs/x was made with --regions patch")
        }
        try SSPA.Features(contentsOf: url).check(regionMode: nil, of: "an old checkpoint", file: url.path)
        valueMode.regionMode = "bogus"
        try valueMode.write(to: url)
        #expect { _ = try SSPA.Features(contentsOf: url) } throws: { "\($0)".contains("'region_mode' is 'bogus'") }
        try Data("not safetensors".utf8).write(to: url)
        #expect { _ = try SSPA.Features(contentsOf: url) } throws: { "\($0)".hasPrefix(url.path) }
    }
}
