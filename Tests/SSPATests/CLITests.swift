import CLIP
import Foundation
import Knowledge
import Tensor
import TestSupport
import Testing
@testable import SSPA

/// The result of running a binary.
typealias SSPARun = ProcessResult

/// Runs the real `sspa` and `sspa-knowledge` binaries that `swift build --build-tests` put next to the test bundle.
enum SSPABinary {
    static let sspa = Processes.locate("sspa")
    static let knowledge = Processes.locate("sspa-knowledge")

    static func start(_ binary: String, _ arguments: [String]) throws -> (Process, Pipe, Pipe) {
        try Processes.start(binary, arguments, cwd: Repo.root)
    }

    static func finish(_ process: Process, _ out: Pipe, _ err: Pipe) -> SSPARun { Processes.finish(process, out, err) }

    static func run(_ binary: String, _ arguments: [String]) throws -> SSPARun {
        let (p, o, e) = try start(binary, arguments)
        return finish(p, o, e)
    }

    static func run(_ arguments: [String]) throws -> SSPARun { try run(sspa, arguments) }
}

private let wordnetPresent = FileManager.default.fileExists(atPath: "/usr/share/wordnet")

/// `sspa train` and `sspa evaluate` end to end, on a knowledge.db built with `sspa-knowledge build` (WordNet) and
/// `encode --clip` (the tiny CLIP fixture), and synthetic features (`SyntheticData`).
@Suite("sspa command line", .serialized,
       .enabled(if: SyntheticData.available && wordnetPresent, "needs the tiny CLIP fixture and WordNet"))
final class SSPACLITests {
    let dir: URL
    let db: String
    let clip = SyntheticData.checkpoint
    let encoderID: String

    init() throws {
        dir = try temporaryDirectory()
        db = dir.appendingPathComponent("knowledge.db").path
        let labels = dir.appendingPathComponent("syn.txt")
        try Data(SyntheticData.labelNames.joined(separator: "\n").utf8).write(to: labels)
        let build = try SSPABinary.run(SSPABinary.knowledge, ["build", "--labels", labels.path, "--db", db, "--quiet"])
        precondition(build.status == 0, "\(build)")
        let encode = try SSPABinary.run(SSPABinary.knowledge, ["encode", "--clip", clip, "--label-set", "syn", "--db", db, "--quiet"])
        precondition(encode.status == 0, "\(encode)")
        encoderID = try CLIP.Checkpoint.identity(directory: URL(fileURLWithPath: clip)).id
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    func features(_ name: String, count: Int, seed: UInt64, labels: [String]? = nil, encoder: String? = nil) throws -> String {
        let u = try SyntheticData.directions()
        var data = try SyntheticData().make(count: count, directions: u, common: try SyntheticData.commonDirection(), seed: seed,
                                            encoder: encoder ?? encoderID)
        if let labels { data.labelNames = labels }
        let url = dir.appendingPathComponent(name)
        try data.write(to: url, dtype: .f16)
        return url.path
    }

    func trainArguments(_ train: String, out: String, extra: [String] = []) -> [String] {
        ["train", "--features", train, "--knowledge", db, "--label-set", "syn", "--clip", clip, "--out", out, "--batch", "16",
         "--lr", "0.01", "--seed", "5"] + extra
    }

    @Test func trainEvaluateAndResume() throws {
        let train = try features("train.safetensors", count: 48, seed: 1)
        let val = try features("val.safetensors", count: 24, seed: 2)
        let out = dir.appendingPathComponent("runs/syn").path
        let run = try SSPABinary.run(trainArguments(train, out: out, extra: ["--val", val, "--epochs", "2"]))
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.contains("epoch 1/2  train loss"), "\(run)")
        #expect(run.stdout.contains("val mAP"), "\(run)")
        #expect(FileManager.default.fileExists(atPath: out + "/config.json") && FileManager.default.fileExists(atPath: out + "/checkpoint.json"))
        let step = try SSPA.Checkpoint.currentFolder(out)
        for file in ["model.safetensors", "knowledge.safetensors", "optimizer.safetensors", "training-state.json"] {
            #expect(FileManager.default.fileExists(atPath: step + "/" + file), "\(file)")
        }
        let checkpoint = try SSPA.Checkpoint.load(from: URL(fileURLWithPath: out))
        #expect(checkpoint.manifest.labelSet == "syn" && checkpoint.manifest.labels == SyntheticData.labelNames)
        #expect(checkpoint.manifest.knowledgeEncoderSHA256 == encoderID && checkpoint.manifest.knowledgeRunID == 1)
        #expect(checkpoint.state?.epoch == 2 && checkpoint.state?.step == 6)

        let evaluate = try SSPABinary.run(["evaluate", "--model", out, "--features", val])
        #expect(evaluate.status == 0, "\(evaluate)")
        #expect(evaluate.stdout.contains("mAP") && evaluate.stdout.contains("CF1"), "\(evaluate)")
        let json = try SSPABinary.run(["evaluate", "--model", out, "--features", val, "--json"])
        #expect(json.status == 0, "\(json)")
        let report = try JSONDecoder().decode(SSPA.Metrics.Report.self, from: Data(json.stdout.utf8))
        #expect(report.samples == 24 && report.labels == 6 && report.mAP != nil)

        // The same seed gives the same weights; --resume on a finished run has nothing to do; a longer run resumed
        // after 2 of 3 epochs equals a 3-epoch run from scratch.
        let again = dir.appendingPathComponent("runs/again").path
        #expect(try SSPABinary.run(trainArguments(train, out: again, extra: ["--val", val, "--epochs", "2"])).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: SSPA.Checkpoint.currentFolder(again) + "/model.safetensors")) == Data(contentsOf: URL(fileURLWithPath: step + "/model.safetensors")))
        let done = try SSPABinary.run(trainArguments(train, out: out, extra: ["--resume"]))
        #expect(done.status == 0 && done.stdout.contains("nothing to do"), "\(done)")
        let exists = try SSPABinary.run(trainArguments(train, out: out))
        #expect(exists.status == 73 && exists.stderr.contains("already holds a checkpoint"), "\(exists)")
        let other = try SSPABinary.run(trainArguments(train, out: out, extra: ["--resume", "--ablate", "no-qsm"]))
        #expect(other.status == 65 && other.stderr.contains("another config"), "\(other)")
        let otherLR = try SSPABinary.run(trainArguments(train, out: out, extra: ["--resume", "--epochs", "3"]))
        #expect(otherLR.status == 65 && otherLR.stderr.contains("--epochs 3 (saved 2)"), "\(otherLR)")
    }

    /// Issue 11 §5: zero-shot CLIP next to every result. `evaluate --zero-shot` scores the features with the store's
    /// knowledge and no training; `evaluate --model` prints the same zero-shot rows under the model's row.
    @Test func zeroShotBaselinesBesideTheModel() throws {
        let train = try features("train.safetensors", count: 32, seed: 1)
        let val = try features("val.safetensors", count: 24, seed: 2)
        let zeroShot = ["evaluate", "--zero-shot", "--features", val, "--knowledge", db, "--label-set", "syn", "--clip", clip]
        let text = try SSPABinary.run(zeroShot)
        #expect(text.status == 0, "\(text)")
        let rows = text.stdout.split(separator: "\n").map(String.init)
        for title in ["zero-shot global", "zero-shot regional max", "zero-shot regional soft"] {
            #expect(rows.contains { $0.hasPrefix(title) }, "no \(title) row: \(text)")
        }
        #expect(text.stdout.contains("σ(20·u − 5)") && text.stdout.contains("24 samples, 6 labels"), "\(text)")

        // The JSON holds the metrics of the library's scores for the store's knowledge.
        struct ZeroShotJSON: Decodable { var zero_shot: [String: SSPA.Metrics.Report] }
        let json = try SSPABinary.run(zeroShot + ["--json"])
        #expect(json.status == 0, "\(json)")
        let zero = try JSONDecoder().decode(ZeroShotJSON.self, from: Data(json.stdout.utf8)).zero_shot
        let store = try KnowledgeStore(path: db, readOnly: true)
        let knowledge = try #require(try store.knowledgeMatrix(labelSet: "syn", encoderID: encoderID)).matrix
        let expected = try SSPA.ZeroShot.reports(features: SSPA.Features(contentsOf: URL(fileURLWithPath: val)), knowledge: knowledge)
        for method in SSPA.ZeroShot.Method.allCases {
            let got = try #require(zero[method.rawValue], "no \(method.rawValue) in \(json.stdout)")
            #expect(got.mAP == expected[method]?.mAP && got.top3 == expected[method]?.top3, "\(method)")
        }

        // With a model: its row first, then the same zero-shot rows (the checkpoint carries the same T^ka).
        let out = dir.appendingPathComponent("runs/zs").path
        #expect(try SSPABinary.run(trainArguments(train, out: out, extra: ["--epochs", "1"])).status == 0)
        let evaluate = try SSPABinary.run(["evaluate", "--model", out, "--features", val])
        #expect(evaluate.status == 0, "\(evaluate)")
        print("sspa evaluate --model, with the baselines:\n\(evaluate.stdout)")
        let lines = evaluate.stdout.split(separator: "\n").map(String.init)
        let model = try #require(lines.firstIndex { $0.hasPrefix("SSPA (full model)") }, "no model row: \(evaluate)")
        #expect(lines.count > model + 3 && lines[model + 1].hasPrefix("zero-shot global")
                && lines[model + 2].hasPrefix("zero-shot regional max") && lines[model + 3].hasPrefix("zero-shot regional soft"),
                "\(evaluate)")
        for title in ["zero-shot global", "zero-shot regional max", "zero-shot regional soft"] {
            #expect(lines.first { $0.hasPrefix(title) } == rows.first { $0.hasPrefix(title) }, "\(title) differs between the two modes")
        }
        let modelJSON = try SSPABinary.run(["evaluate", "--model", out, "--features", val, "--json"])
        #expect(modelJSON.status == 0, "\(modelJSON)")
        let report = try JSONDecoder().decode(SSPA.Metrics.Report.self, from: Data(modelJSON.stdout.utf8))
        #expect(report.samples == 24)
        let beside = try JSONDecoder().decode(ZeroShotJSON.self, from: Data(modelJSON.stdout.utf8)).zero_shot
        #expect(beside["global"]?.mAP == zero["global"]?.mAP && beside["regional-soft"]?.mAP == zero["regional-soft"]?.mAP)

        // Usage: neither --model nor --zero-shot, both, or --zero-shot without a label set.
        var run = try SSPABinary.run(["evaluate", "--features", val])
        #expect(run.status == 64 && run.stderr.contains("--zero-shot"), "\(run)")
        run = try SSPABinary.run(["evaluate", "--zero-shot", "--model", out, "--features", val, "--label-set", "syn"])
        #expect(run.status == 64 && run.stderr.contains("drop --model"), "\(run)")
        run = try SSPABinary.run(["evaluate", "--zero-shot", "--features", val])
        #expect(run.status == 64 && run.stderr.contains("--label-set"), "\(run)")

        // A checkpoint of the format before the spec revision is refused, saying to retrain.
        let configURL = URL(fileURLWithPath: out + "/config.json")
        var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        manifest["format"] = "sspa-checkpoint/1"
        try JSONSerialization.data(withJSONObject: manifest).write(to: configURL)
        run = try SSPABinary.run(["evaluate", "--model", out, "--features", val])
        #expect(run.status == 65 && run.stderr.contains("Retrain it with `sspa train`"), "\(run)")
    }

    @Test func interruptSavesACheckpointAndResumeFinishesIt() throws {
        let train = try features("train-big.safetensors", count: 640, seed: 3)
        let out = dir.appendingPathComponent("runs/interrupted").path
        let (process, o, e) = try SSPABinary.start(SSPABinary.sspa, trainArguments(train, out: out, extra: ["--epochs", "3"]))
        // Wait for the first epoch's checkpoint, then interrupt mid-run.
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: out + "/checkpoint.json") && Date() < deadline && process.isRunning {
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.interrupt()
        let run = SSPABinary.finish(process, o, e)
        #expect(run.status == 130, "\(run)")
        #expect(run.stderr.contains("checkpoint saved to"), "\(run)")
        let state = try #require(try SSPA.Checkpoint.load(from: URL(fileURLWithPath: out)).state)
        #expect(state.step >= 40 && state.step < 120, "\(state)")
        let resumed = try SSPABinary.run(trainArguments(train, out: out, extra: ["--resume"]))
        #expect(resumed.status == 0, "\(resumed)")
        #expect(resumed.stdout.contains("resuming at epoch"), "\(resumed)")
        #expect(try SSPA.Checkpoint.load(from: URL(fileURLWithPath: out)).state?.step == 120)

        // Bit for bit equal to an uninterrupted run.
        let whole = dir.appendingPathComponent("runs/whole").path
        #expect(try SSPABinary.run(trainArguments(train, out: whole, extra: ["--epochs", "3"])).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: SSPA.Checkpoint.currentFolder(whole) + "/model.safetensors")) == Data(contentsOf: URL(fileURLWithPath: SSPA.Checkpoint.currentFolder(out) + "/model.safetensors")))
    }

    @Test func badInputsAreClearErrors() throws {
        let good = try features("good.safetensors", count: 8, seed: 4)
        let out = dir.appendingPathComponent("runs/bad").path

        // Label-set mismatch (other names), encoder mismatch.
        let renamed = try features("renamed.safetensors", count: 8, seed: 4, labels: ["dog", "cat", "car", "tree", "boat", "horse"])
        var run = try SSPABinary.run(trainArguments(renamed, out: out))
        #expect(run.status == 65 && run.stderr.contains("renamed.safetensors: its 6 labels do not match the 6 labels of") && run.stderr.contains("missing bird"), "\(run)")
        let otherEncoder = try features("enc.safetensors", count: 8, seed: 4, encoder: "abc123")
        run = try SSPABinary.run(trainArguments(otherEncoder, out: out))
        #expect(run.status == 65 && run.stderr.contains("encoder abc123"), "\(run)")

        // NaN in the features.
        var data = try SSPA.Features(contentsOf: URL(fileURLWithPath: good))
        data.x0.withUnsafeMutableBufferPointer { $0[20] = .nan }
        let nan = dir.appendingPathComponent("nan.safetensors")
        var writer = SafeTensorsWriter(metadata: ["labels": #"["dog","cat","car","tree","boat","bird"]"#, "encoder_sha256": encoderID])
        writer.add("x0", data.x0)
        writer.add("X", data.regions)
        writer.add("labels", integers: data.labels.scalars.map { Int8($0) }, shape: data.labels.shape, as: .i8)
        try writer.write(to: nan)
        run = try SSPABinary.run(trainArguments(nan.path, out: out))
        #expect(run.status == 65 && run.stderr.contains("nan.safetensors: x0 holds NaN at image 1"), "\(run)")

        // Wrong shapes.
        var shapes = SafeTensorsWriter(metadata: writer.metadata)
        shapes.add("x0", Tensor(zeros: [8, 16]))
        shapes.add("X", Tensor(zeros: [7, 12, 16]))
        shapes.add("labels", integers: [Int8](repeating: 0, count: 48), shape: [8, 6], as: .i8)
        let wrong = dir.appendingPathComponent("shapes.safetensors")
        try shapes.write(to: wrong)
        run = try SSPABinary.run(trainArguments(wrong.path, out: out))
        #expect(run.status == 65 && run.stderr.contains("X has shape [7, 12, 16] but x0 is [8, 16]"), "\(run)")

        // Empty dataset.
        var empty = SafeTensorsWriter(metadata: writer.metadata)
        empty.add("x0", Tensor(zeros: [0, 16]))
        empty.add("X", Tensor(zeros: [0, 12, 16]))
        empty.add("labels", integers: [Int8](), shape: [0, 6], as: .i8)
        let emptyURL = dir.appendingPathComponent("empty.safetensors")
        try empty.write(to: emptyURL)
        run = try SSPABinary.run(trainArguments(emptyURL.path, out: out))
        #expect(run.status == 65 && run.stderr.contains("empty.safetensors: the dataset is empty"), "\(run)")

        // Unknown label set, missing files, bad ablation.
        run = try SSPABinary.run(["train", "--features", good, "--knowledge", db, "--label-set", "voc", "--clip", clip, "--out", out])
        #expect(run.status == 65 && run.stderr.contains("no label set 'voc'") && run.stderr.contains("syn"), "\(run)")
        run = try SSPABinary.run(trainArguments(dir.appendingPathComponent("missing.safetensors").path, out: out))
        #expect(run.status == 66 && run.stderr.contains("no such training features file"), "\(run)")
        run = try SSPABinary.run(trainArguments(good, out: out, extra: ["--ablate", "no-foo"]))
        #expect(run.status == 64 && run.stderr.contains("unknown ablation 'no-foo'"), "\(run)")
        run = try SSPABinary.run(trainArguments(good, out: out, extra: ["--ablate", "sharp,aggregator=max"]))
        #expect(run.status == 64 && run.stderr.contains("sharp"), "\(run)")

        // Evaluating: not a checkpoint; a checkpoint whose parameters belong to another config.
        run = try SSPABinary.run(["evaluate", "--model", dir.path, "--features", good])
        #expect(run.status == 65 && run.stderr.contains("config.json is missing"), "\(run)")
        #expect(try SSPABinary.run(trainArguments(good, out: out, extra: ["--epochs", "1"])).status == 0)
        let configURL = URL(fileURLWithPath: out + "/config.json")
        var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        var model = manifest["model"] as! [String: Any]
        model["no_gdma"] = true
        manifest["model"] = model
        try JSONSerialization.data(withJSONObject: manifest).write(to: configURL)
        run = try SSPABinary.run(["evaluate", "--model", out, "--features", good])
        #expect(run.status == 65 && run.stderr.contains("another config"), "\(run)")
    }
}
