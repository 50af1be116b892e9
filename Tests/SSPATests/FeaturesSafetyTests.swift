import Foundation
import Images
import Knowledge
import Tensor
import TestSupport
import Testing
@testable import SSPA

private let wordnetPresent = FileManager.default.fileExists(atPath: "/usr/share/wordnet")

/// Issue 10, `sspa features` and `sspa-knowledge export`: outputs never overwrite inputs (B1), a partial folder the
/// tool did not make is never deleted (B2), a partial run is continued only for the same inputs (C6), decompression
/// bombs are skipped from their header (E12), and a full disk or file-size limit is a clear error that leaves
/// earlier files intact (E15).
@Suite("sspa features: outputs, partial folders, limits", .serialized,
       .enabled(if: SyntheticData.available && wordnetPresent, "needs the tiny CLIP fixture and WordNet"))
final class FeaturesSafetyTests {
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

    /// Writes `count` generated PNGs (`width × height`) and a CSV manifest of them; returns the manifest's path.
    func manifest(_ name: String, count: Int, seed: UInt64, width: Int = 40, height: Int = 36) throws -> String {
        var gen = ShapeImages(state: seed)
        try FileManager.default.createDirectory(atPath: path("images"), withIntermediateDirectories: true)
        var lines = ["path,labels"]
        for n in 0..<count {
            let (image, labels) = gen.make(width: width, height: height)
            let file = "images/\(name)-\(n).png"
            try Images.PNGWriter.write(image, to: dir.appendingPathComponent(file))
            lines.append("\(file),\(labels.joined(separator: ";"))")
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path(name + ".csv")))
        return path(name + ".csv")
    }

    func features(_ manifest: String, out: String, _ extra: [String] = []) -> [String] {
        ["features", "--clip", clip, "--knowledge", db, "--label-set", "shapes", "--manifest", manifest, "--out", out, "--quiet"] + extra
    }

    func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    /// B1: `--out` naming the knowledge store, the manifest, an image or a file of the CLIP checkpoint (also through
    /// a symlink or a hard link) is refused before anything is written; so is `export -o` naming its `--db`.
    @Test func outputsNeverOverwriteInputs() throws {
        let csv = try manifest("train", count: 4, seed: 1)
        let before = (db: bytes(db), csv: bytes(csv), image: bytes(path("images/train-0.png")))
        var run = try SSPABinary.run(features(csv, out: db))
        #expect(run.status == 64 && run.stderr.contains("--out \(db) is the same file as --knowledge \(db)"), "\(run)")
        run = try SSPABinary.run(features(csv, out: csv))
        #expect(run.status == 64 && run.stderr.contains("is the same file as --manifest"), "\(run)")
        run = try SSPABinary.run(features(csv, out: path("images/../images/train-0.png")))
        #expect(run.status == 64 && run.stderr.contains("the manifest's image"), "\(run)")
        run = try SSPABinary.run(features(csv, out: clip + "/model.safetensors"))
        #expect(run.status == 64 && run.stderr.contains("--clip"), "\(run)")
        try FileManager.default.createSymbolicLink(atPath: path("alias.db"), withDestinationPath: db)
        run = try SSPABinary.run(features(csv, out: path("alias.db")))
        #expect(run.status == 64 && run.stderr.contains("--knowledge"), "a symlink to the store: \(run)")
        try FileManager.default.linkItem(atPath: csv, toPath: path("hardlink.csv"))
        run = try SSPABinary.run(features(csv, out: path("hardlink.csv")))
        #expect(run.status == 64 && run.stderr.contains("--manifest"), "a hard link to the manifest: \(run)")
        for format in ["csv", "jsonl", "cupl"] {
            run = try SSPABinary.run(SSPABinary.knowledge, ["export", "--db", db, "--format", format, "-o", db])
            #expect(run.status == 64 && run.stderr.contains("-o \(db) is the same file as --db \(db)"), "\(run)")
        }
        #expect(bytes(db) == before.db && bytes(csv) == before.csv && bytes(path("images/train-0.png")) == before.image)
        // A real export still writes through a temporary file and leaves none behind.
        run = try SSPABinary.run(SSPABinary.knowledge, ["export", "--db", db, "--format", "csv", "-o", path("out.csv")])
        #expect(run.status == 0 && bytes(path("out.csv"))?.isEmpty == false, "\(run)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tmp") }.isEmpty)
    }

    /// B2: a pre-existing `OUT.partial/` without the tool's marker is left alone, with a message.
    @Test func aPartialFolderTheToolDidNotMakeIsNeverDeleted() throws {
        let csv = try manifest("val", count: 4, seed: 2)
        let out = path("val.safetensors")
        try FileManager.default.createDirectory(atPath: out + ".partial", withIntermediateDirectories: true)
        try Data("precious".utf8).write(to: URL(fileURLWithPath: out + ".partial/thesis.txt"))
        let run = try SSPABinary.run(features(csv, out: out))
        #expect(run.status == 73 && run.stderr.contains("was not made by `sspa features`") && run.stderr.contains("left alone"), "\(run)")
        #expect(bytes(out + ".partial/thesis.txt") == Data("precious".utf8))
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// C6: a partial run records what it was made from; after the manifest changed (an image relabelled) or
    /// `--partial` or `--regions` differ, it is not continued with stale labels.
    @Test func resumingAfterTheInputsChangedIsRefused() throws {
        let csv = try manifest("resume", count: 6, seed: 3)
        let out = path("resume.safetensors")
        var run = try SSPABinary.run(features(csv, out: out, ["--batch", "2", "--stop-after", "1"]))
        #expect(run.status == 130, "\(run)")
        let state = try JSONDecoder().decode(SSPA.PartialFeatures.Inputs.self, from: bytes(out + ".partial/state.json")!)
        #expect(state.labelSet == "shapes" && !state.partial && state.regions == "patch" && state.manifestSHA256.count == 64)
        for extra in [["--partial"], ["--regions", "value"]] {
            run = try SSPABinary.run(features(csv, out: out, ["--batch", "2"] + extra))
            #expect(run.status == 73 && run.stderr.contains("holds batches made from other inputs"), "\(extra): \(run)")
        }
        // Relabel the first image (its batch is already done).
        var text = String(decoding: bytes(csv)!, as: UTF8.self).components(separatedBy: "\n")
        text[1] = text[1].components(separatedBy: ",")[0] + ",red;blue;circle;square;triangle"
        try Data(text.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: csv))
        run = try SSPABinary.run(features(csv, out: out, ["--batch", "2"]))
        #expect(run.status == 73 && run.stderr.contains("the manifest's content changed") && run.stderr.contains("rm -r"), "\(run)")
        // Deleting it as told starts afresh, with the new labels.
        try FileManager.default.removeItem(atPath: out + ".partial")
        run = try SSPABinary.run(features(csv, out: out, ["--batch", "2"]))
        #expect(run.status == 0, "\(run)")
        let written = try SSPA.Features(contentsOf: URL(fileURLWithPath: out))
        #expect(Array(written.labels.scalars[0..<6]) == [1, 0, 1, 1, 1, 1], "\(written.labelNames)")
    }

    /// B3 for features: what a killed run left (temporary files beside the output and in the partial folder) is
    /// cleaned when the run continues, and the finished output equals an uninterrupted run's.
    @Test func staleTemporariesOfAKilledRunAreCleaned() throws {
        let csv = try manifest("stale", count: 4, seed: 6)
        let out = path("stale.safetensors")
        var run = try SSPABinary.run(features(csv, out: out, ["--batch", "2", "--stop-after", "1"]))
        #expect(run.status == 130, "\(run)")
        let stale = [path(".stale.safetensors.Ab12Cd.tmp"), path(".stale.safetensors.partial.dead.tmp"),
                     out + ".partial/.batch-000001.safetensors.Xy34Zw.tmp"]
        for file in stale { try Data("half".utf8).write(to: URL(fileURLWithPath: file)) }
        try Data("mine".utf8).write(to: URL(fileURLWithPath: path(".other.tmp")))
        run = try SSPABinary.run(features(csv, out: out, ["--batch", "2"]))
        #expect(run.status == 0 && run.stdout.contains("1 of 2 batches already done"), "\(run)")
        for file in stale { #expect(!FileManager.default.fileExists(atPath: file), "\(file)") }
        #expect(FileManager.default.fileExists(atPath: path(".other.tmp")), "only the tool's own temporaries are removed")
        #expect(!FileManager.default.fileExists(atPath: out + ".partial"))
    }

    /// E12: an image over `--max-image-pixels` is skipped from its header and listed like other bad images.
    @Test func imagesOverThePixelLimitAreSkippedAndListed() throws {
        let csv = try manifest("small", count: 2, seed: 4, width: 20, height: 20)
        var gen = ShapeImages(state: 9)
        try Images.PNGWriter.write(gen.make(width: 60, height: 50).0, to: dir.appendingPathComponent("images/big.png"))
        try Data((String(decoding: bytes(csv)!, as: UTF8.self) + "images/big.png,red\n").utf8).write(to: URL(fileURLWithPath: csv))
        var run = try SSPABinary.run(features(csv, out: path("small.safetensors"), ["--max-image-pixels", "1000"]))
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.contains("skipped 1 image") && run.stdout.contains("big.png") && run.stdout.contains("60×50 pixels is more than the limit of 1000"), "\(run)")
        #expect(try SSPA.Features(contentsOf: URL(fileURLWithPath: path("small.safetensors"))).count == 2)
        run = try SSPABinary.run(features(csv, out: path("none.safetensors"), ["--max-image-pixels", "0"]))
        #expect(run.status == 64 && run.stderr.hasPrefix("error: --max-image-pixels 0 is out of range"), "\(run)")
    }

    /// E15: a file-size limit (`ulimit -f`) stops `features` with a clear message; the earlier output is intact and
    /// no temporary file is left. Too little free space for the estimate is refused before the run.
    @Test func aFullDiskIsAClearErrorAndLeavesEarlierFilesIntact() throws {
        // 64 images in one f32 batch make a shard of about 70 KB; the limit (40 KB) still lets SQLite map its files.
        let csv = try manifest("disk", count: 64, seed: 5)
        let out = path("disk.safetensors")
        try Data("an earlier features file".utf8).write(to: URL(fileURLWithPath: out))
        let command = ([SSPABinary.sspa] + features(csv, out: out, ["--batch", "64", "--f32"])).map { "'\($0)'" }.joined(separator: " ")
        var run = try SSPABinary.run("/bin/bash", ["-c", "ulimit -f 40; exec \(command)"])
        #expect(run.status == 74 && run.stderr.contains("file-size limit") && run.stderr.contains("Nothing was half-written"), "\(run)")
        #expect(run.stderr.split(separator: "\n").count == 1 && run.stderr.hasPrefix("error: "), "one line: \(run.stderr)")
        #expect(bytes(out) == Data("an earlier features file".utf8))
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        run = try SSPABinary.run(features(csv, out: out, ["--assume-free-bytes", "1000"]))
        #expect(run.status == 74 && run.stderr.contains("not enough disk space") && run.stderr.contains("1.0 KB free"), "\(run)")
    }
}
