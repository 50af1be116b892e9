import CLIP
import Foundation
import Images
import Knowledge
import Tensor
import TestSupport
import Testing
@testable import SSPA

private let wordnetPresent = FileManager.default.fileExists(atPath: "/usr/share/wordnet")

/// Issue 10, `sspa train`, `evaluate` and `predict` on hostile inputs: one trainer per folder and checkpoints
/// verified on resume (B3), NaN and infinity named where they enter (C7), a file-size limit (E15), and the smaller
/// ones of E16 (absurd `--epochs`, all-unknown labels, an optimizer file `evaluate` does not need).
@Suite("sspa train, evaluate, predict: hostile inputs", .serialized,
       .enabled(if: SyntheticData.available && wordnetPresent, "needs the tiny CLIP fixture and WordNet"))
final class TrainingSafetyTests {
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

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func features(_ name: String, count: Int = 16, seed: UInt64 = 1, unknown: Bool = false) throws -> String {
        var data = try SyntheticData().make(count: count, directions: try SyntheticData.directions(), seed: seed, encoder: encoderID)
        if unknown { data.labels = Tensor(repeating: -1, shape: data.labels.shape) }
        try data.write(to: dir.appendingPathComponent(name), dtype: .f16)
        return path(name)
    }

    func train(_ features: String, out: String, _ extra: [String] = []) -> [String] {
        ["train", "--features", features, "--knowledge", db, "--label-set", "syn", "--clip", clip, "--out", out,
         "--batch", "8", "--lr", "0.01", "--quiet"] + extra
    }

    /// A PNG to predict on.
    func image() throws -> String {
        var gen = ShapeImages(state: 4)
        try Images.PNGWriter.write(gen.make().0, to: dir.appendingPathComponent("photo.png"))
        return path("photo.png")
    }

    func oneLineError(_ run: SSPARun) -> Bool {
        run.stderr.hasPrefix("error: ") && run.stderr.split(separator: "\n").count == 1
    }

    /// B3: a second trainer on the same `--out` fails at once; a checkpoint whose files do not match its
    /// `checkpoint.json` is refused on `--resume` with a clear message (E16: `evaluate`, which does not need the
    /// optimizer state, still works).
    @Test func oneTrainerPerFolderAndVerifiedResume() throws {
        let train = try features("train.safetensors")
        let out = path("runs/a")
        #expect(try SSPABinary.run(self.train(train, out: out, ["--epochs", "1"])).status == 0)
        let fd = open(out + "/.lock", O_RDWR)
        #expect(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        var run = try SSPABinary.run(self.train(train, out: out, ["--resume"]))
        #expect(run.status == 73 && run.stderr.contains("in use by another `sspa train` process") && oneLineError(run), "\(run)")
        close(fd)

        let step = try SSPA.Checkpoint.currentFolder(out)
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: step + "/optimizer.safetensors"))
        run = try SSPABinary.run(self.train(train, out: out, ["--resume"]))
        #expect(run.status == 65 && run.stderr.contains("optimizer.safetensors does not match checkpoint.json") && oneLineError(run), "\(run)")
        run = try SSPABinary.run(["evaluate", "--model", out, "--features", train])
        #expect(run.status == 0 && run.stdout.contains("mAP"), "evaluate must not read optimizer.safetensors: \(run)")
    }

    /// B3: `kill -9` at any moment, again and again, leaves a checkpoint that `--resume` verifies and continues,
    /// ending bit for bit where an uninterrupted run ends, with no temporaries left behind.
    @Test func repeatedKillsNeverLeaveAMixedCheckpoint() throws {
        let train = try features("many.safetensors", count: 320, seed: 7)
        let out = path("runs/killed")
        let arguments = self.train(train, out: out, ["--epochs", "5", "--seed", "3"])
        let pointer = { FileManager.default.contents(atPath: out + "/checkpoint.json") }
        var kills = 0
        for attempt in 0..<3 {
            let before = pointer()
            let (process, o, e) = try SSPABinary.start(SSPABinary.sspa, arguments + (before != nil ? ["--resume"] : []))
            // Wait for one more save, then kill it at a varying moment of the next epoch.
            let deadline = Date().addingTimeInterval(60)
            while pointer() == before && process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
            Thread.sleep(forTimeInterval: 0.05 * Double(attempt))
            guard process.isRunning else { _ = SSPABinary.finish(process, o, e); break }
            kill(process.processIdentifier, SIGKILL)
            _ = SSPABinary.finish(process, o, e)
            #expect(process.terminationReason == .uncaughtSignal)
            kills += 1
            let saved = try SSPA.Checkpoint.load(from: URL(fileURLWithPath: out))
            #expect(saved.state?.step == saved.optimizer?.step && saved.state?.epoch == attempt + 1, "kill \(kills)")
        }
        #expect(kills == 3)
        let resume = FileManager.default.fileExists(atPath: out + "/checkpoint.json")
        let finish = try SSPABinary.run(arguments + (resume ? ["--resume"] : []))
        #expect(finish.status == 0, "\(finish)")
        let whole = path("runs/whole")
        #expect(try SSPABinary.run(self.train(train, out: whole, ["--epochs", "5", "--seed", "3"])).status == 0)
        let model = { (dir: String) in try Data(contentsOf: URL(fileURLWithPath: SSPA.Checkpoint.currentFolder(dir) + "/model.safetensors")) }
        #expect(try model(out) == model(whole), "after \(kills) kills")
        let left = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".tmp") || $0.hasPrefix("step-") }
        #expect(left.count == 1 && left[0].hasPrefix("step-"), "\(left)")
    }

    /// C7: `--lr 1e30` stops with a clear message and saves no diverged checkpoint; NaN knowledge in the store is
    /// named by label in `train` and `predict`; NaN parameters in a checkpoint are named by tensor.
    @Test func nonFiniteValuesAreNamedNeverUsed() throws {
        let train = try features("train.safetensors")
        let diverged = path("runs/diverged")
        var run = try SSPABinary.run(self.train(train, out: diverged, ["--lr", "1e30", "--epochs", "3"]))
        #expect(run.status == 65 && run.stderr.contains("diverged") && run.stderr.contains("Lower --lr") && oneLineError(run), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: diverged + "/checkpoint.json"), "no diverged checkpoint is saved")

        let out = path("runs/good")
        #expect(try SSPABinary.run(self.train(train, out: out, ["--epochs", "1"])).status == 0)
        let photo = try image()
        // NaN model parameters (the file's hash updated, as if written so).
        let step = try SSPA.Checkpoint.currentFolder(out)
        let modelURL = URL(fileURLWithPath: step + "/model.safetensors")
        let config = try SSPA.Checkpoint.load(from: URL(fileURLWithPath: out)).manifest.model
        let originalModel = try Data(contentsOf: modelURL)
        var parameters = try SSPA.Parameters(contentsOf: modelURL, config: config)
        parameters.tensors["region.bias"] = Tensor([.nan], shape: [1])
        try parameters.save(to: modelURL)
        let pointerURL = URL(fileURLWithPath: out + "/checkpoint.json")
        var pointer = try JSONDecoder().decode(SSPA.Checkpoint.Pointer.self, from: Data(contentsOf: pointerURL))
        let original = pointer
        pointer.sha256["model.safetensors"] = SHA256.hex(try Data(contentsOf: modelURL))
        try JSONEncoder().encode(pointer).write(to: pointerURL)
        run = try SSPABinary.run(["predict", "--model", out, photo])
        #expect(run.status == 65 && run.stderr.contains("parameter region.bias holds NaN") && oneLineError(run), "\(run)")
        #expect(!run.stdout.contains("\"labels\""), "\(run)")
        try JSONEncoder().encode(original).write(to: pointerURL)
        try originalModel.write(to: modelURL)

        // NaN knowledge for 'cat' in the store.
        let whereCat = "WHERE label_id IN (SELECT id FROM labels WHERE raw_name = 'cat')"
        let hex = try SSPABinary.run("/usr/bin/sqlite3", [db, "SELECT hex(vector) FROM knowledge_vectors \(whereCat)"])
        let nanFirst = "0000C07F" + hex.stdout.trimmingCharacters(in: .whitespacesAndNewlines).dropFirst(8)
        let update = try SSPABinary.run("/usr/bin/sqlite3", [db, "UPDATE knowledge_vectors SET vector = X'\(nanFirst)' \(whereCat)"])
        #expect(update.status == 0, "\(update)")
        run = try SSPABinary.run(self.train(train, out: path("runs/nan"), ["--epochs", "1"]))
        #expect(run.status == 65 && run.stderr.contains("the knowledge vector of label 'cat' holds NaN") && oneLineError(run), "\(run)")
        let other = try SSPABinary.run(["predict", "--model", out, "--label-set", "syn", "--knowledge", db, photo])
        #expect(other.status == 65 && other.stderr.contains("the knowledge vector of label 'cat' holds NaN") && oneLineError(other), "\(other)")
    }

    /// B1 for `predict --explain`: a heat map never replaces an input image, and `--explain` naming a file is an error.
    @Test func explanationsNeverOverwriteImages() throws {
        let train = try features("train.safetensors")
        let out = path("runs/explain")
        #expect(try SSPABinary.run(self.train(train, out: out, ["--epochs", "1"])).status == 0)
        let photo = try image()
        // The first image's heat map would be 0000-photo.png, which is the second image.
        try FileManager.default.copyItem(atPath: photo, toPath: path("0000-photo.png"))
        let before = try Data(contentsOf: URL(fileURLWithPath: path("0000-photo.png")))
        var run = try SSPABinary.run(["predict", "--model", out, "--explain", dir.path, photo, path("0000-photo.png")])
        #expect(run.status == 64 && run.stderr.contains("--explain \(path("0000-photo.png")) is the same file as image") && oneLineError(run), "\(run)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path("0000-photo.png"))) == before)
        run = try SSPABinary.run(["predict", "--model", out, "--explain", photo, photo])
        #expect(run.status == 73 && run.stderr.contains("is a file") && oneLineError(run), "\(run)")
    }

    /// E15: a file-size limit while saving a checkpoint is a clear error, and nothing half-written is left.
    @Test func aFileSizeLimitWhileSavingIsAClearError() throws {
        let train = try features("train.safetensors")
        // A store in rollback-journal mode, so reading it writes nothing (no WAL index to map).
        let store = path("plain.db")
        try FileManager.default.copyItem(atPath: db, toPath: store)
        #expect(try SSPABinary.run("/usr/bin/sqlite3", [store, "PRAGMA journal_mode=DELETE"]).status == 0)
        let out = path("runs/limited")
        var arguments = self.train(train, out: out, ["--epochs", "1"])
        arguments[arguments.firstIndex(of: db)!] = store
        let command = ([SSPABinary.sspa] + arguments).map { "'\($0)'" }.joined(separator: " ")
        let run = try SSPABinary.run("/bin/bash", ["-c", "ulimit -f 1; exec \(command)"])
        #expect(run.status == 74 && run.stderr.contains("file-size limit") && oneLineError(run), "\(run)")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        #expect(left.allSatisfy { $0 == ".lock" }, "nothing half-written: \(left)")
    }

    /// E16: absurd `--epochs`, labels all unknown.
    @Test func absurdOptionsAndUnlearnableLabelsAreRefused() throws {
        let train = try features("train.safetensors")
        var run = try SSPABinary.run(self.train(train, out: path("runs/e"), ["--epochs", "1000000000000"]))
        #expect(run.status == 64 && run.stderr.contains("--epochs 1000000000000 is out of range") && oneLineError(run), "\(run)")
        // B1: --out naming an input (the features file, the CLIP folder) is refused before anything is written.
        let before = try Data(contentsOf: URL(fileURLWithPath: train))
        run = try SSPABinary.run(self.train(train, out: train, ["--epochs", "1"]))
        #expect(run.status == 64 && run.stderr.contains("is the same file as --features") && oneLineError(run), "\(run)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: train)) == before)
        run = try SSPABinary.run(self.train(train, out: clip, ["--epochs", "1"]))
        #expect(run.status == 64 && run.stderr.contains("is the same file as --clip") && oneLineError(run), "\(run)")
        let unknown = try features("unknown.safetensors", unknown: true)
        run = try SSPABinary.run(self.train(unknown, out: path("runs/u"), ["--epochs", "1"]))
        #expect(run.status == 65 && run.stderr.contains("every label of every image is unknown") && oneLineError(run), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: path("runs/u/checkpoint.json")))
    }

    /// D11: broken vision configs, absurd numeric options and broken files never crash `sspa` (no exit 132, 134 or
    /// 139); each is one `error:` line (or, for values the parser itself rejects, its usage message).
    @Test func aCorpusOfBrokenInputsNeverCrashes() throws {
        let train = try features("train.safetensors")
        let photo = try image()
        let out = path("runs/corpus")
        #expect(try SSPABinary.run(self.train(train, out: out, ["--epochs", "1"])).status == 0)
        try Data("images/x.png,dog\n".utf8).write(to: URL(fileURLWithPath: path("m.csv")))

        // Broken vision configs: a copy of the tiny checkpoint with one key changed.
        let brokenVision: [(String, Any)] = [
            ("num_attention_heads", 0), ("num_attention_heads", 5), ("num_hidden_layers", -1), ("num_hidden_layers", 0),
            ("patch_size", 0), ("patch_size", 64), ("image_size", -3), ("hidden_size", 0), ("intermediate_size", -1),
            ("projection_dim", 0), ("num_channels", 4), ("layer_norm_eps", -1), ("hidden_size", "wide"),
            ("num_hidden_layers", 9_223_372_036_854_775_807),
        ]
        var cases: [(String, [String], String?)] = []
        for (n, (key, value)) in brokenVision.enumerated() {
            let folder = path("clip-\(n)")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for file in ["model.safetensors", "vocab.json", "merges.txt"] {
                try FileManager.default.createSymbolicLink(atPath: folder + "/" + file, withDestinationPath: clip + "/" + file)
            }
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: clip + "/config.json"))) as! [String: Any]
            var vision = config["vision_config"] as! [String: Any]
            vision[key] = value
            config["vision_config"] = vision
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: folder + "/config.json"))
            cases.append(("vision \(key) = \(value)", ["features", "--clip", folder, "--knowledge", db, "--label-set", "syn",
                                                          "--manifest", path("m.csv"), "--out", path("f.safetensors")], "vision_config.\(key)"))
        }
        // Absurd numeric options.
        let huge = "9223372036854775807"
        cases += [
            ("train --batch max", self.train(train, out: path("runs/x")) + ["--batch", huge], "--batch"),
            ("train --epochs 1e12", self.train(train, out: path("runs/x"), ["--epochs", "1000000000000"]), "--epochs"),
            ("train --warmup-epochs", self.train(train, out: path("runs/x"), ["--warmup-epochs", huge]), "--warmup-epochs"),
            ("train --lr nan", self.train(train, out: path("runs/x")) + ["--lr", "nan"], "--lr"),
            ("train --lr inf", self.train(train, out: path("runs/x")) + ["--lr", "inf"], "--lr"),
            ("train --weight-decay", self.train(train, out: path("runs/x"), ["--weight-decay", "-1"]), nil),
            ("train --knowledge-run 0", self.train(train, out: path("runs/x"), ["--knowledge-run", "0"]), "--knowledge-run"),
            ("features --batch max", ["features", "--clip", clip, "--knowledge", db, "--label-set", "syn", "--manifest", path("m.csv"), "--out", path("f.safetensors"), "--batch", huge], "--batch"),
            ("features --stop-after", ["features", "--clip", clip, "--knowledge", db, "--label-set", "syn", "--manifest", path("m.csv"), "--out", path("f.safetensors"), "--stop-after", huge], "--stop-after"),
            ("evaluate --batch 0", ["evaluate", "--model", out, "--features", train, "--batch", "0"], "--batch"),
            ("predict --batch max", ["predict", "--model", out, "--batch", huge, photo], "--batch"),
            ("predict --top-k 0", ["predict", "--model", out, "--top-k", "0", photo], "--top-k"),
            ("predict --threshold nan", ["predict", "--model", out, "--threshold", "nan", photo], "--threshold"),
            ("predict --max-image-pixels", ["predict", "--model", out, "--max-image-pixels", huge + "0", photo], nil),
        ]
        // Broken files: features and checkpoint files that are not safetensors.
        let garbage: [(String, Data)] = [
            ("huge-header", Data([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]) + Data("{}".utf8)),
            ("short", Data([1, 2, 3])), ("bad-json", Data([8, 0, 0, 0, 0, 0, 0, 0]) + Data("{\"x0\":1}".utf8)),
            ("offsets", Data([64, 0, 0, 0, 0, 0, 0, 0]) + Data(#"{"x0":{"dtype":"F32","shape":[99999999,99999999],"data_offsets":[0,4]}}    "#.utf8)),
        ]
        for (name, data) in garbage {
            try data.write(to: URL(fileURLWithPath: path(name + ".safetensors")))
            cases.append(("features file \(name)", ["evaluate", "--model", out, "--features", path(name + ".safetensors")], nil))
            let model = path("model-\(name)")
            try FileManager.default.copyItem(atPath: out, toPath: model)
            let step = try SSPA.Checkpoint.currentFolder(model)
            try data.write(to: URL(fileURLWithPath: step + "/model.safetensors"))
            cases.append(("checkpoint model \(name)", ["evaluate", "--model", model, "--features", train], nil))
        }
        for (name, arguments, key) in cases {
            let run = try SSPABinary.run(arguments)
            #expect(![0, 132, 134, 139].contains(run.status), "\(name): \(run)")
            let ours = run.stderr.hasPrefix("error: ")
            #expect(ours ? oneLineError(run) : run.stderr.hasPrefix("Error: "), "\(name): \(run)")
            if let key { #expect(run.stderr.contains(key), "\(name) should name \(key): \(run)") }
        }
    }
}
