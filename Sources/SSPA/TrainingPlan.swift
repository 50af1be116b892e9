import Foundation

extension SSPA {
    /// How a training run starts, from the options asked for and, when resuming, the checkpoint on disk: a fresh run
    /// takes the defaults with the options given; a resumed run keeps the checkpoint's switches and
    /// hyper-parameters, and an option that contradicts them is a conflict. Pure, so it is tested without a model.
    public struct TrainingPlan: Sendable, Hashable {
        /// What the command line asked for; nil means "not given".
        public struct Request: Sendable, Hashable {
            public var labelSet: String
            /// The switches of `--ablate`, when given.
            public var config: Config?
            public var epochs: Int?
            public var batchSize: Int?
            public var learningRate: Float?
            public var weightDecay: Float?
            public var warmupEpochs: Int?
            public var seed: UInt64?
            public var shuffleBlock: Int?

            public init(labelSet: String, config: Config? = nil, epochs: Int? = nil, batchSize: Int? = nil,
                        learningRate: Float? = nil, weightDecay: Float? = nil, warmupEpochs: Int? = nil, seed: UInt64? = nil,
                        shuffleBlock: Int? = nil) {
                self.labelSet = labelSet
                self.config = config
                self.epochs = epochs
                self.batchSize = batchSize
                self.learningRate = learningRate
                self.weightDecay = weightDecay
                self.warmupEpochs = warmupEpochs
                self.seed = seed
                self.shuffleBlock = shuffleBlock
            }
        }

        /// The request contradicts the checkpoint being resumed; the message names what differs.
        public struct Conflict: Error, CustomStringConvertible, Sendable {
            public var message: String
            public var description: String { message }
        }

        public var config: Config
        public var options: TrainingOptions

        /// The plan for `request`, resuming the checkpoint whose manifest is `saved` when given.
        public init(_ request: Request, resuming saved: Checkpoint.Manifest?) throws {
            guard let saved else {
                config = request.config ?? Config()
                var options = TrainingOptions()
                if let v = request.epochs { options.epochs = v }
                if let v = request.batchSize { options.batchSize = v }
                if let v = request.learningRate { options.learningRate = v }
                if let v = request.weightDecay { options.weightDecay = v }
                if let v = request.warmupEpochs { options.warmupEpochs = v }
                if let v = request.seed { options.seed = v }
                if let v = request.shuffleBlock { options.shuffleBlock = v }
                self.options = options
                return
            }
            if let asked = request.config, asked != saved.model {
                throw Conflict(message: "a checkpoint from another config: it was trained as \(Self.summary(saved.model)), --ablate asks for \(Self.summary(asked))")
            }
            let o = saved.training
            var conflicts: [String] = []
            func check<T: Equatable>(_ asked: T?, _ kept: T, _ option: String) {
                if let asked, asked != kept { conflicts.append("\(option) \(asked) (saved \(kept))") }
            }
            check(request.epochs, o.epochs, "--epochs")
            check(request.batchSize, o.batchSize, "--batch")
            check(request.learningRate, o.learningRate, "--lr")
            check(request.weightDecay, o.weightDecay, "--weight-decay")
            check(request.warmupEpochs, o.warmupEpochs, "--warmup-epochs")
            check(request.seed, o.seed, "--seed")
            check(request.shuffleBlock, o.shuffleBlock, "--shuffle-block")
            check(request.labelSet, saved.labelSet, "--label-set")
            if !conflicts.isEmpty {
                throw Conflict(message: "a checkpoint from another config; --resume keeps its settings, but these differ: \(conflicts.joined(separator: ", "))")
            }
            config = saved.model
            options = o
        }

        /// Why a run has nothing left to do, if it has not.
        public enum Finished: Sendable, Hashable {
            /// Every epoch is done.
            case allEpochs
            /// The run is at or past `--max-steps`.
            case maxSteps
        }

        /// Whether a run at `state` has nothing left to do under `maxSteps`.
        public func finished(at state: TrainingState, maxSteps: Int?) -> Finished? {
            if state.epoch >= options.epochs { return .allEpochs }
            if let maxSteps, state.step >= maxSteps { return .maxSteps }
            return nil
        }

        /// The switches of `config` that differ from the defaults, as `--ablate` spells them ("full model" if none).
        public static func summary(_ config: Config) -> String {
            var parts: [String] = []
            if config.noKAP { parts.append("no-kap") }
            if config.noCAP { parts.append("no-cap") }
            if config.noQSM { parts.append("no-qsm") }
            if config.noGDMA { parts.append("no-gdma") }
            if config.noGlobal { parts.append("no-global") }
            if config.sharp { parts.append("sharp") }
            if config.aggregator != .soft { parts.append("aggregator=\(config.aggregator.rawValue)") }
            return parts.isEmpty ? "full model" : parts.joined(separator: ",")
        }
    }
}
