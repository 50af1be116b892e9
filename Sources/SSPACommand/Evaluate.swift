import ArgumentParser
import CLIP
import CommandSupport
import Foundation
import Knowledge
import SSPA
import Tensor

/// `sspa evaluate`: the metrics of a trained checkpoint on a features file, with the zero-shot CLIP baselines on the
/// same features beneath; or, with `--zero-shot`, the baselines alone.
struct Evaluate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a trained SSPA checkpoint, or zero-shot CLIP, on cached CLIP features and print the metrics.",
        discussion: """
            With --model, prints the checkpoint's metrics and, under them, a table with its row and the zero-shot \
            CLIP rows on the same features and the checkpoint's knowledge T^ka. With --zero-shot (and --knowledge, \
            --label-set), scores the features with no training: global cos(x0, t^ka), and regional max and soft \
            pooling of cos(X, t^ka), each turned into a probability by the model's initial transform \
            σ(20·u − 5) (soft pooling τ 0.2), so that every metric is defined.

              sspa evaluate --model runs/voc --features test.safetensors
              sspa evaluate --zero-shot --features test.safetensors --knowledge knowledge.db \\
                  --label-set voc --clip clip-vit-b16

            \(featuresHelp)
            """
    )

    @Option(help: ArgumentHelp("The checkpoint folder `sspa train --out` wrote.", valueName: "dir"))
    var model: String?

    @Flag(name: .customLong("zero-shot"), help: "Evaluate zero-shot CLIP (no training) instead of a checkpoint; needs --label-set.")
    var zeroShot = false

    @Option(parsing: .upToNextOption, help: ArgumentHelp("Features to evaluate on (safetensors: x0, X, labels): one or more files, or a folder of shards.", valueName: "file|dir"))
    var features: [String]

    @OptionGroup var inputs: KnowledgeInputs
    var clip: String? { inputs.clip }
    var knowledge: String { inputs.knowledge }
    var labelSet: String? { inputs.labelSet }

    @Option(name: .customLong("knowledge-run"), help: ArgumentHelp("With --zero-shot: use this run's knowledge vectors (default: the latest encoded).", valueName: "id"))
    var knowledgeRun: Int64?


    @Option(help: ArgumentHelp("Images per forward pass.", valueName: "n"))
    var batch = 64

    @Flag(help: "Print the metrics as JSON (the zero-shot reports under \"zero_shot\").")
    var json = false

    @Flag(name: .customLong("per-label"), help: "Add one AP line per label to the model's table.")
    var perLabel = false

    func validate() throws {
        try OptionBounds.validating {
            try OptionBounds.check(batch, "--batch", 1...Limits.batch)
            try OptionBounds.check(knowledgeRun, "--knowledge-run", 1...Int64.max)
        }
        if features.isEmpty { throw ValidationError("give --features FILE (or several, or a folder of shards)") }
        if zeroShot {
            if model != nil {
                throw ValidationError("--zero-shot evaluates without a checkpoint; drop --model (`evaluate --model` already prints the zero-shot rows)")
            }
            if labelSet == nil { throw ValidationError("--zero-shot needs --label-set (the label set of the features in --knowledge)") }
        } else if model == nil {
            throw ValidationError("give --model DIR (a trained checkpoint), or --zero-shot with --label-set for the baseline without training")
        }
    }

    func run() async throws {
        try await reportingErrors { zeroShot ? try evaluateZeroShot() : try evaluate() }
    }

    /// The zero-shot reports as JSON carries them, by method.
    struct ZeroShotJSON: Encodable {
        var reports: [SSPA.ZeroShot.Method: SSPA.Metrics.Report]
        enum CodingKeys: String, CodingKey { case zeroShot = "zero_shot" }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(Dictionary(uniqueKeysWithValues: reports.map { ($0.key.rawValue, $0.value) }), forKey: .zeroShot)
        }
    }

    /// The model's report with the zero-shot reports beside it, as one JSON object: the report's own keys (so it
    /// still decodes as a `Report`) plus `zero_shot`.
    struct ModelJSON: Encodable {
        var report: SSPA.Metrics.Report
        var zeroShot: ZeroShotJSON
        func encode(to encoder: Encoder) throws {
            try report.encode(to: encoder)
            try zeroShot.encode(to: encoder)
        }
    }

    func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        Console.out(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// The table rows of the zero-shot methods, in their fixed order.
    func zeroShotRows(_ reports: [SSPA.ZeroShot.Method: SSPA.Metrics.Report]) -> [(name: String, report: SSPA.Metrics.Report)] {
        SSPA.ZeroShot.Method.allCases.compactMap { method in reports[method].map { (method.title, $0) } }
    }

    static let transformNote = "no training: p = σ(20·u − 5), soft pooling τ 0.2"

    func evaluate() throws {
        guard let model else { throw CLIError("give --model DIR", code: .usage) }
        // The optimizer and training state are for --resume only; a damaged optimizer file does not matter here.
        let checkpoint = try SSPA.Checkpoint.load(from: URL(fileURLWithPath: model))
        let manifest = checkpoint.manifest
        let data = try loadFeatures(features, role: "test")
        try data.check(labelNames: manifest.labels, encoderID: manifest.knowledgeEncoderSHA256,
                       against: "the checkpoint \(model) (label set \(manifest.labelSet))", file: data.name)
        try data.check(regionMode: manifest.regionMode, of: "the checkpoint \(model)", file: data.name)
        guard data.width == manifest.width else {
            throw SSPA.FeaturesError(file: data.name, message: "its features have width d = \(data.width), the checkpoint \(model) d = \(manifest.width)")
        }
        let clipDirectory = clip ?? manifest.clipDirectory
        guard FileManager.default.fileExists(atPath: clipDirectory) else {
            throw CLIError("the CLIP checkpoint folder \(clipDirectory) is missing; pass --clip DIR", code: .noInput)
        }
        let encoder = try CLIP.TextEncoder(directory: URL(fileURLWithPath: clipDirectory))
        guard encoder.id == manifest.knowledgeEncoderSHA256 else {
            throw CLIError("the CLIP at \(clipDirectory) has weights \(encoder.id.prefix(12)), but \(model) was trained with \(manifest.knowledgeEncoderSHA256.prefix(12))", code: .dataError)
        }
        let promptEncoder = try SSPA.PromptEncoder(textModel: encoder.model, tokenizer: encoder.tokenizer,
                                                   displayNames: manifest.displayNames, nCtx: manifest.model.nCtx)
        let sspa = try SSPA.Model(config: manifest.model, promptEncoder: promptEncoder, knowledge: checkpoint.knowledge)
        let predicted = try SSPA.Trainer.predictions(model: sspa, parameters: checkpoint.parameters, features: data, batchSize: batch)
        if let bad = SSPA.Finite.firstBad(predicted.probabilities) {
            throw CLIError("\(model): the model gives \(bad.what) for image \(bad.index / manifest.labels.count + 1) of \(data.name); the checkpoint or the features are unusable", code: .dataError)
        }
        let report = try SSPA.Metrics.Report(SSPA.Metrics.Input(probabilities: predicted.scores, targets: data.allLabels()),
                                             labelNames: manifest.displayNames)
        // The baselines on the same features, with the knowledge the model was trained with.
        let baselines = try SSPA.ZeroShot.reports(features: data, knowledge: checkpoint.knowledge,
                                                  labelNames: manifest.displayNames, batchSize: batch)
        if json {
            try printJSON(ModelJSON(report: report, zeroShot: ZeroShotJSON(reports: baselines)))
            return
        }
        let epochs = SSPA.Checkpoint.trainedEpochs(in: URL(fileURLWithPath: model)).map { "\($0) epochs" } ?? "untrained"
        let title = "SSPA (\(ablationSummary(manifest.model)))"
        Console.out("\(model): \(title), \(epochs), label set '\(manifest.labelSet)'; \(data.name)")
        Console.out(report.table(perLabel: perLabel))
        Console.out("baselines on the same features and knowledge (zero-shot CLIP, \(Self.transformNote)):")
        Console.out(String(SSPA.Metrics.Report.comparison([(title, report)] + zeroShotRows(baselines)).dropLast()))
    }

    func evaluateZeroShot() throws {
        guard let labelSet else { throw CLIError("--zero-shot needs --label-set", code: .usage) }
        let fm = FileManager.default
        let data = try loadFeatures(features, role: "test")
        // The encoder the knowledge must come from: the features', checked against --clip when it is given.
        var encoderID = data.encoderSHA256
        if let clip {
            guard fm.fileExists(atPath: clip) else { throw CLIError("\(clip): no such CLIP checkpoint folder", code: .noInput) }
            encoderID = try CLIP.Checkpoint.identity(directory: URL(fileURLWithPath: clip)).id
        }
        let (store, set) = try openLabelSet(labelSet, in: knowledge,
                                            missingStore: "; build one with `sspa-knowledge build` and `sspa-knowledge encode --clip DIR`")
        let (labels, matrix, runID) = try knowledgeVectors(store, labelSet: labelSet, in: knowledge, encoderID: encoderID, runID: knowledgeRun, clip: clip)
        let source = "\(knowledge) (label set \(labelSet))"
        try data.check(labelNames: labels, encoderID: encoderID, against: source, file: data.name)
        guard data.width == matrix.shape[1] else {
            throw SSPA.FeaturesError(file: data.name, message: "its features have width d = \(data.width), the knowledge of \(source) d = \(matrix.shape[1])")
        }
        let displayNames = labels.map { set.label(named: $0)?.displayName ?? $0 }
        let reports = try SSPA.ZeroShot.reports(features: data, knowledge: matrix, labelNames: displayNames, batchSize: batch)
        if json {
            try printJSON(ZeroShotJSON(reports: reports))
            return
        }
        Console.out("zero-shot CLIP (\(Self.transformNote)), label set '\(labelSet)', knowledge run \(runID), encoder \(encoderID.prefix(12)); \(data.name)")
        Console.out("\(data.count) samples, \(labels.count) labels")
        Console.out(String(SSPA.Metrics.Report.comparison(zeroShotRows(reports)).dropLast()))
    }
}
