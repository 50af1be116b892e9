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
        let (labels, matrix, runID) = try knowledgeVectors(store, labelSet: labelSet, in: knowledge, encoderID: encoder.id, runID: knowledgeRun, clip: clip,
                                                       checkFinite: false)  // TrainingRun checks the matrix it trains with
        let source = "\(knowledge) (label set \(labelSet))"
        let displayNames = labels.map { set.label(named: $0)?.displayName ?? $0 }
        let train = try loadFeatures(features, role: "training")
        let validation = val.isEmpty ? nil : try loadFeatures(val, role: "validation")
        let run = try SSPA.TrainingRun(
            folder: outURL, resuming: checkpoint, plan: plan, encoder: encoder, clipDirectory: URL(fileURLWithPath: clip),
            knowledge: .init(labelSet: labelSet, labels: labels, displayNames: displayNames, matrix: matrix, runID: runID, source: source),
            train: train, validation: validation, maxSteps: maxSteps, io: checkpointIO)

        switch run.nothingLeft {
        case .allEpochs:
            Console.out("\(out) is already trained for \(options.epochs) epochs; nothing to do.")
            return
        case .maxSteps:
            Console.out("\(out) is already at step \(run.trainer.state.step), not before --max-steps \(maxSteps ?? 0); nothing to do.")
            return
        case nil: break
        }
        let state = run.trainer.state
        let resumedAt = run.resumed ? " (resuming at epoch \(state.epoch + 1), step \(state.step + 1))" : ""
        Console.out("training SSPA (\(ablationSummary(config))) on \(train.count) images × \(train.regionCount) regions, d = \(train.width), \(labels.count) labels of '\(labelSet)'"
            + (validation.map { ", validating on \($0.count)" } ?? "") + "; \(options.epochs) epochs × \(run.stepsPerEpoch) steps of \(options.batchSize)\(resumedAt)")

        let interrupt = InterruptHandler(message: "saving a checkpoint after this step")
        defer { interrupt.restore() }
        let progress = TrainingProgress(quiet: quiet)
        progress.stepsAtStart = state.step
        let outcome: SSPA.TrainingRun.Outcome
        do {
            outcome = try run.run(shouldStop: { interrupt.fired }) { event in
                switch event {
                case .step(let epoch, let batch, let batches, let step, let totalSteps, let loss, _):
                    progress.step(epoch: epoch, epochs: options.epochs, batch: batch, batches: batches, step: step, total: totalSteps, loss: loss)
                case .epoch(let record):
                    progress.clear()
                    let map = record.validationMAP.map { String(format: "  val mAP %.2f", $0 * 100) } ?? ""
                    Console.out("epoch \(record.epoch)/\(options.epochs)  train loss " + String(format: "%.4f%@  (%.1f s)", record.trainLoss, map, record.seconds))
                }
            }
        } catch let error as SSPA.TrainingRun.Diverged {
            progress.clear()
            let kept = error.keptEpoch.map { "the last finite checkpoint in \(out) (epoch \($0)) is kept" } ?? "no checkpoint was saved"
            throw CLIError("\(error.message); \(kept). Lower --lr and train again.", code: .dataError)
        } catch let error as SSPA.TrainingRun.SaveFailed {
            progress.clear()
            let message = (error.underlying as? CLIError)?.message ?? "\(error.underlying)"
            switch error.stop {
            case nil:
                throw CLIError("cannot save the checkpoint to \(out): \(message)", code: (error.underlying as? CLIError)?.code ?? .ioError)
            case .maxSteps?:
                throw CLIError("stopped at --max-steps, and the checkpoint could not be saved to \(out): \(message)", code: .ioError)
            case .interrupted?:
                throw CLIError("interrupted, and the checkpoint could not be saved to \(out): \(message)", code: .ioError)
            }
        }
        progress.clear()
        switch outcome {
        case .nothingToDo, .finished:
            Console.out("saved \(out)")
        case .stopped(.maxSteps):
            Console.out("stopped after step \(run.trainer.state.step) of \(run.totalSteps) (--max-steps); saved \(out). Run the same command with --resume (and a larger or no --max-steps) to continue.")
        case .stopped(.interrupted):
            throw CLIError("interrupted at epoch \(run.trainer.state.epoch + 1), step \(run.trainer.state.step) of \(run.totalSteps); checkpoint saved to \(out). Run the same command with --resume to continue.", code: .interrupted)
        }
    }
}
