import ArgumentParser
import CommandSupport
import Foundation
import Knowledge
import SSPA
import Tensor

/// `sspa evaluate`: the metrics of a trained checkpoint on a features file.
struct Evaluate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a trained SSPA checkpoint on cached CLIP features and print the metrics."
    )

    @Option(help: ArgumentHelp("The checkpoint folder `sspa train --out` wrote.", valueName: "dir"))
    var model: String

    @Option(help: ArgumentHelp("Features to evaluate on (safetensors: x0, X, labels).", valueName: "file"))
    var features: String

    @Option(help: ArgumentHelp("The CLIP checkpoint folder (default: the one the checkpoint was trained with).", valueName: "dir"))
    var clip: String?

    @Option(help: ArgumentHelp("Images per forward pass.", valueName: "n"))
    var batch = 64

    @Flag(help: "Print the metrics as JSON.")
    var json = false

    @Flag(name: .customLong("per-label"), help: "Add one AP line per label to the table.")
    var perLabel = false

    func validate() throws {
        try OptionBounds.validating { try OptionBounds.check(batch, "--batch", 1...Limits.batch) }
    }

    func run() async throws {
        try await reportingErrors { try evaluate() }
    }

    func evaluate() throws {
        guard batch >= 1 else { throw CLIError("--batch must be at least 1", code: 64) }
        // The optimizer and training state are for --resume only; a damaged optimizer file does not matter here.
        let checkpoint = try SSPA.Checkpoint.load(from: URL(fileURLWithPath: model))
        let manifest = checkpoint.manifest
        let data = try loadFeatures(features, role: "test")
        try data.check(labelNames: manifest.labels, encoderID: manifest.knowledgeEncoderSHA256,
                       against: "the checkpoint \(model) (label set \(manifest.labelSet))", file: features)
        try data.check(regionMode: manifest.regionMode, of: "the checkpoint \(model)", file: features)
        guard data.width == manifest.width else {
            throw SSPA.FeaturesError(file: features, message: "its features have width d = \(data.width), the checkpoint \(model) d = \(manifest.width)")
        }
        let clipDirectory = clip ?? manifest.clipDirectory
        guard FileManager.default.fileExists(atPath: clipDirectory) else {
            throw CLIError("the CLIP checkpoint folder \(clipDirectory) is missing; pass --clip DIR", code: 66)
        }
        let encoder = try TextEncoder.load(directory: clipDirectory)
        guard encoder.id == manifest.knowledgeEncoderSHA256 else {
            throw CLIError("the CLIP at \(clipDirectory) has weights \(encoder.id.prefix(12)), but \(model) was trained with \(manifest.knowledgeEncoderSHA256.prefix(12))", code: 65)
        }
        let promptEncoder = try SSPA.PromptEncoder(textModel: encoder.model, tokenizer: encoder.tokenizer,
                                                   displayNames: manifest.displayNames, nCtx: manifest.model.nCtx)
        let sspa = try SSPA.Model(config: manifest.model, promptEncoder: promptEncoder, knowledge: checkpoint.knowledge)
        let p = SSPA.Trainer.predict(model: sspa, parameters: checkpoint.parameters, features: data, batchSize: batch)
        if let bad = SSPA.Finite.firstBad(p) {
            throw CLIError("\(model): the model gives \(bad.what) for image \(bad.index / manifest.labels.count + 1) of \(features); the checkpoint or the features are unusable", code: 65)
        }
        let report = try SSPA.Metrics.Report(SSPA.Metrics.Input(scores: p, targets: data.labels), labelNames: manifest.displayNames)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            Console.out(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            let epochs = SSPA.Checkpoint.trainedEpochs(in: URL(fileURLWithPath: model)).map { "\($0) epochs" } ?? "untrained"
            Console.out("\(model): SSPA (\(ablationSummary(manifest.model))), \(epochs), label set '\(manifest.labelSet)'; \(features)")
            Console.out(report.table(perLabel: perLabel))
        }
    }
}
