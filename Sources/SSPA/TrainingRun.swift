import CLIP
import Foundation
import Tensor

extension SSPA {
    /// One training run into a checkpoint folder, from inputs already opened to the folder written: the checks that
    /// the features, the knowledge and a resumed checkpoint belong together, the model and trainer, the loop with a
    /// checkpoint after every epoch, and how the run ended. `sspa train` resolves paths, opens the store and prints;
    /// everything else is here, so it is tested without a process.
    ///
    /// Checkpoints: one after every finished epoch, and one when the run stops early (`shouldStop`, `maxSteps`).
    /// A run that diverges saves nothing more, so the folder keeps its last finite checkpoint.
    public final class TrainingRun {
        /// The knowledge a run trains with: the label set's labels in order, their display names, `T^ka` `[C, d]`
        /// from the store, and where it came from (`source` names it in messages, e.g. "knowledge.db (label set voc)").
        public struct Knowledge: Sendable {
            public var labelSet: String
            public var labels: [String]
            public var displayNames: [String]
            public var matrix: Tensor
            public var runID: Int64
            public var source: String

            public init(labelSet: String, labels: [String], displayNames: [String], matrix: Tensor, runID: Int64, source: String) {
                self.labelSet = labelSet
                self.labels = labels
                self.displayNames = displayNames
                self.matrix = matrix
                self.runID = runID
                self.source = source
            }
        }

        /// Training diverged (a non-finite loss, gradient or parameter). `keptEpoch` is the epoch of the checkpoint
        /// left in the folder (nil when there is none).
        public struct Diverged: Error, CustomStringConvertible, Sendable {
            public var message: String
            public var keptEpoch: Int?
            public var description: String {
                "\(message); " + (keptEpoch.map { "the last finite checkpoint (epoch \($0)) is kept" } ?? "no checkpoint was saved")
            }
        }

        /// A checkpoint could not be written. `stop` says why the run was saving when it was not after an epoch.
        public struct SaveFailed: Error, CustomStringConvertible, @unchecked Sendable {
            public var underlying: any Error
            public var stop: Stop?
            public var description: String { "cannot save the checkpoint: \(underlying)" }
        }

        /// Why a run stopped before its last epoch.
        public enum Stop: Sendable, Hashable {
            /// `shouldStop` returned true (Ctrl-C).
            case interrupted
            /// `maxSteps` optimizer steps are done.
            case maxSteps
        }

        /// How a run ended.
        public enum Outcome: Sendable, Hashable {
            /// The folder's checkpoint already had nothing left to do; nothing was written.
            case nothingToDo(TrainingPlan.Finished)
            /// Every epoch is done and saved.
            case finished
            /// The run stopped early and saved its checkpoint.
            case stopped(Stop)
        }

        public let folder: URL
        public let plan: TrainingPlan
        public let trainer: Trainer
        public let manifest: Checkpoint.Manifest
        /// `T^ka` as trained: the checkpoint's when resuming, the store's otherwise.
        public let knowledge: Tensor
        public let train: FeaturesDataset
        public let validation: FeaturesDataset?
        public let maxSteps: Int?
        /// Whether the run continues a checkpoint.
        public let resumed: Bool
        let io: Checkpoint.FileIO
        /// The epoch of the newest checkpoint in the folder (0 for none, or for one saved mid-epoch 0).
        public private(set) var savedEpoch: Int

        /// A run writing `folder`, continuing `checkpoint` when given (loaded from that folder; `plan` made with its
        /// manifest), with the text tower `encoder` (from `clipDirectory`), `knowledge`, and `train` and
        /// `validation` features. Throws `CheckpointError` when the checkpoint was trained on other labels or another
        /// encoder, `KnowledgeError` when `T^ka` is not finite, `FeaturesError` when the features do not belong to the
        /// knowledge, the checkpoint or each other, or label nothing.
        public init(folder: URL, resuming checkpoint: Checkpoint.Contents?, plan: TrainingPlan, encoder: CLIP.TextEncoder,
                    clipDirectory: URL, knowledge: Knowledge, train: FeaturesDataset, validation: FeaturesDataset?,
                    maxSteps: Int?, io: Checkpoint.FileIO) throws {
            let config = plan.config, options = plan.options
            try options.validate()
            let labels = knowledge.labels
            let matrix: Tensor
            if let checkpoint {
                let saved = checkpoint.manifest
                guard saved.labels == labels, saved.knowledgeEncoderSHA256 == encoder.id else {
                    throw CheckpointError(directory: folder.path, message: "a checkpoint from another config: it was trained on \(saved.labels.count) labels of '\(saved.labelSet)' with encoder \(saved.knowledgeEncoderSHA256.prefix(12)); now \(labels.count) labels with encoder \(encoder.id.prefix(12))")
                }
                matrix = checkpoint.knowledge
            } else {
                matrix = knowledge.matrix
            }
            let source = checkpoint == nil ? knowledge.source
                : folder.appendingPathComponent("knowledge.safetensors").path + " (label set \(knowledge.labelSet))"
            try Finite.checkKnowledge(matrix, labels: labels, source: source)

            try train.check(labelNames: labels, encoderID: encoder.id, against: knowledge.source, file: train.name)
            if let validation {
                try validation.check(labelNames: labels, encoderID: encoder.id, against: knowledge.source, file: validation.name)
                try validation.check(regionMode: train.regionMode, of: "the training features \(train.name)", file: validation.name)
            }
            if !train.hasKnownLabel {
                throw FeaturesError(file: train.name, message: "every label of every image is unknown (-1), so there is nothing to learn; list at least some labels per image in the manifest (or extract without --partial) and run `sspa features` again")
            }
            if let saved = checkpoint?.manifest {
                try train.check(regionMode: saved.regionMode, of: "the checkpoint being resumed (\(folder.path))", file: train.name)
            }
            for data in [train] + (validation.map { [$0] } ?? []) where data.width != matrix.shape[1] {
                throw FeaturesError(file: data.name, message: "its features have width d = \(data.width), but the CLIP at \(clipDirectory.path) projects to d = \(matrix.shape[1])")
            }

            let promptEncoder = try PromptEncoder(textModel: encoder.model, tokenizer: encoder.tokenizer,
                                                  displayNames: knowledge.displayNames, nCtx: config.nCtx)
            let model = try Model(config: config, promptEncoder: promptEncoder, knowledge: matrix)
            let parameters = try checkpoint?.parameters
                ?? Trainer.initialParameters(model: model, tokenizer: encoder.tokenizer, seed: options.seed)
            trainer = try Trainer(model: model, options: options, parameters: parameters,
                                  optimizer: checkpoint?.optimizer, state: checkpoint?.state)
            manifest = Checkpoint.Manifest(
                model: config, training: options, labelSet: knowledge.labelSet, labels: labels,
                displayNames: knowledge.displayNames, knowledgeEncoderSHA256: encoder.id,
                knowledgeRunID: checkpoint?.manifest.knowledgeRunID ?? knowledge.runID,
                clipDirectory: clipDirectory.standardizedFileURL.path, width: model.width,
                contextWidth: encoder.model.config.hiddenSize, regionMode: train.regionMode ?? checkpoint?.manifest.regionMode)
            self.folder = folder
            self.plan = plan
            self.knowledge = matrix
            self.train = train
            self.validation = validation
            self.maxSteps = maxSteps
            self.io = io
            resumed = checkpoint != nil
            savedEpoch = trainer.state.epoch
        }

        /// Why the run has nothing left to do, if it has not.
        public var nothingLeft: TrainingPlan.Finished? { plan.finished(at: trainer.state, maxSteps: maxSteps) }
        /// Optimizer steps per epoch.
        public var stepsPerEpoch: Int { trainer.batchesPerEpoch(train.count) }
        /// Optimizer steps of the whole schedule (`epochs × stepsPerEpoch`).
        public var totalSteps: Int { stepsPerEpoch * plan.options.epochs }

        /// Writes the current parameters, optimizer and state as the folder's checkpoint.
        public func save() throws {
            try Checkpoint.save(.init(manifest: manifest, parameters: trainer.parameters, knowledge: knowledge,
                                      optimizer: trainer.optimizer, state: trainer.state), to: folder, io: io)
        }

        /// Trains until every epoch is done, `maxSteps` is reached or `shouldStop` returns true (checked between
        /// steps), saving a checkpoint after every epoch (after `events` has seen it) and when stopping early.
        /// Throws `Diverged` (the folder keeps its last finite checkpoint) or `SaveFailed` (the run stops at the
        /// first checkpoint it cannot write).
        public func run(shouldStop: () -> Bool = { false }, events: (TrainingEvent) -> Void = { _ in }) throws -> Outcome {
            if let done = nothingLeft { return .nothingToDo(done) }
            var saveError: (any Error)?
            var interrupted = false
            let finished: Bool
            do {
                finished = try trainer.run(train: train, validation: validation, maxSteps: maxSteps, shouldStop: {
                    if saveError != nil { return true }
                    interrupted = interrupted || shouldStop()
                    return interrupted
                }) { event in
                    events(event)
                    guard case .epoch(let record) = event else { return }
                    do {
                        try save()
                        savedEpoch = record.epoch
                    } catch { saveError = error }
                }
            } catch let error as TrainingError {
                throw Diverged(message: error.message, keptEpoch: resumed || savedEpoch > 0 ? savedEpoch : nil)
            }
            if let saveError { throw SaveFailed(underlying: saveError, stop: nil) }
            if finished { return .finished }
            let stop: Stop = interrupted ? .interrupted : .maxSteps
            do { try save() } catch { throw SaveFailed(underlying: error, stop: stop) }
            return .stopped(stop)
        }
    }
}
