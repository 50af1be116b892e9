import Foundation
import Images
import Tensor
import TestSupport
import Testing
@testable import SSPA

private let wordnetPresent = FileManager.default.fileExists(atPath: "/usr/share/wordnet")

/// Issue 11 §1 and §2 through the `sspa` binary, on PNGs and the tiny CLIP: `features --shard I/N` and `auto/N`
/// (SLURM, Kubernetes), a folder of shards trained and evaluated as the single file, a finished shard never redone,
/// an interrupted one continued, and `train --max-steps`.
@Suite("sspa features --shard, train and evaluate on shards", .serialized,
       .enabled(if: SyntheticData.available && wordnetPresent, "needs the tiny CLIP fixture and WordNet"))
final class ShardingCLITests {
    let dir: URL
    let db: String
    let clip = SyntheticData.checkpoint

    init() throws {
        dir = try temporaryDirectory()
        db = dir.appendingPathComponent("knowledge.db").path
        let labels = dir.appendingPathComponent("shapes.txt")
        try Data((ShapeImages.labelNames.joined(separator: "\n") + "\n").utf8).write(to: labels)
        let build = try SSPABinary.run(SSPABinary.knowledge, ["build", "--labels", labels.path, "--db", db, "--quiet"])
        precondition(build.status == 0, "\(build)")
        let encode = try SSPABinary.run(SSPABinary.knowledge, ["encode", "--clip", clip, "--label-set", "shapes", "--db", db, "--quiet"])
        precondition(encode.status == 0, "\(encode)")
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// `count` generated PNGs and a CSV manifest of them.
    func manifest(count: Int) throws -> String {
        var gen = ShapeImages(state: 4)
        try FileManager.default.createDirectory(atPath: path("images"), withIntermediateDirectories: true)
        var lines = ["path,labels"]
        for n in 0..<count {
            let (image, labels) = gen.make()
            try Images.PNGWriter.write(image, to: dir.appendingPathComponent("images/\(n).png"))
            lines.append("images/\(n).png,\(labels.joined(separator: ";"))")
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path("train.csv")))
        return path("train.csv")
    }

    func features(_ manifest: String, out: String, _ extra: [String] = []) -> [String] {
        ["features", "--clip", clip, "--knowledge", db, "--label-set", "shapes", "--manifest", manifest, "--out", out,
         "--quiet", "--batch", "2"] + extra
    }

    /// The environment without any shard index, plus `extra`.
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        for name in SSPA.Shard.environmentVariables { env[name] = nil }
        return env.merging(extra) { $1 }
    }

    func run(_ arguments: [String], environment extra: [String: String] = [:]) throws -> SSPARun {
        let (p, o, e) = try Processes.start(SSPABinary.sspa, arguments, environment: environment(extra), cwd: Repo.root)
        return Processes.finish(p, o, e)
    }

    func train(_ features: [String], out: String, _ extra: [String] = []) -> [String] {
        ["train", "--features"] + features + ["--knowledge", db, "--label-set", "shapes", "--clip", clip, "--out", out,
         "--batch", "3", "--epochs", "2", "--lr", "0.01", "--seed", "2", "--shuffle-block", "4", "--quiet"] + extra
    }

    func model(_ out: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: SSPA.Checkpoint.currentFolder(out) + "/model.safetensors"))
    }

    @Test func shardsExtractedApartTrainAndEvaluateAsTheWholeManifest() throws {
        let csv = try manifest(count: 10)
        let whole = path("whole.safetensors"), shards = path("shards")
        var result = try run(features(csv, out: whole))
        #expect(result.status == 0, "\(result)")

        // Shard 1 by number, 2 from SLURM (counted from 0), 3 from a Kubernetes Indexed Job, 4 interrupted and resumed.
        result = try run(features(csv, out: shards, ["--shard", "1/4"]))
        #expect(result.status == 0 && result.stdout.contains("shard 1/4 (images 1–2 of 10)"), "\(result)")
        result = try run(features(csv, out: shards, ["--shard", "auto/4"]), environment: ["SLURM_ARRAY_TASK_ID": "1"])
        #expect(result.status == 0 && result.stdout.contains("shard 2/4 (images 3–4 of 10)"), "\(result)")
        result = try run(features(csv, out: shards, ["--shard", "auto/4"]), environment: ["JOB_COMPLETION_INDEX": "2"])
        #expect(result.status == 0 && result.stdout.contains("shard 3/4 (images 5–6 of 10)"), "\(result)")
        let fourth = shards + "/shard-00004-of-00004.safetensors"
        result = try run(features(csv, out: shards, ["--shard", "4/4", "--stop-after", "1"]))
        #expect(result.status == 130 && !FileManager.default.fileExists(atPath: fourth), "\(result)")
        // An unfinished shard: the folder is not a dataset yet.
        result = try run(train([shards], out: path("runs/early")))
        #expect(result.status == 65 && result.stderr.contains("missing 1 of its 4 shards") && result.stderr.contains("still being extracted"), "\(result)")
        result = try run(features(csv, out: shards, ["--shard", "4/4"]))
        #expect(result.status == 0 && result.stdout.contains("resuming") && result.stdout.contains("images 7–10 of 10"), "\(result)")

        // A finished shard is never extracted again.
        let first = shards + "/shard-00001-of-00004.safetensors"
        let before = try Data(contentsOf: URL(fileURLWithPath: first))
        let modified = try FileManager.default.attributesOfItem(atPath: first)[.modificationDate] as? Date
        result = try run(features(csv, out: shards, ["--shard", "auto/4"]), environment: ["SLURM_ARRAY_TASK_ID": "0"])
        #expect(result.status == 0 && result.stdout.contains("already extracted") && result.stdout.contains("nothing to do"), "\(result)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: first)) == before)
        #expect(try FileManager.default.attributesOfItem(atPath: first)[.modificationDate] as? Date == modified)
        result = try run(features(csv, out: shards, ["--shard", "1/4", "--partial"]))
        #expect(result.status == 73 && result.stderr.contains("made from other inputs"), "\(result)")

        // Read in order, the shards are the whole file: same images, same order, same floats.
        let one = try SSPA.Features(contentsOf: URL(fileURLWithPath: whole))
        let four = try SSPA.FeaturesDataset(path: shards)
        #expect(four.count == 10 && four.files.map(\.count) == [2, 2, 2, 4])
        let a = one.batch(Array(0..<10)), b = try four.batch(Array(0..<10))
        #expect(a.x0.scalars == b.x0.scalars && a.regions.scalars == b.regions.scalars && a.labels.scalars == b.labels.scalars)
        let paths = try four.files.flatMap { try SSPA.Features(contentsOf: URL(fileURLWithPath: $0.path)).imagePaths }
        #expect(paths == one.imagePaths)

        // Trained as a folder, as the four files listed, or as the one file: the same weights, bit for bit.
        result = try run(train([whole], out: path("runs/whole")))
        #expect(result.status == 0, "\(result)")
        result = try run(train([shards], out: path("runs/shards")))
        #expect(result.status == 0 && result.stdout.contains("on 10 images"), "\(result)")
        let listed = (1...4).map { shards + "/" + SSPA.Shard(index: $0, count: 4).fileName }
        result = try run(train(listed, out: path("runs/listed")))
        #expect(result.status == 0, "\(result)")
        #expect(try model(path("runs/whole")) == model(path("runs/shards")))
        #expect(try model(path("runs/whole")) == model(path("runs/listed")))

        // Evaluated as a folder or as the file: the same report.
        let zeroShot = ["evaluate", "--zero-shot", "--knowledge", db, "--label-set", "shapes", "--clip", clip, "--json", "--features"]
        let onFile = try run(zeroShot + [whole]), onFolder = try run(zeroShot + [shards])
        #expect(onFile.status == 0 && onFolder.status == 0 && onFile.stdout == onFolder.stdout, "\(onFile)\n\(onFolder)")
        let evaluated = try run(["evaluate", "--model", path("runs/shards"), "--json", "--features", shards])
        let evaluatedFile = try run(["evaluate", "--model", path("runs/whole"), "--json", "--features", whole])
        #expect(evaluated.status == 0 && evaluated.stdout == evaluatedFile.stdout, "\(evaluated)")

        // --max-steps: stops with a checkpoint, and --resume finishes as the uninterrupted run did.
        result = try run(train([shards], out: path("runs/stepped"), ["--max-steps", "3"]))
        #expect(result.status == 0 && result.stdout.contains("stopped after step 3 of 8 (--max-steps)"), "\(result)")
        let state = try #require(try SSPA.Checkpoint.load(from: URL(fileURLWithPath: path("runs/stepped"))).state)
        #expect(state.step == 3 && state.epoch == 0 && state.batchInEpoch == 3)
        result = try run(train([shards], out: path("runs/stepped"), ["--max-steps", "3", "--resume"]))
        #expect(result.status == 0 && result.stdout.contains("nothing to do"), "\(result)")
        result = try run(train([shards], out: path("runs/stepped"), ["--resume"]))
        #expect(result.status == 0, "\(result)")
        #expect(try model(path("runs/stepped")) == model(path("runs/whole")))
    }

    @Test func badShardValuesAreRefusedClearly() throws {
        let csv = try manifest(count: 3)
        let out = path("bad")
        var result = try run(features(csv, out: out, ["--shard", "5/4"]))
        #expect(result.status == 64 && result.stderr.contains("shard 5 does not exist; shards are numbered 1 to 4"), "\(result)")
        result = try run(features(csv, out: out, ["--shard", "auto/4"]))
        #expect(result.status == 64 && result.stderr.contains("neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set"), "\(result)")
        result = try run(features(csv, out: out, ["--shard", "auto/4"]), environment: ["SLURM_ARRAY_TASK_ID": "4"])
        #expect(result.status == 64 && result.stderr.contains("--array=0-3"), "\(result)")
        result = try run(features(csv, out: out, ["--shard", "4/4"]))
        #expect(result.status == 64 && result.stderr.contains("make 2 batch(es) of --batch 2, fewer than 4 shards"), "\(result)")
        try Data().write(to: URL(fileURLWithPath: path("file")))
        result = try run(features(csv, out: path("file"), ["--shard", "1/2"]))
        #expect(result.status == 73 && result.stderr.contains("with --shard, --out names the folder"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
