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

    @OptionGroup var inputs: KnowledgeInputs
    var clip: String? { inputs.clip }
    var knowledge: String { inputs.knowledge }
    var labelSet: String? { inputs.labelSet }


    @Option(help: ArgumentHelp("Region features: patch or value (default: what the model's training features used, else patch).", valueName: "mode"))
    var regions: RegionsArgument?

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
            guard fm.fileExists(atPath: input, isDirectory: &isDirectory) else { throw CLIError("\(input): no such image file or folder", code: .noInput) }
            if isDirectory.boolValue {
                let found = (fm.enumerator(atPath: input)?.allObjects as? [String] ?? [])
                    .filter { Self.imageExtensions.contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
                    .sorted()
                urls += found.map { URL(fileURLWithPath: input).appendingPathComponent($0) }
            } else {
                urls.append(URL(fileURLWithPath: input))
            }
        }
        guard !urls.isEmpty else { throw CLIError("no images (JPEG or PNG) in \(images.joined(separator: ", "))", code: .noInput) }
        return urls
    }

    func predict() throws {
        guard batch >= 1 else { throw CLIError("--batch must be at least 1", code: .usage) }
        if let topK, topK < 1 { throw CLIError("--top-k must be at least 1", code: .usage) }
        guard threshold >= 0, threshold <= 1 else { throw CLIError("--threshold must be in [0, 1]", code: .usage) }
        let checkpoint = try SSPA.Checkpoint.load(from: URL(fileURLWithPath: model))
        let manifest = checkpoint.manifest
        let mode = try regions?.mode ?? regionMode(manifest.regionMode ?? "patch")
        if let trained = manifest.regionMode, mode.rawValue != trained {
            Console.error("note: \(model) was trained on --regions \(trained) features; predicting with --regions \(mode.rawValue) as asked")
        }
        let clipDirectory = clip ?? manifest.clipDirectory
        guard FileManager.default.fileExists(atPath: clipDirectory) else {
            throw CLIError("the CLIP checkpoint folder \(clipDirectory) is missing; pass --clip DIR", code: .noInput)
        }
        let encoder = try CLIP.TextEncoder(directory: URL(fileURLWithPath: clipDirectory))
        guard encoder.id == manifest.knowledgeEncoderSHA256 else {
            throw CLIError("the CLIP at \(clipDirectory) has weights \(encoder.id.prefix(12)), but \(model) was trained with \(manifest.knowledgeEncoderSHA256.prefix(12))", code: .dataError)
        }

        // The label set: the checkpoint's, or a new one zero-shot.
        var labels = manifest.labels, displayNames = manifest.displayNames, knowledgeMatrix = checkpoint.knowledge
        var setName = manifest.labelSet
        if let labelSet {
            let (store, set) = try openLabelSet(labelSet, in: knowledge, missingStore: " (needed for --label-set)")
            let (raw, matrix, _) = try knowledgeVectors(store, labelSet: labelSet, in: knowledge, encoderID: encoder.id, clip: clipDirectory)
            labels = raw
            displayNames = raw.map { set.label(named: $0)?.displayName ?? $0 }
            knowledgeMatrix = matrix
            setName = labelSet
        }
        let promptEncoder = try SSPA.PromptEncoder(textModel: encoder.model, tokenizer: encoder.tokenizer,
                                                   displayNames: displayNames, nCtx: manifest.model.nCtx)
        let sspa = try SSPA.Model(config: manifest.model, promptEncoder: promptEncoder, knowledge: knowledgeMatrix)
        let vision = try SSPA.ImageEncoder(directory: clipDirectory, mode: mode, maxPixels: maxImagePixels)
        guard vision.width == manifest.width else {
            throw CLIError("the vision tower of \(clipDirectory) projects to \(vision.width), the checkpoint to d = \(manifest.width)", code: .dataError)
        }
        let predictor = try SSPA.Predictor(model: sspa, parameters: checkpoint.parameters, encoder: vision, labelSet: setName,
                                           labels: labels, displayNames: displayNames, source: model)
        let urls = try collectImages()
        let explainURL = explain.map { URL(fileURLWithPath: $0) }
        // The heat maps must never land on an input: an image, the checkpoint, the knowledge store.
        let inputs = urls.map { OutputPath.Input("image", $0.path) }
            + ["config.json", "checkpoint.json"].map { OutputPath.Input("--model", URL(fileURLWithPath: model).appendingPathComponent($0).path) }
            + (labelSet != nil ? OutputPath.storeInputs("--knowledge", knowledge) : [])
        if let explain, let explainURL {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: explain, isDirectory: &isDirectory), !isDirectory.boolValue {
                throw CLIError("--explain \(explain) is a file; give a folder for the heat maps", code: .cannotCreate)
            }
            do { try FileManager.default.createDirectory(at: explainURL, withIntermediateDirectories: true) } catch {
                throw CLIError("--explain \(explain): cannot create the folder (\((error as NSError).localizedFailureReason ?? error.localizedDescription))", code: .cannotCreate)
            }
        }

        var failed: [String] = []
        var written = 0
        let jsonEncoder = JSONEncoder()
        jsonEncoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let selection: SSPA.Predictor.Selection = topK.map { .top($0) } ?? .threshold(threshold)
        var lo = 0
        while lo < urls.count {
            let hi = min(lo + batch, urls.count)
            let result = try predictor.predict(Array(urls[lo..<hi]), selection: selection, keepCrops: explainURL != nil)
            for (_, message) in result.failed {
                failed.append(message)
                Console.error("skipped: \(message)")
            }
            for entry in result.predictions {
                var prediction = Prediction(image: entry.image.path, labelSet: setName, labels: entry.labels)
                if let explainURL, let crop = entry.crop {
                    let name = String(format: "%04ld-", lo + entry.index) + entry.image.deletingPathExtension().lastPathComponent + ".png"
                    let file = explainURL.appendingPathComponent(name)
                    try OutputPath.refuseOverwriting(file.path, option: "--explain", inputs: inputs)
                    try OutputPath.write(Images.PNGWriter.encode(Images.HeatMap.render(crop, maps: entry.maps, grid: vision.grid)), to: file.path)
                    prediction.explanation = file.path
                    prediction.explained = entry.explained
                }
                guard let line = try? jsonEncoder.encode(prediction) else {
                    throw CLIError("cannot print the prediction for \(entry.image.path): it holds a non-finite number", code: .dataError)
                }
                Console.out(String(decoding: line, as: UTF8.self))
                written += 1
            }
            lo = hi
        }
        if !failed.isEmpty {
            Console.error("predicted \(written) image(s); skipped \(failed.count) that could not be decoded:")
            for f in failed { Console.error("  \(f)") }
            if written == 0 { throw ExitStatus.dataError.exitCode }
        }
    }
}

/// One JSON line of `sspa predict`.
struct Prediction: Codable {
    var image: String
    var labelSet: String
    var labels: [SSPA.Predictor.Label]
    var explanation: String?
    var explained: [String]?

    enum CodingKeys: String, CodingKey {
        case image, labelSet = "label_set", labels, explanation, explained
    }
}
