import CLIP
import Foundation
import Tensor

extension SSPA {
    /// Training hyper-parameters (SSPA-SPEC.md, "Training defaults"), saved in every checkpoint's `config.json`.
    public struct TrainingOptions: Codable, Sendable, Hashable {
        /// Passes over the training set.
        public var epochs = 10
        /// Images per step (the last batch of an epoch may be smaller).
        public var batchSize = 32
        /// Peak learning rate, reached at the end of the warm-up.
        public var learningRate: Float = 5e-4
        /// AdamW's decoupled weight decay (the matrices of `Config.weightDecayed` only).
        public var weightDecay: Float = 1e-4
        /// Linear warm-up length in epochs; cosine decay to 0 follows.
        public var warmupEpochs = 1
        /// Global gradient L2 norm clipping.
        public var maxGradientNorm: Float = 10
        /// Seeds the initial parameters and the shuffling.
        public var seed: UInt64 = 0
        /// Images per shuffle block (`BlockShuffle`); 0 shuffles the whole dataset as one block, which is how
        /// checkpoints written before issue 11 (no `shuffle_block` in config.json) were trained.
        public var shuffleBlock = TrainingOptions.defaultShuffleBlock

        /// The default shuffle block: large enough to mix a batch well, small enough that a step reads from one
        /// region of a large file (about 800 MB of ViT-B/16 features in float16).
        public static let defaultShuffleBlock = 4096

        public init() {}

        enum CodingKeys: String, CodingKey {
            case epochs, batchSize = "batch_size", learningRate = "lr", weightDecay = "weight_decay"
            case warmupEpochs = "warmup_epochs", maxGradientNorm = "max_grad_norm", seed, shuffleBlock = "shuffle_block"
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            epochs = try c.decode(Int.self, forKey: .epochs)
            batchSize = try c.decode(Int.self, forKey: .batchSize)
            learningRate = try c.decode(Float.self, forKey: .learningRate)
            weightDecay = try c.decode(Float.self, forKey: .weightDecay)
            warmupEpochs = try c.decode(Int.self, forKey: .warmupEpochs)
            maxGradientNorm = try c.decode(Float.self, forKey: .maxGradientNorm)
            seed = try c.decode(UInt64.self, forKey: .seed)
            // Absent before issue 11: those runs shuffled the whole dataset at once, and resume that way.
            shuffleBlock = try c.decodeIfPresent(Int.self, forKey: .shuffleBlock) ?? 0
        }

        /// Throws on values that cannot train.
        public func validate() throws {
            if epochs < 1 { throw ConfigError("epochs must be at least 1, got \(epochs)") }
            if batchSize < 1 { throw ConfigError("batch size must be at least 1, got \(batchSize)") }
            if !(learningRate > 0) || !learningRate.isFinite { throw ConfigError("the learning rate must be positive, got \(learningRate)") }
            if weightDecay < 0 || !weightDecay.isFinite { throw ConfigError("weight decay must be ≥ 0, got \(weightDecay)") }
            if warmupEpochs < 0 { throw ConfigError("warm-up epochs must be ≥ 0, got \(warmupEpochs)") }
            if !(maxGradientNorm > 0) { throw ConfigError("the gradient clipping norm must be positive, got \(maxGradientNorm)") }
            if shuffleBlock < 0 { throw ConfigError("the shuffle block must be ≥ 0 images, got \(shuffleBlock)") }
        }
    }

    /// One finished epoch.
    public struct EpochRecord: Codable, Sendable, Hashable {
        /// 1-based epoch number.
        public var epoch: Int
        /// Mean training loss over the epoch's batches (of the batches run in this process when resumed mid-epoch).
        public var trainLoss: Double
        /// Validation mAP after the epoch, when a validation set is given.
        public var validationMAP: Double?
        /// Wall time of the epoch.
        public var seconds: Double

        enum CodingKeys: String, CodingKey {
            case epoch, trainLoss = "train_loss", validationMAP = "val_map", seconds
        }
    }

    /// Where training stands: enough to resume bit for bit. Shuffling uses no running generator: epoch `e`'s order
    /// is `BlockShuffle(seed:epoch: e)`, seeded by `Trainer.shuffleSeed(seed, epoch: e)`, so the "rng state" is the
    /// pair (seed, epoch), and resuming mid-epoch skips the batches already done.
    public struct TrainingState: Codable, Sendable, Hashable {
        /// Epochs fully done.
        public var epoch = 0
        /// Batches done within the current (unfinished) epoch.
        public var batchInEpoch = 0
        /// Optimizer updates done in total.
        public var step = 0
        /// The training seed.
        public var seed: UInt64 = 0
        /// Seed of the current epoch's shuffle (`Trainer.shuffleSeed(seed, epoch: epoch)`).
        public var shuffleSeed: UInt64 = 0
        /// Sum of the losses of the current epoch's batches so far (for the epoch mean after a resume).
        public var epochLossSum = 0.0
        /// Finished epochs.
        public var history: [EpochRecord] = []

        public init(seed: UInt64 = 0) {
            self.seed = seed
            shuffleSeed = Trainer.shuffleSeed(seed, epoch: 0)
        }

        enum CodingKeys: String, CodingKey {
            case epoch, batchInEpoch = "batch_in_epoch", step, seed, shuffleSeed = "shuffle_seed"
            case epochLossSum = "epoch_loss_sum", history
        }
    }

    /// What the trainer reports while it runs.
    public enum TrainingEvent: Sendable {
        /// One optimizer step is done.
        case step(epoch: Int, batch: Int, batchesPerEpoch: Int, step: Int, totalSteps: Int, loss: Double, learningRate: Float)
        /// One epoch is done (with the validation mAP when there is a validation set).
        case epoch(EpochRecord)
    }

    /// Trains an SSPA model on cached features: seeded shuffling, AdamW, warm-up plus cosine schedule and
    /// gradient-norm clipping (SSPA-SPEC.md, "Training defaults"). Same seed, same data, same machine: same
    /// weights, bit for bit.
    public final class Trainer: @unchecked Sendable {
        public let model: Model
        public let options: TrainingOptions
        public var parameters: Parameters
        public var optimizer: AdamW
        public var state: TrainingState

        /// The spec's initial parameters for `model`, the context vectors from `config.contextInitText`.
        public static func initialParameters(model: Model, tokenizer: CLIP.Tokenizer, seed: UInt64) throws -> Parameters {
            let context = try model.promptEncoder.contextEmbeddings(text: model.config.contextInitText, tokenizer: tokenizer)
            return Parameters.initial(config: model.config, d: model.width, contextInit: context, seed: seed)
        }

        /// A trainer starting from `parameters` (fresh ones come from `initialParameters`), with a fresh optimizer
        /// and state unless resumed.
        public init(model: Model, options: TrainingOptions, parameters initial: Parameters, optimizer: AdamW? = nil,
                    state: TrainingState? = nil) throws {
            try options.validate()
            self.model = model
            self.options = options
            try initial.validate(config: model.config, d: model.width, contextWidth: model.promptEncoder.textModel.config.hiddenSize)
            self.parameters = initial
            self.optimizer = optimizer ?? AdamW(weightDecay: options.weightDecay)
            self.state = state ?? TrainingState(seed: options.seed)
        }

        /// The shuffle seed of epoch `epoch` (0-based) for the training seed `seed`.
        public static func shuffleSeed(_ seed: UInt64, epoch: Int) -> UInt64 {
            var g = SplitMix64(seed: seed ^ 0x5353_5041_5348_5546)  // "SSPASHUF"
            var s: UInt64 = g.next()
            for _ in 0..<epoch { s = g.next() }
            return s
        }

        /// The order of the `count` training images in epoch `epoch` (0-based), shuffled in blocks of `blockSize`
        /// (`BlockShuffle`; 0 for one block).
        public static func permutation(count: Int, seed: UInt64, epoch: Int, blockSize: Int = 0) -> [Int] {
            BlockShuffle.order(count: count, blockSize: blockSize, seed: seed, epoch: epoch)
        }

        /// Batches per epoch for `count` images.
        public func batchesPerEpoch(_ count: Int) -> Int { (count + options.batchSize - 1) / options.batchSize }

        /// The learning-rate schedule for a training set of `count` images.
        public func schedule(count: Int) -> LearningRateSchedule {
            let perEpoch = batchesPerEpoch(count)
            return LearningRateSchedule(peak: options.learningRate, warmupSteps: options.warmupEpochs * perEpoch,
                                        totalSteps: options.epochs * perEpoch)
        }

        /// One update on a batch; returns the loss and the gradient norm before clipping.
        @discardableResult
        public func step(x0: Tensor, regions: Tensor, labels: Tensor, learningRate: Float) throws -> (loss: Double, gradientNorm: Float) {
            var (output, gradients) = model.lossAndGradients(parameters, x0: x0, regions: regions, labels: labels)
            guard let loss = output.lossValue, loss.isFinite else {
                throw TrainingError("training diverged: the loss became \(output.lossValue.map { "\($0)" } ?? "nil") at step \(state.step + 1)")
            }
            let norm = AdamW.clipGradientNorm(&gradients, maxNorm: options.maxGradientNorm)
            guard norm.isFinite else {
                throw TrainingError("training diverged: the gradient norm became \(norm) at step \(state.step + 1)")
            }
            Self.update(&parameters, optimizer: &optimizer, gradients: gradients, learningRate: learningRate, config: model.config)
            try Finite.check(parameters.tensors, what: "parameter") {
                TrainingError("training diverged at step \(state.step + 1) (learning rate \(learningRate)): \($0) after the update")
            }
            return (loss, norm)
        }

        /// What a step does with its (clipped) gradients: one AdamW update (weight decay on `Config.weightDecayed`
        /// only), then `ℓ_G` and `ℓ_R` clamped at `ln κ_max`, as OpenCLIP clamps its logit scale after each step.
        // SSPA-SPEC.md, global branch and training defaults; scripts/sspa_reference.py, train_step
        public static func update(_ parameters: inout Parameters, optimizer: inout AdamW, gradients: Parameters,
                                  learningRate: Float, config: Config) {
            optimizer.update(&parameters, gradients: gradients, lr: learningRate)
            parameters.clampLogitScales(kappaMax: config.kappaMax)
        }

        /// Trains until `options.epochs` epochs are done, `maxSteps` optimizer steps are done in total (counted
        /// across resumes; the schedule stays that of `options.epochs`), or `shouldStop` returns true (checked
        /// between steps). Returns true when every epoch is done. Resumes from `state` (epoch, batch within epoch,
        /// step). `train` is read one batch at a time, in the order of `BlockShuffle`.
        @discardableResult
        public func run(train: any FeaturesSource, validation: (any FeaturesSource)? = nil, maxSteps: Int? = nil,
                        shouldStop: () -> Bool = { false }, events: (TrainingEvent) -> Void = { _ in }) throws -> Bool {
            try checkShapes(train, role: "training")
            if let validation { try checkShapes(validation, role: "validation") }
            let validationLabels = try validation?.allLabels()
            let perEpoch = batchesPerEpoch(train.count)
            let total = options.epochs * perEpoch
            let schedule = schedule(count: train.count)
            while state.epoch < options.epochs {
                let started = Date()
                var order = BlockShuffle(count: train.count, blockSize: options.shuffleBlock, seed: options.seed, epoch: state.epoch)
                state.shuffleSeed = order.epochSeed
                while state.batchInEpoch < perEpoch {
                    if shouldStop() { return false }
                    if let maxSteps, state.step >= maxSteps { return false }
                    let lo = state.batchInEpoch * options.batchSize
                    let batch = try train.batch(order.indices(lo..<min(lo + options.batchSize, train.count)))
                    let lr = schedule.rate(at: state.step)
                    let (loss, _) = try step(x0: batch.x0, regions: batch.regions, labels: batch.labels, learningRate: lr)
                    state.step += 1
                    state.batchInEpoch += 1
                    state.epochLossSum += loss
                    events(.step(epoch: state.epoch + 1, batch: state.batchInEpoch, batchesPerEpoch: perEpoch,
                                 step: state.step, totalSteps: total, loss: loss, learningRate: lr))
                }
                var map: Double?
                if let validation, let validationLabels {
                    let scores = try Trainer.predictions(model: model, parameters: parameters, features: validation).scores
                    map = Metrics.meanAveragePrecision(try Metrics.Input(probabilities: scores, targets: validationLabels))
                }
                let record = EpochRecord(epoch: state.epoch + 1, trainLoss: state.epochLossSum / Double(perEpoch),
                                         validationMAP: map, seconds: Date().timeIntervalSince(started))
                state.history.append(record)
                state.epoch += 1
                state.batchInEpoch = 0
                state.epochLossSum = 0
                state.shuffleSeed = Self.shuffleSeed(options.seed, epoch: state.epoch)
                events(.epoch(record))
            }
            return true
        }

        /// Throws unless `features` fits the model (width, labels).
        public func checkShapes(_ features: any FeaturesSource, role: String) throws {
            guard features.width == model.width else {
                throw TrainingError("the \(role) features have width d = \(features.width), the model \(model.width)")
            }
            guard features.labelCount == model.labelCount else {
                throw TrainingError("the \(role) features have \(features.labelCount) labels, the model \(model.labelCount)")
            }
        }

        /// `p` `[N, C]` for every image, in batches.
        public func predict(_ features: Features, batchSize: Int = 64) -> Tensor {
            Trainer.predict(model: model, parameters: parameters, features: features, batchSize: batchSize)
        }

        /// `p` `[N, C]` of `model` with `parameters` for every image, in batches.
        public static func predict(model: Model, parameters: Parameters, features: Features, batchSize: Int = 64) -> Tensor {
            predictions(model: model, parameters: parameters, features: features, batchSize: batchSize).probabilities
        }

        /// `p` `[N, C]` for every image of features held in memory, in batches, as float32 and as the float64 scores
        /// metrics rank (`Model.Output.scores`, row-major).
        public static func predictions(model: Model, parameters: Parameters, features: Features, batchSize: Int = 64)
            -> (probabilities: Tensor, scores: [Double]) {
            predictions(model: model, parameters: parameters, count: features.count, labelCount: features.labelCount,
                        batchSize: batchSize) { features.batch($0) }
        }

        /// `p` `[N, C]` for every image of `features`, read a batch at a time (only `N × C` is held).
        public static func predictions(model: Model, parameters: Parameters, features: any FeaturesSource, batchSize: Int = 64)
            throws -> (probabilities: Tensor, scores: [Double]) {
            try predictions(model: model, parameters: parameters, count: features.count, labelCount: features.labelCount,
                            batchSize: batchSize) { try features.batch($0) }
        }

        static func predictions(model: Model, parameters: Parameters, count: Int, labelCount: Int, batchSize: Int,
                                batch read: ([Int]) throws -> (x0: Tensor, regions: Tensor, labels: Tensor)) rethrows
            -> (probabilities: Tensor, scores: [Double]) {
            var probabilities: [Float] = []
            var scores: [Double] = []
            probabilities.reserveCapacity(count * labelCount)
            scores.reserveCapacity(count * labelCount)
            var lo = 0
            while lo < count {
                let hi = min(lo + max(batchSize, 1), count)
                let batch = try read(Array(lo..<hi))
                let out = model.infer(parameters, x0: batch.x0, regions: batch.regions)
                probabilities += out.probabilities.scalars
                scores += out.scores
                lo = hi
            }
            return (Tensor(probabilities, shape: [count, labelCount]), scores)
        }

        /// Validation mAP of the current parameters (nil when no label has a known positive).
        public func meanAveragePrecision(_ features: any FeaturesSource) throws -> Double? {
            let scores = try Trainer.predictions(model: model, parameters: parameters, features: features).scores
            return Metrics.meanAveragePrecision(try Metrics.Input(probabilities: scores, targets: features.allLabels()))
        }
    }

    /// Training cannot go on; the message says why.
    public struct TrainingError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }
}
