import ArgumentParser
import CLIP
import CommandSupport
import Foundation
import Knowledge
import SSPA
import Tensor

/// `sspa train`: trains SSPA on a features file with knowledge from knowledge.db, checkpointing after every epoch.
struct Train: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train SSPA on cached CLIP features.",
        discussion: """
            Writes a checkpoint folder after every epoch, and on Ctrl-C before exiting: config.json, and a step \
            folder (model.safetensors, knowledge.safetensors, optimizer.safetensors, training-state.json) made whole \
            and then named, with its files' SHA-256, by checkpoint.json. A run that diverges (a non-finite loss or \
            parameter) stops and keeps its last finite checkpoint. One trainer at a time may write a folder. \
            --resume checks the files against checkpoint.json and continues bit for bit; its hyper-parameters and \
            switches come from the checkpoint (options that contradict them are an error). --max-steps N stops after \
            N optimizer steps in all (counted across --resume) and saves the checkpoint; the learning-rate schedule \
            stays that of --epochs, so resuming without it continues as if the run had never stopped.

            \(featuresHelp)

            Shuffling: the images 0..<N of the dataset fall into blocks of fixed index ranges of --shuffle-block \
            images ([0, S), [S, 2S), ...). Each epoch visits the blocks in a seeded random order and the images of each \
            block in a seeded random order; batches are consecutive runs of that sequence. So a step reads from one \
            block of the file (two at a block's end), the order depends only on --seed, the epoch, N and the block \
            size (never on how the data is split into files or whether it streams), and a dataset of at most one \
            block is shuffled whole.
            """
    )

    @Option(parsing: .upToNextOption, help: ArgumentHelp("Training features (safetensors: x0, X, labels): one or more files, or a folder of shards.", valueName: "file|dir"))
    var features: [String]

    @Option(parsing: .upToNextOption, help: ArgumentHelp("Validation features (files or a folder of shards); the validation mAP is printed after every epoch.", valueName: "file|dir"))
    var val: [String] = []

    @OptionGroup var inputs: KnowledgeInputs
    var clip: String { inputs.clip ?? "" }
    var knowledge: String { inputs.knowledge }
    var labelSet: String { inputs.labelSet ?? "" }

    @Option(name: .customLong("knowledge-run"), help: ArgumentHelp("Use this run's knowledge vectors (default: the latest encoded).", valueName: "id"))
    var knowledgeRun: Int64?


    @Option(help: ArgumentHelp("The checkpoint folder to write.", valueName: "dir"))
    var out: String

    @Option(help: ArgumentHelp("Passes over the training set (default 10).", valueName: "n"))
    var epochs: Int?

    @Option(help: ArgumentHelp("Images per step (default 32).", valueName: "n"))
    var batch: Int?

    @Option(help: ArgumentHelp("Peak learning rate (default 5e-4).", valueName: "rate"))
    var lr: Float?

    @Option(name: .customLong("weight-decay"), help: ArgumentHelp("AdamW weight decay on matrices (default 1e-4).", valueName: "wd"))
    var weightDecay: Float?

    @Option(name: .customLong("warmup-epochs"), help: ArgumentHelp("Linear warm-up epochs before the cosine decay (default 1).", valueName: "n"))
    var warmupEpochs: Int?

    @Option(help: ArgumentHelp("Seed of the initial parameters and the shuffling (default 0).", valueName: "n"))
    var seed: UInt64?

    @Option(name: .customLong("shuffle-block"), help: ArgumentHelp("Images per shuffle block (default \(SSPA.TrainingOptions.defaultShuffleBlock); 0: the whole dataset is one block).", valueName: "n"))
    var shuffleBlock: Int?

    @Option(name: .customLong("max-steps"), help: ArgumentHelp("Stop after this many optimizer steps in all, saving the checkpoint (the schedule stays that of --epochs).", valueName: "n"))
    var maxSteps: Int?

    @Option(help: ArgumentHelp("Ablation switches, comma-separated: no-kap, no-cap, no-qsm, no-gdma, no-global, sharp, aggregator=max|mean|soft.", valueName: "list"))
    var ablate: AblationArgument?

    @Flag(help: "Continue the checkpoint in --out.")
    var resume = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    func validate() throws {
        try inputs.requireClipAndLabelSet(for: "train")
        try ablate?.validate()
        try OptionBounds.validating {
            try OptionBounds.check(epochs, "--epochs", 1...Limits.epochs)
            try OptionBounds.check(batch, "--batch", 1...Limits.batch)
            try OptionBounds.check(lr, "--lr", Float.leastNonzeroMagnitude...Float.greatestFiniteMagnitude)
            try OptionBounds.check(weightDecay, "--weight-decay", 0...1000)
            try OptionBounds.check(warmupEpochs, "--warmup-epochs", 0...Limits.epochs)
            try OptionBounds.check(knowledgeRun, "--knowledge-run", 1...Int64.max)
            try OptionBounds.check(shuffleBlock, "--shuffle-block", 0...Int.max / 2)
            try OptionBounds.check(maxSteps, "--max-steps", 1...Int.max / 2)
        }
        if features.isEmpty { throw ValidationError("give --features FILE (or several, or a folder of shards)") }
    }

    func run() async throws {
        try await reportingErrors { try train() }
    }

    func train() throws {
        let fm = FileManager.default
        let outURL = URL(fileURLWithPath: out)
        // Nothing the run writes may be one of its inputs.
        let trainFiles = try featuresFiles(features, role: "training")
        let valFiles = val.isEmpty ? [] : try featuresFiles(val, role: "validation")
        let inputs = trainFiles.map { OutputPath.Input("--features", $0) } + valFiles.map { OutputPath.Input("--val", $0) }
            + OutputPath.storeInputs("--knowledge", knowledge) + OutputPath.checkpointInputs("--clip", clip)
        try OutputPath.refuseOverwriting(out, option: "--out", inputs: inputs)
        for name in ["config.json", "checkpoint.json"] {
            try OutputPath.refuseOverwriting(outURL.appendingPathComponent(name).path, option: "--out", inputs: inputs)
        }
        for input in inputs where OutputPath.resolved(input.path).hasPrefix(OutputPath.resolved(out) + "/") {
            throw CLIError("\(input.option) \(input.path) lies inside --out \(out), which training rewrites; move it or choose another --out.", code: .usage)
        }
        let hasCheckpoint = fm.fileExists(atPath: outURL.appendingPathComponent("config.json").path)
        if hasCheckpoint && !resume {
            throw CLIError("\(out) already holds a checkpoint; pass --resume to continue it, or choose another --out", code: .cannotCreate)
        }
        if resume && !hasCheckpoint { throw CLIError("--resume: \(out) holds no checkpoint (no config.json)", code: .noInput) }
        // One trainer per folder: a second one fails here at once.
        let lock = try FolderLock(folder: out, what: "`sspa train`")
        defer { withExtendedLifetime(lock) {} }
        SSPA.Checkpoint.removeStaleTemporaries(in: outURL)
        let checkpoint = resume ? try SSPA.Checkpoint.load(from: outURL, forTraining: true) : nil

        // Switches and hyper-parameters: the checkpoint's when resuming.
        let request = SSPA.TrainingPlan.Request(
            labelSet: labelSet, config: try ablate?.config(), epochs: epochs, batchSize: batch, learningRate: lr,
            weightDecay: weightDecay, warmupEpochs: warmupEpochs, seed: seed, shuffleBlock: shuffleBlock)
        let plan: SSPA.TrainingPlan
        do { plan = try SSPA.TrainingPlan(request, resuming: checkpoint?.manifest) } catch let conflict as SSPA.TrainingPlan.Conflict {
            throw SSPA.CheckpointError(directory: out, message: conflict.message)
        }
        let config = plan.config, options = plan.options
        do { try options.validate() } catch { throw CLIError("\(error)", code: .usage) }

        // The text tower, the knowledge and the labels.
        guard fm.fileExists(atPath: clip) else { throw CLIError("\(clip): no such CLIP checkpoint folder", code: .noInput) }
        let encoder = try CLIP.TextEncoder(directory: URL(fileURLWithPath: clip))
        let (store, set) = try openLabelSet(labelSet, in: knowledge,
                                            missingStore: "; build one with `sspa-knowledge build` and `sspa-knowledge encode --clip DIR`")
        guard let (labels, matrix, runID) = try store.knowledgeMatrix(labelSet: labelSet, encoderID: encoder.id, runID: knowledgeRun) else {
            let others = try store.encoders(labelSet: labelSet)
            let known = others.isEmpty ? "no encoder has encoded it yet" : "it is encoded for \(others.map { String($0.prefix(12)) }.joined(separator: ", "))"
            throw CLIError("label set '\(labelSet)' in \(knowledge) has no knowledge vectors\(knowledgeRun.map { " of run \($0)" } ?? "") for the CLIP at \(clip) (encoder \(encoder.id.prefix(12))); \(known). Run `sspa-knowledge encode --clip \(clip) --label-set \(labelSet) --db \(knowledge)` first.", code: .dataError)
        }
        let source = "\(knowledge) (label set \(labelSet))"
        let knowledgeMatrix: Tensor
        if let checkpoint {
            let saved = checkpoint.manifest
            guard saved.labels == labels, saved.knowledgeEncoderSHA256 == encoder.id else {
                throw SSPA.CheckpointError(directory: out, message: "a checkpoint from another config: it was trained on \(saved.labels.count) labels of '\(saved.labelSet)' with encoder \(saved.knowledgeEncoderSHA256.prefix(12)); now \(labels.count) labels with encoder \(encoder.id.prefix(12))")
            }
            knowledgeMatrix = checkpoint.knowledge
        } else {
            knowledgeMatrix = matrix
        }
        try SSPA.Finite.check(rows: knowledgeMatrix, names: labels) {
            CLIError("\(checkpoint == nil ? knowledge : out + "/knowledge.safetensors") (label set \(labelSet)): \($0); encode the label set again with a sound CLIP checkpoint (`sspa-knowledge encode`)", code: .dataError)
        }
        let displayNames = labels.map { set.label(named: $0)?.displayName ?? $0 }

        // Features.
        let train = try loadFeatures(features, role: "training")
        try train.check(labelNames: labels, encoderID: encoder.id, against: source, file: train.name)
        let validation = val.isEmpty ? nil : try loadFeatures(val, role: "validation")
        if let validation {
            try validation.check(labelNames: labels, encoderID: encoder.id, against: source, file: validation.name)
            try validation.check(regionMode: train.regionMode, of: "the training features \(train.name)", file: validation.name)
        }
        if !train.hasKnownLabel {
            throw SSPA.FeaturesError(file: train.name, message: "every label of every image is unknown (-1), so there is nothing to learn; list at least some labels per image in the manifest (or extract without --partial) and run `sspa features` again")
        }
        if let saved = checkpoint?.manifest {
            try train.check(regionMode: saved.regionMode, of: "the checkpoint being resumed (\(out))", file: train.name)
        }
        for data in [train] + (validation.map { [$0] } ?? []) where data.width != knowledgeMatrix.shape[1] {
            throw SSPA.FeaturesError(file: data.name, message: "its features have width d = \(data.width), but the CLIP at \(clip) projects to d = \(knowledgeMatrix.shape[1])")
        }

        // Model and trainer.
        let promptEncoder = try SSPA.PromptEncoder(textModel: encoder.model, tokenizer: encoder.tokenizer, displayNames: displayNames, nCtx: config.nCtx)
        let model = try SSPA.Model(config: config, promptEncoder: promptEncoder, knowledge: knowledgeMatrix)
        let parameters = try checkpoint?.parameters ?? SSPA.Trainer.initialParameters(model: model, tokenizer: encoder.tokenizer, seed: options.seed)
        let trainer = try SSPA.Trainer(model: model, options: options, parameters: parameters,
                                       optimizer: checkpoint?.optimizer, state: checkpoint?.state)
        let manifest = SSPA.Checkpoint.Manifest(
            model: config, training: options, labelSet: labelSet, labels: labels, displayNames: displayNames,
            knowledgeEncoderSHA256: encoder.id, knowledgeRunID: checkpoint?.manifest.knowledgeRunID ?? runID,
            clipDirectory: URL(fileURLWithPath: clip).standardizedFileURL.path, width: model.width,
            contextWidth: encoder.model.config.hiddenSize, regionMode: train.regionMode ?? checkpoint?.manifest.regionMode)
        func save() throws {
            try SSPA.Checkpoint.save(.init(manifest: manifest, parameters: trainer.parameters, knowledge: knowledgeMatrix,
                                           optimizer: trainer.optimizer, state: trainer.state), to: outURL, io: checkpointIO)
        }

        switch plan.finished(at: trainer.state, maxSteps: maxSteps) {
        case .allEpochs:
            Console.out("\(out) is already trained for \(options.epochs) epochs; nothing to do.")
            return
        case .maxSteps:
            Console.out("\(out) is already at step \(trainer.state.step), not before --max-steps \(maxSteps ?? 0); nothing to do.")
            return
        case nil: break
        }
        let perEpoch = trainer.batchesPerEpoch(train.count)
        let total = perEpoch * options.epochs
        let resumedAt = checkpoint.map { _ in " (resuming at epoch \(trainer.state.epoch + 1), step \(trainer.state.step + 1))" } ?? ""
        Console.out("training SSPA (\(ablationSummary(config))) on \(train.count) images × \(train.regionCount) regions, d = \(train.width), \(labels.count) labels of '\(labelSet)'"
            + (validation.map { ", validating on \($0.count)" } ?? "") + "; \(options.epochs) epochs × \(perEpoch) steps of \(options.batchSize)\(resumedAt)")

        let interrupt = InterruptHandler(message: "saving a checkpoint after this step")
        defer { interrupt.restore() }
        let progress = TrainingProgress(quiet: quiet)
        progress.stepsAtStart = trainer.state.step
        var saveError: Error?
        var savedEpoch = trainer.state.epoch
        let finished: Bool
        do {
            finished = try trainer.run(train: train, validation: validation, maxSteps: maxSteps, shouldStop: { interrupt.fired || saveError != nil }) { event in
                switch event {
                case .step(let epoch, let batch, let batches, let step, let totalSteps, let loss, _):
                    progress.step(epoch: epoch, epochs: options.epochs, batch: batch, batches: batches, step: step, total: totalSteps, loss: loss)
                case .epoch(let record):
                    progress.clear()
                    let map = record.validationMAP.map { String(format: "  val mAP %.2f", $0 * 100) } ?? ""
                    Console.out("epoch \(record.epoch)/\(options.epochs)  train loss " + String(format: "%.4f%@  (%.1f s)", record.trainLoss, map, record.seconds))
                    do {
                        try save()
                        savedEpoch = record.epoch
                    } catch { saveError = error }
                }
            }
        } catch let error as SSPA.TrainingError {
            progress.clear()
            let kept = checkpoint != nil || savedEpoch > 0
                ? "the last finite checkpoint in \(out) (epoch \(savedEpoch)) is kept" : "no checkpoint was saved"
            throw CLIError("\(error.message); \(kept). Lower --lr and train again.", code: .dataError)
        }
        progress.clear()
        if let saveError {
            if let error = saveError as? CLIError { throw CLIError("cannot save the checkpoint to \(out): \(error.message)", code: error.code) }
            throw CLIError("cannot save the checkpoint to \(out): \(saveError)", code: .ioError)
        }
        if !finished {
            let reachedMaxSteps = !interrupt.fired && maxSteps.map { trainer.state.step >= $0 } == true
            do { try save() } catch {
                throw CLIError("\(reachedMaxSteps ? "stopped at --max-steps" : "interrupted"), and the checkpoint could not be saved to \(out): \((error as? CLIError)?.message ?? "\(error)")", code: .ioError)
            }
            if reachedMaxSteps {
                Console.out("stopped after step \(trainer.state.step) of \(total) (--max-steps); saved \(out). Run the same command with --resume (and a larger or no --max-steps) to continue.")
                return
            }
            throw CLIError("interrupted at epoch \(trainer.state.epoch + 1), step \(trainer.state.step) of \(total); checkpoint saved to \(out). Run the same command with --resume to continue.", code: .interrupted)
        }
        Console.out("saved \(out)")
    }
}
