import Foundation
import Images
import Tensor
import TestSupport
import Testing
@testable import SSPA

/// Procedurally drawn images with known labels: one or two filled shapes (circle, square, triangle) in pure colours
/// (red, green, blue) on a grey background with a little noise.
struct ShapeImages {
    static let colours: [(name: String, rgb: (UInt8, UInt8, UInt8))] = [("red", (230, 30, 30)), ("green", (30, 200, 40)), ("blue", (30, 40, 230))]
    static let shapes = ["circle", "square", "triangle"]
    static let labelNames = colours.map(\.name) + shapes

    var generator: SplitMix64

    init(state: UInt64) { generator = SplitMix64(seed: state) }

    mutating func next() -> UInt64 { generator.next() }

    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// An image of `width × height` and its label names.
    mutating func make(width: Int = 40, height: Int = 36) -> (Images.Image, [String]) {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            let grey = UInt8(120 + int(16))
            pixels[3 * i] = grey
            pixels[3 * i + 1] = grey
            pixels[3 * i + 2] = grey
        }
        var labels: Set<String> = []
        for _ in 0..<(1 + int(2)) {
            let colour = Self.colours[int(3)], shape = Self.shapes[int(3)]
            labels.insert(colour.name)
            labels.insert(shape)
            let r = 6 + int(6)
            let cx = r + int(max(1, width - 2 * r)), cy = r + int(max(1, height - 2 * r))
            for y in 0..<height {
                for x in 0..<width {
                    let dx = x - cx, dy = y - cy
                    let inside: Bool
                    switch shape {
                    case "circle": inside = dx * dx + dy * dy <= r * r
                    case "square": inside = abs(dx) <= r && abs(dy) <= r
                    default: inside = dy <= r && dy >= -r && 2 * abs(dx) <= dy + r
                    }
                    if inside {
                        let i = 3 * (y * width + x)
                        pixels[i] = colour.rgb.0
                        pixels[i + 1] = colour.rgb.1
                        pixels[i + 2] = colour.rgb.2
                    }
                }
            }
        }
        return (Images.Image(width: width, height: height, pixels: pixels), labels.sorted())
    }
}

private let wordnetAvailable = FileManager.default.fileExists(atPath: "/usr/share/wordnet")

/// Issue 5, section 5: a new domain through the whole path with the tiny random CLIP — label file, `sspa-knowledge
/// build` (WordNet), `encode`, generated images, `sspa features`, `train`, `evaluate`, `predict --explain`, and
/// zero-shot `predict --label-set`. It asserts plumbing and a learning signal on the generated data, not accuracy.
@Suite("end to end: images to labels", .serialized,
       .enabled(if: SyntheticData.available && wordnetAvailable, "needs the tiny CLIP fixture and WordNet"))
final class EndToEndTests {
    let dir: URL
    let clip = SyntheticData.checkpoint

    init() throws { dir = try temporaryDirectory() }
    deinit {
        // SSPA_KEEP_E2E=1 keeps the run (images, features, checkpoint, explanation PNGs) for a look by hand.
        if ProcessInfo.processInfo.environment["SSPA_KEEP_E2E"] == "1" {
            print("end-to-end run kept in \(dir.path)")
        } else {
            try? FileManager.default.removeItem(at: dir)
        }
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func knowledge(_ arguments: [String]) throws -> SSPARun {
        try SSPABinary.run(SSPABinary.knowledge, arguments)
    }

    /// Writes `count` generated PNGs into `images/<prefix>-n.png`; returns their relative paths and labels.
    func generate(_ prefix: String, count: Int, seed: UInt64) throws -> [(String, [String])] {
        var gen = ShapeImages(state: seed)
        let folder = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return try (0..<count).map { n in
            let (image, labels) = gen.make()
            let name = "images/\(prefix)-\(n).png"
            try Images.PNGWriter.write(image, to: dir.appendingPathComponent(name))
            return (name, labels)
        }
    }

    @Test func newDomainFromImagesToExplainedPredictions() throws {
        let db = path("knowledge.db")
        // 1–2. Label file, knowledge (WordNet), 3. encode with the tiny CLIP.
        try Data((ShapeImages.labelNames.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path("shapes.txt")))
        var run = try knowledge(["build", "--labels", path("shapes.txt"), "--db", db, "--quiet"])
        #expect(run.status == 0, "\(run)")
        run = try knowledge(["encode", "--clip", clip, "--label-set", "shapes", "--db", db, "--quiet"])
        #expect(run.status == 0, "\(run)")

        // 4. Manifests of generated images: JSON for training (plus one corrupt file), CSV for validation.
        let train = try generate("train", count: 64, seed: 1)
        let val = try generate("val", count: 24, seed: 2)
        try Data("this is not an image".utf8).write(to: URL(fileURLWithPath: path("images/broken.png")))
        let trainJSON: [String: Any] = ["classes": ShapeImages.labelNames,
                                        "images": (train + [("images/broken.png", ["red"])]).map { [$0.0, $0.1] }]
        try JSONSerialization.data(withJSONObject: trainJSON).write(to: URL(fileURLWithPath: path("train.json")))
        let csv = "path,labels\n" + val.map { "\($0.0),\($0.1.joined(separator: ";"))" }.joined(separator: "\n") + "\n"
        try Data(csv.utf8).write(to: URL(fileURLWithPath: path("val.csv")))

        // 5a. Features: the corrupt image is skipped and listed; f16 by default.
        let features = ["features", "--clip", clip, "--knowledge", db, "--label-set", "shapes", "--quiet"]
        run = try SSPABinary.run(features + ["--manifest", path("train.json"), "--out", path("train.safetensors"), "--batch", "16"])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.contains("64 images × 16 regions, d = 16, 6 labels of 'shapes'"), "\(run)")
        #expect(run.stdout.contains("skipped 1 image") && run.stdout.contains("broken.png"), "\(run)")
        let trainFeatures = try SSPA.Features(contentsOf: URL(fileURLWithPath: path("train.safetensors")))
        #expect(trainFeatures.count == 64 && trainFeatures.regionCount == 16 && trainFeatures.labelNames == ShapeImages.labelNames)
        #expect(try SafeTensors(path: path("train.safetensors")).entry("X").dtype == .f16)
        #expect(trainFeatures.regionMode == "patch", "the features file records how its regions were made")
        for (row, (name, labels)) in train.enumerated() {
            #expect(trainFeatures.imagePaths[row].hasSuffix(name))
            let expected = ShapeImages.labelNames.map { Float(labels.contains($0) ? 1 : 0) }
            #expect(Array(trainFeatures.labels.scalars[(row * 6)..<((row + 1) * 6)]) == expected)
        }

        // Resumable: stop after one batch of 8, then continue; the result equals an uninterrupted run.
        let valArgs = features + ["--manifest", path("val.csv"), "--out", path("val.safetensors"), "--batch", "8"]
        run = try SSPABinary.run(valArgs + ["--stop-after", "1"])
        #expect(run.status == 130 && run.stderr.contains("run the same command again to continue"), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: path("val.safetensors")))
        run = try SSPABinary.run(valArgs)
        #expect(run.status == 0 && run.stdout.contains("resuming") && run.stdout.contains("1 of 3 batches already done"), "\(run)")
        run = try SSPABinary.run(features + ["--manifest", path("val.csv"), "--out", path("val-whole.safetensors"), "--batch", "8"])
        #expect(run.status == 0, "\(run)")
        let resumed = try SSPA.Features(contentsOf: URL(fileURLWithPath: path("val.safetensors")))
        let whole = try SSPA.Features(contentsOf: URL(fileURLWithPath: path("val-whole.safetensors")))
        #expect(resumed.x0.scalars == whole.x0.scalars && resumed.regions.scalars == whole.regions.scalars && resumed.count == 24)
        #expect(!FileManager.default.fileExists(atPath: path("val.safetensors.partial")))

        // 5b. Train a few epochs on what `features` wrote.
        let out = path("runs/shapes")
        run = try SSPABinary.run(["train", "--features", path("train.safetensors"), "--val", path("val.safetensors"),
                                  "--knowledge", db, "--label-set", "shapes", "--clip", clip, "--out", out,
                                  "--epochs", "6", "--batch", "16", "--lr", "0.01", "--seed", "3", "--quiet"])
        #expect(run.status == 0, "\(run)")
        let losses = run.stdout.split(separator: "\n").compactMap { line -> Double? in
            guard let range = line.range(of: "train loss ") else { return nil }
            return Double(line[range.upperBound...].prefix { !$0.isWhitespace })
        }
        #expect(losses.count == 6, "\(run)")
        if let first = losses.first, let last = losses.last { #expect(last < first, "training loss should fall: \(losses)") }

        // 5c. Evaluate on the validation features.
        run = try SSPABinary.run(["evaluate", "--model", out, "--features", path("val.safetensors"), "--json"])
        #expect(run.status == 0, "\(run)")
        let report = try JSONDecoder().decode(SSPA.Metrics.Report.self, from: Data(run.stdout.utf8))
        #expect(report.samples == 24 && report.labels == 6)
        #expect(report.mAP.map { $0.isFinite && $0 > 0 } == true, "\(run.stdout)")
        // The checkpoint remembers the region mode; features of the other mode are refused with the fix.
        #expect(try SSPA.Checkpoint.load(from: URL(fileURLWithPath: out)).manifest.regionMode == "patch")
        run = try SSPABinary.run(features + ["--manifest", path("val.csv"), "--out", path("val-value.safetensors"), "--regions", "value"])
        #expect(run.status == 0, "\(run)")
        run = try SSPABinary.run(["evaluate", "--model", out, "--features", path("val-value.safetensors")])
        #expect(run.status == 65 && run.stderr.contains("--regions value") && run.stderr.contains("sspa features --regions patch"), "\(run)")

        // 5d. Predict with explanations: one JSON line per decodable image, a PNG per image that decodes.
        let explain = path("explain")
        let images = val.prefix(3).map { path($0.0) } + [path("images/broken.png")]
        run = try SSPABinary.run(["predict", "--model", out, "--explain", explain, "--top-k", "2"] + images)
        #expect(run.status == 0, "\(run)")
        #expect(!run.stderr.contains("trained on --regions"), "predict takes the model's region mode by default: \(run)")
        #expect(run.stderr.contains("skipped") && run.stderr.contains("broken.png"), "\(run)")
        let lines = run.stdout.split(separator: "\n")
        #expect(lines.count == 3, "\(run)")
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let labels = try #require(object["labels"] as? [[String: Any]])
            #expect(labels.count == 2)
            for label in labels {
                #expect(ShapeImages.labelNames.contains(label["label"] as? String ?? ""))
                for key in ["probability", "global", "regional", "gate"] {
                    #expect((label[key] as? Double).map { $0 >= 0 && $0 <= 1 } == true, "\(key) in \(line)")
                }
            }
            let png = try #require(object["explanation"] as? String)
            let image = try Images.decode(contentsOf: URL(fileURLWithPath: png))
            #expect(image.height == 128 && image.width == 2 * 128 + 4, "\(image.width)×\(image.height)")
        }

        // Threshold mode, and a folder as input.
        run = try SSPABinary.run(["predict", "--model", out, "--threshold", "0", path("images")])
        #expect(run.status == 0 && run.stdout.split(separator: "\n").count == 64 + 24, "\(run.stderr)")

        // Zero-shot: a new label set from knowledge.db, prompts rebuilt for its names.
        try Data("apple\nbanana\ncherry\n".utf8).write(to: URL(fileURLWithPath: path("fruit.txt")))
        #expect(try knowledge(["build", "--labels", path("fruit.txt"), "--db", db, "--quiet"]).status == 0)
        #expect(try knowledge(["encode", "--clip", clip, "--label-set", "fruit", "--db", db, "--quiet"]).status == 0)
        run = try SSPABinary.run(["predict", "--model", out, "--label-set", "fruit", "--knowledge", db, "--top-k", "3", path(val[0].0)])
        #expect(run.status == 0, "\(run)")
        let zero = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(zero["label_set"] as? String == "fruit")
        #expect(Set(((zero["labels"] as? [[String: Any]]) ?? []).compactMap { $0["label"] as? String }) == ["apple", "banana", "cherry"], "\(run)")

        // Error paths print their messages.
        let bad = "images/train-0.png,purple;circle\n"
        try Data(bad.utf8).write(to: URL(fileURLWithPath: path("bad.csv")))
        run = try SSPABinary.run(features + ["--manifest", path("bad.csv"), "--out", path("bad.safetensors")])
        #expect(run.status == 65 && run.stderr.contains("not in the label set") && run.stderr.contains("'purple'"), "\(run)")
        run = try SSPABinary.run(features + ["--manifest", path("missing.json"), "--out", path("bad.safetensors")])
        #expect(run.status == 66 && run.stderr.contains("cannot read the manifest"), "\(run)")
        try Data("images/broken.png,red\n".utf8).write(to: URL(fileURLWithPath: path("broken.csv")))
        run = try SSPABinary.run(features + ["--manifest", path("broken.csv"), "--out", path("bad.safetensors")])
        #expect(run.status == 65 && run.stderr.contains("no image of") && run.stderr.contains("broken.png"), "\(run)")
        run = try SSPABinary.run(["features", "--clip", clip, "--knowledge", db, "--label-set", "nope", "--manifest", path("val.csv"), "--out", path("bad.safetensors")])
        #expect(run.status == 65 && run.stderr.contains("no label set 'nope'"), "\(run)")
        run = try SSPABinary.run(["predict", "--model", out, path("images/broken.png")])
        #expect(run.status == 65 && run.stderr.contains("broken.png"), "\(run)")
        run = try SSPABinary.run(["predict", "--model", out, path("nothing.png")])
        #expect(run.status == 66 && run.stderr.contains("no such image file or folder"), "\(run)")
        run = try SSPABinary.run(["predict", "--model", out, "--label-set", "nope", "--knowledge", db, path(val[0].0)])
        #expect(run.status == 65 && run.stderr.contains("no label set 'nope'"), "\(run)")
        run = try SSPABinary.run(["predict", "--model", dir.path, path(val[0].0)])
        #expect(run.status == 65 && run.stderr.contains("config.json is missing"), "\(run)")
    }
}
