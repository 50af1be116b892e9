import ArgumentParser
import CLIP
import CommandSupport
import Foundation
import Images
import Knowledge
import SSPA
import Tensor

/// `sspa predict`: labels for image files with a trained checkpoint, one JSON line per image; optionally heat maps of
/// the soft aggregator's region weights ω, and zero-shot prediction of another label set from knowledge.db.
struct Predict: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict labels for images with a trained SSPA checkpoint (one JSON line per image).",
        discussion: """
            Each line holds the image, the predicted labels (probability above --threshold, or the --top-k best) with \
            their probability p, global score sigmoid(s^G), regional score sigmoid(s^R) and GDMA gate g_t. \
            --explain DIR writes DIR/<n>-<name>.png: one panel per predicted label, ω over the image as a heat map. \
            --label-set NEW predicts another label set zero-shot (feeding a new domain into the predictor): its T^ka \
            comes from --knowledge and its class-name prompts are rebuilt for the new names.
            """
    )

    @Option(help: ArgumentHelp("The checkpoint folder `sspa train --out` wrote.", valueName: "dir"))
    var model: String

    @Argument(help: ArgumentHelp("Image files or folders (JPEG, PNG).", valueName: "image"))
    var images: [String]

    @Option(name: .customLong("top-k"), help: ArgumentHelp("Report the k most probable labels instead of thresholding.", valueName: "k"))
    var topK: Int?

    @Option(help: ArgumentHelp("Probability above which a label is predicted (default 0.5).", valueName: "p"))
    var threshold: Float = 0.5

    @Option(help: ArgumentHelp("Write per-image heat maps of ω for the predicted labels into this folder.", valueName: "dir"))
    var explain: String?

    @Option(name: .customLong("label-set"), help: ArgumentHelp("Predict this label set of --knowledge instead (zero-shot).", valueName: "name"))
    var labelSet: String?

    @Option(help: ArgumentHelp("The knowledge store for --label-set.", valueName: "path"))
    var knowledge = "knowledge.db"

    @Option(help: ArgumentHelp("The CLIP checkpoint folder (default: the one the checkpoint was trained with).", valueName: "dir"))
    var clip: String?

    @Option(help: ArgumentHelp("Region features: patch or value (default: what the model's training features used, else patch).", valueName: "mode"))
    var regions: String?

    @Option(help: ArgumentHelp("Images per forward pass.", valueName: "n"))
    var batch = 16

    @Option(name: .customLong("max-image-pixels"), help: ArgumentHelp("Skip images with more pixels than this, read from the header before decoding (Pillow's limit by default).", valueName: "n"))
    var maxImagePixels = Images.Limits.defaultMaxPixels

    func validate() throws {
        try OptionBounds.validating {
            try OptionBounds.check(batch, "--batch", 1...Limits.imageBatch)
            try OptionBounds.check(topK, "--top-k", 1...1_000_000)
            try OptionBounds.check(threshold, "--threshold", 0...1)
            try OptionBounds.check(maxImagePixels, "--max-image-pixels", 1...Images.Limits.largestMaxPixels)
        }
    }

    func run() async throws {
        try await reportingErrors { try predict() }
    }

    static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "jpe"]

    /// The image files of `inputs`: files as given, folders expanded (sorted, recursively, by extension).
    func collectImages() throws -> [URL] {
        let fm = FileManager.default
        var urls: [URL] = []
        for input in images {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: input, isDirectory: &isDirectory) else { throw CLIError("\(input): no such image file or folder", code: 66) }
            if isDirectory.boolValue {
                let found = (fm.enumerator(atPath: input)?.allObjects as? [String] ?? [])
                    .filter { Self.imageExtensions.contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
                    .sorted()
                urls += found.map { URL(fileURLWithPath: input).appendingPathComponent($0) }
            } else {
                urls.append(URL(fileURLWithPath: input))
            }
        }
        guard !urls.isEmpty else { throw CLIError("no images (JPEG or PNG) in \(images.joined(separator: ", "))", code: 66) }
        return urls
    }

    func predict() throws {
        guard batch >= 1 else { throw CLIError("--batch must be at least 1", code: 64) }
        if let topK, topK < 1 { throw CLIError("--top-k must be at least 1", code: 64) }
        guard threshold >= 0, threshold <= 1 else { throw CLIError("--threshold must be in [0, 1]", code: 64) }
        let checkpoint = try SSPA.Checkpoint.load(from: URL(fileURLWithPath: model))
        let manifest = checkpoint.manifest
        let mode = try regionMode(regions ?? manifest.regionMode ?? "patch")
        if let trained = manifest.regionMode, mode.rawValue != trained {
            Console.error("note: \(model) was trained on --regions \(trained) features; predicting with --regions \(mode.rawValue) as asked")
        }
        let clipDirectory = clip ?? manifest.clipDirectory
        guard FileManager.default.fileExists(atPath: clipDirectory) else {
            throw CLIError("the CLIP checkpoint folder \(clipDirectory) is missing; pass --clip DIR", code: 66)
        }
        let encoder = try CLIP.TextEncoder(directory: URL(fileURLWithPath: clipDirectory))
        guard encoder.id == manifest.knowledgeEncoderSHA256 else {
            throw CLIError("the CLIP at \(clipDirectory) has weights \(encoder.id.prefix(12)), but \(model) was trained with \(manifest.knowledgeEncoderSHA256.prefix(12))", code: 65)
        }

        // The label set: the checkpoint's, or a new one zero-shot.
        var labels = manifest.labels, displayNames = manifest.displayNames, knowledgeMatrix = checkpoint.knowledge
        var setName = manifest.labelSet
        if let labelSet {
            let (store, set) = try openLabelSet(labelSet, in: knowledge, missingStore: " (needed for --label-set)")
            guard let (raw, matrix, _) = try store.knowledgeMatrix(labelSet: labelSet, encoderID: encoder.id) else {
                throw CLIError("label set '\(labelSet)' in \(knowledge) has no knowledge vectors for the CLIP at \(clipDirectory) (encoder \(encoder.id.prefix(12))). Run `sspa-knowledge encode --clip \(clipDirectory) --label-set \(labelSet) --db \(knowledge)` first.", code: 65)
            }
            try SSPA.Finite.check(rows: matrix, names: raw) {
                CLIError("\(knowledge) (label set \(labelSet)): \($0); encode the label set again with a sound CLIP checkpoint (`sspa-knowledge encode`)", code: 65)
            }
            labels = raw
            displayNames = raw.map { set.label(named: $0)?.displayName ?? $0 }
            knowledgeMatrix = matrix
            setName = labelSet
        }
        let promptEncoder = try SSPA.PromptEncoder(textModel: encoder.model, tokenizer: encoder.tokenizer,
                                                   displayNames: displayNames, nCtx: manifest.model.nCtx)
        let sspa = try SSPA.Model(config: manifest.model, promptEncoder: promptEncoder, knowledge: knowledgeMatrix)
        let vision = try ImageEncoder(directory: clipDirectory, mode: mode, maxPixels: maxImagePixels)
        guard vision.model.config.projectionDim == manifest.width else {
            throw CLIError("the vision tower of \(clipDirectory) projects to \(vision.model.config.projectionDim), the checkpoint to d = \(manifest.width)", code: 65)
        }
        let urls = try collectImages()
        let explainURL = explain.map { URL(fileURLWithPath: $0) }
        // The heat maps must never land on an input: an image, the checkpoint, the knowledge store.
        let inputs = urls.map { OutputPath.Input("image", $0.path) }
            + ["config.json", "checkpoint.json"].map { OutputPath.Input("--model", URL(fileURLWithPath: model).appendingPathComponent($0).path) }
            + (labelSet != nil ? OutputPath.storeInputs("--knowledge", knowledge) : [])
        if let explain, let explainURL {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: explain, isDirectory: &isDirectory), !isDirectory.boolValue {
                throw CLIError("--explain \(explain) is a file; give a folder for the heat maps", code: 73)
            }
            do { try FileManager.default.createDirectory(at: explainURL, withIntermediateDirectories: true) } catch {
                throw CLIError("--explain \(explain): cannot create the folder (\((error as NSError).localizedFailureReason ?? error.localizedDescription))", code: 73)
            }
        }

        var failed: [String] = []
        var written = 0
        let jsonEncoder = JSONEncoder()
        jsonEncoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var lo = 0
        while lo < urls.count {
            let hi = min(lo + batch, urls.count)
            let chunk = Array(urls[lo..<hi])
            let decoded = vision.decode(chunk, keepCrops: explainURL != nil)
            var good: [(index: Int, url: URL, item: ImageEncoder.Decoded)] = []
            for (i, (url, d)) in zip(chunk, decoded).enumerated() {
                if d.pixels != nil { good.append((lo + i, url, d)) } else {
                    let message = d.error ?? "\(url.path): cannot decode"
                    failed.append(message)
                    Console.error("skipped: \(message)")
                }
            }
            lo = hi
            if good.isEmpty { continue }
            let features = vision.encode(good.map { $0.item.pixels! })
            let tape = Tape()
            let out = sspa.forward(sspa.variables(checkpoint.parameters, on: tape, trainable: false), x0: features.x0,
                                   regions: features.regions, labels: nil, on: tape)
            let c = labels.count, m = features.regions.shape[1]
            if let bad = SSPA.Finite.firstBad(out.probabilities) {
                throw CLIError("\(model): the model gives \(bad.what) for \(good[bad.index / c].url.path) (label \(labels[bad.index % c])); the checkpoint, the knowledge or the CLIP weights hold non-finite values", code: 65)
            }
            let p = out.probabilities.scalars
            let regional = Ops.sigmoid(out.regionLogits.value).scalars
            let global = out.globalLogits.map { Ops.sigmoid($0.value).scalars }
            let gates = out.labelGates?.scalars
            let omega = out.omega.scalars // [B, M, C]
            for (b, entry) in good.enumerated() {
                let row = Array(p[(b * c)..<((b + 1) * c)])
                let order = row.indices.sorted { row[$0] > row[$1] }
                let chosen = topK.map { Array(order.prefix($0)) } ?? order.filter { row[$0] > threshold }
                var prediction = Prediction(image: entry.url.path, labelSet: setName, labels: chosen.map { j in
                    PredictedLabel(label: labels[j], display: displayNames[j], probability: Double(row[j]),
                                   global: global.map { Double($0[b * c + j]) }, regional: Double(regional[b * c + j]),
                                   gate: gates.map { Double($0[b * c + j]) })
                })
                if let explainURL, let crop = entry.item.crop {
                    // Explain the predicted labels, or the most probable one when none passes the threshold.
                    let explained = chosen.isEmpty ? [order[0]] : chosen
                    let maps = explained.map { j in (0..<m).map { omega[(b * m + $0) * c + j] } }
                    let name = String(format: "%04ld-", entry.index) + entry.url.deletingPathExtension().lastPathComponent + ".png"
                    let file = explainURL.appendingPathComponent(name)
                    try OutputPath.refuseOverwriting(file.path, option: "--explain", inputs: inputs)
                    try OutputPath.write(Images.PNGWriter.encode(HeatMap.render(crop, maps: maps, grid: vision.grid)), to: file.path)
                    prediction.explanation = file.path
                    prediction.explained = explained.map { labels[$0] }
                }
                guard let line = try? jsonEncoder.encode(prediction) else {
                    throw CLIError("cannot print the prediction for \(entry.url.path): it holds a non-finite number", code: 65)
                }
                Console.out(String(decoding: line, as: UTF8.self))
                written += 1
            }
        }
        if !failed.isEmpty {
            Console.error("predicted \(written) image(s); skipped \(failed.count) that could not be decoded:")
            for f in failed { Console.error("  \(f)") }
            if written == 0 { throw ExitCode(65) }
        }
    }
}

/// One JSON line of `sspa predict`.
struct Prediction: Codable {
    var image: String
    var labelSet: String
    var labels: [PredictedLabel]
    var explanation: String?
    var explained: [String]?

    enum CodingKeys: String, CodingKey {
        case image, labelSet = "label_set", labels, explanation, explained
    }
}

struct PredictedLabel: Codable {
    var label: String
    var display: String
    /// `p`.
    var probability: Double
    /// `sigmoid(s^G)` (absent with no-global).
    var global: Double?
    /// `sigmoid(s^R)`.
    var regional: Double
    /// The V→S GDMA gate `g_t` (absent with no-gdma).
    var gate: Double?
}

/// Heat maps of region weights over an image.
enum HeatMap {
    /// One panel per map, side by side: the image (scaled to at least 128 px) with `map` (`grid × grid` region weights,
    /// row-major as the patches) bilinearly upsampled, scaled to its own maximum and blended in as a blue→red colour
    /// ramp (opacity growing with the weight), so the regions the aggregator relied on glow red.
    static func render(_ image: Images.Image, maps: [[Float]], grid: Int) -> Images.Image {
        let scale = max(1, (128 + max(image.width, image.height) - 1) / max(image.width, image.height))
        let w = image.width * scale, h = image.height * scale
        let gap = 4
        let total = maps.count * w + (maps.count - 1) * gap
        var pixels = [UInt8](repeating: 255, count: total * h * 3)
        for (k, map) in maps.enumerated() {
            let lo = map.min() ?? 0, hi = map.max() ?? 1
            let span = hi - lo > 1e-12 ? hi - lo : 1
            let x0 = k * (w + gap)
            for y in 0..<h {
                // The centre of pixel y in grid coordinates.
                let gy = min(max((Float(y) + 0.5) / Float(h) * Float(grid) - 0.5, 0), Float(grid - 1))
                let y0 = Int(gy), y1 = min(y0 + 1, grid - 1), fy = gy - Float(y0)
                for x in 0..<w {
                    let gx = min(max((Float(x) + 0.5) / Float(w) * Float(grid) - 0.5, 0), Float(grid - 1))
                    let xa = Int(gx), xb = min(xa + 1, grid - 1), fx = gx - Float(xa)
                    let v00 = map[y0 * grid + xa], v01 = map[y0 * grid + xb], v10 = map[y1 * grid + xa], v11 = map[y1 * grid + xb]
                    let v = (v00 * (1 - fx) + v01 * fx) * (1 - fy) + (v10 * (1 - fx) + v11 * fx) * fy
                    let t = min(max((v - lo) / span, 0), 1)
                    let (r, g, b) = image[x / scale, y / scale]
                    let heat = ramp(t)
                    let alpha = 0.25 + 0.5 * t
                    let i = (y * total + x0 + x) * 3
                    pixels[i] = blend(r, heat.0, alpha)
                    pixels[i + 1] = blend(g, heat.1, alpha)
                    pixels[i + 2] = blend(b, heat.2, alpha)
                }
            }
        }
        return Images.Image(width: total, height: h, pixels: pixels)
    }

    /// Blue (0) → cyan → yellow → red (1).
    static func ramp(_ t: Float) -> (Float, Float, Float) {
        let r = min(max(2 * t - 0.5, 0), 1) * 255
        let g = (t < 0.5 ? min(2 * t * 1.5, 1) : min(max((1 - t) * 2, 0), 1)) * 255
        let b = min(max(1 - 2 * t, 0), 1) * 255
        return (r, g, b)
    }

    static func blend(_ base: UInt8, _ heat: Float, _ alpha: Float) -> UInt8 {
        UInt8(min(max(Float(base) * (1 - alpha) + heat * alpha, 0), 255).rounded())
    }
}
