import CLIP
import Foundation
import Images
import Tensor

extension SSPA {
    /// Labels for image files with a trained model: decodes and encodes them with the CLIP vision tower, runs the
    /// model's inference path (`Model.infer`, as evaluation does) and picks labels by threshold or top k, with the
    /// region weights ω of the labels to explain. What `sspa predict` prints, and what anything serving predictions
    /// would call.
    public struct Predictor {
        public let model: Model
        public let parameters: Parameters
        public let encoder: ImageEncoder
        /// The label set's name, raw label names and display names, in column order.
        public let labelSet: String
        public let labels: [String]
        public let displayNames: [String]
        /// How the checkpoint is named in messages.
        public let source: String

        public init(model: Model, parameters: Parameters, encoder: ImageEncoder, labelSet: String, labels: [String],
                    displayNames: [String], source: String) throws {
            guard encoder.width == model.width else {
                throw PredictionError("the vision tower projects to \(encoder.width), the model to d = \(model.width)")
            }
            guard labels.count == model.labelCount, displayNames.count == labels.count else {
                throw PredictionError("\(labels.count) labels and \(displayNames.count) display names for a model of \(model.labelCount) labels")
            }
            self.model = model
            self.parameters = parameters
            self.encoder = encoder
            self.labelSet = labelSet
            self.labels = labels
            self.displayNames = displayNames
            self.source = source
        }

        /// Which labels are predicted.
        public enum Selection: Sendable, Hashable {
            /// Every label with `p` above the threshold.
            case threshold(Float)
            /// The k most probable labels.
            case top(Int)
        }

        /// One predicted label with its scores.
        public struct Label: Codable, Sendable, Hashable {
            public var label: String
            public var display: String
            /// `p`.
            public var probability: Double
            /// `sigmoid(s^G)` (absent with no-global).
            public var global: Double?
            /// `sigmoid(s^R)`.
            public var regional: Double
            /// The V→S GDMA gate `g_t` (absent with no-gdma).
            public var gate: Double?
        }

        /// The prediction for one image.
        public struct Prediction: Sendable {
            /// The image's position in the list given to `predict`.
            public var index: Int
            public var image: URL
            public var labels: [Label]
            /// The labels explained: the predicted ones, or the most probable one when none is predicted.
            public var explained: [String]
            /// ω over the regions (`grid × grid`, row-major as the patches) of each explained label.
            public var maps: [[Float]]
            /// The centre crop the model saw (only when asked for).
            public var crop: Images.Image?
        }

        /// What one call of `predict` gives: the images that could be read, in order, and those that could not.
        public struct Batch: Sendable {
            public var predictions: [Prediction]
            public var failed: [(image: URL, error: String)]
        }

        /// Predicts `images` as one batch (`keepCrops` keeps the centre crops, for heat maps).
        public func predict(_ images: [URL], selection: Selection, keepCrops: Bool = false) throws -> Batch {
            let decoded = encoder.decode(images, keepCrops: keepCrops)
            var good: [(index: Int, url: URL, item: ImageEncoder.Decoded)] = []
            var failed: [(image: URL, error: String)] = []
            for (index, (url, d)) in zip(images, decoded).enumerated() {
                if d.pixels != nil { good.append((index, url, d)) } else { failed.append((url, d.error ?? "\(url.path): cannot decode")) }
            }
            guard !good.isEmpty else { return Batch(predictions: [], failed: failed) }
            let features = encoder.encode(good.map { $0.item.pixels! })
            let out = model.infer(parameters, x0: features.x0, regions: features.regions)
            let c = labels.count, m = features.regions.shape[1]
            if let bad = Finite.firstBad(out.probabilities) {
                throw PredictionError("\(source): the model gives \(bad.what) for \(good[bad.index / c].url.path) (label \(labels[bad.index % c])); the checkpoint, the knowledge or the CLIP weights hold non-finite values")
            }
            let p = out.probabilities.scalars
            let regional = Ops.sigmoid(out.regionLogits.value).scalars
            let global = out.globalLogits.map { Ops.sigmoid($0.value).scalars }
            let gates = out.labelGates?.scalars
            let omega = out.omega.scalars  // [B, M, C]
            var predictions: [Prediction] = []
            for (b, entry) in good.enumerated() {
                let row = Array(p[(b * c)..<((b + 1) * c)])
                let order = row.indices.sorted { row[$0] > row[$1] }
                let chosen: [Int] = switch selection {
                case .top(let k): Array(order.prefix(k))
                case .threshold(let threshold): order.filter { row[$0] > threshold }
                }
                let explained = chosen.isEmpty ? [order[0]] : chosen
                predictions.append(Prediction(
                    index: entry.index, image: entry.url,
                    labels: chosen.map { j in
                        Label(label: labels[j], display: displayNames[j], probability: Double(row[j]),
                              global: global.map { Double($0[b * c + j]) }, regional: Double(regional[b * c + j]),
                              gate: gates.map { Double($0[b * c + j]) })
                    },
                    explained: explained.map { labels[$0] },
                    maps: explained.map { j in (0..<m).map { omega[(b * m + $0) * c + j] } },
                    crop: entry.item.crop))
            }
            return Batch(predictions: predictions, failed: failed)
        }
    }

    /// A prediction that cannot be made; the message says why.
    public struct PredictionError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }
}
