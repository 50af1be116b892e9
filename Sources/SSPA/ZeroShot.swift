import Foundation
import Tensor

extension SSPA {
    /// Zero-shot CLIP baselines on a features file, with no training: the row researchers report next to a trained
    /// model. Each label is scored by its knowledge vector `t^ka` alone:
    /// - `global`: `cos(x0, t^ka)`;
    /// - `regionalMax`: `max_m cos(X_m, t^ka)`;
    /// - `regionalSoft`: `Σ_m ω_m cos(X_m, t^ka)` with `ω = softmax_m(cos(X, t^ka) / τ)`.
    ///
    /// The similarity `u` becomes a probability by the model's initial transform, `p = σ(κ·u + b)` with the spec's
    /// initial `κ` 20, `b` −5 and soft `τ` 0.2 (`Config.kappaInit`, `biasInit`, `tauInit`), so that every metric,
    /// thresholded ones included, is defined. A monotone transform of one score changes no ranking, so mAP is that
    /// of the raw cosines. Probabilities are float64, as the metrics rank them.
    public enum ZeroShot {
        /// One baseline.
        public enum Method: String, CaseIterable, Codable, Sendable {
            case global
            case regionalMax = "regional-max"
            case regionalSoft = "regional-soft"

            /// The row label of the comparison table.
            public var title: String {
                switch self {
                case .global: return "zero-shot global"
                case .regionalMax: return "zero-shot regional max"
                case .regionalSoft: return "zero-shot regional soft"
                }
            }
        }

        /// `p` of every method, row-major `[N, C]` in float64, for `features` and knowledge `T^ka` `[C, d]`.
        // SSPA-SPEC.md, global branch and soft aggregator at their initial values, with t^ka for the learned prompts
        public static func probabilities(features: Features, knowledge: Tensor, config: Config = Config(),
                                         batchSize: Int = 64) -> [Method: [Double]] {
            probabilities(source: features, knowledge: knowledge, config: config, batchSize: batchSize) { features.batch($0) }
        }

        /// `p` of every method for features read a batch at a time (only `N × C` per method is held).
        public static func probabilities(features: any FeaturesSource, knowledge: Tensor, config: Config = Config(),
                                         batchSize: Int = 64) throws -> [Method: [Double]] {
            try probabilities(source: features, knowledge: knowledge, config: config, batchSize: batchSize) { try features.batch($0) }
        }

        static func probabilities(source features: any FeaturesSource, knowledge: Tensor, config: Config, batchSize: Int,
                                  batch read: ([Int]) throws -> (x0: Tensor, regions: Tensor, labels: Tensor)) rethrows
            -> [Method: [Double]] {
            precondition(knowledge.rank == 2 && knowledge.shape[1] == features.width,
                         "ZeroShot: knowledge must be [C, \(features.width)], got \(knowledge.shape)")
            let c = knowledge.shape[0], m = features.regionCount, d = features.width
            let kappa = Double(config.kappaInit), bias = Double(config.biasInit), tau = Double(config.tauInit)
            let t = Ops.l2Normalize(knowledge, eps: config.normEps)
            func probability(_ u: Double) -> Double { 1 / (1 + Foundation.exp(-(kappa * u + bias))) }
            var out: [Method: [Double]] = [:]
            for method in Method.allCases { out[method] = [] }
            var lo = 0
            while lo < features.count {
                let hi = min(lo + max(batchSize, 1), features.count)
                let batch = try read(Array(lo..<hi))
                let b = hi - lo
                let global = Ops.matmul(Ops.l2Normalize(batch.x0, eps: config.normEps), t, transposeB: true).scalars
                out[.global]! += global.map { probability(Double($0)) }
                // S [B·M, C]: row (image, region), column label.
                let regions = Ops.l2Normalize(batch.regions.reshaped([b * m, d]), eps: config.normEps)
                let s = Ops.matmul(regions, t, transposeB: true).scalars
                var maxPooled = [Double](repeating: 0, count: b * c), softPooled = maxPooled
                for image in 0..<b {
                    for label in 0..<c {
                        var column = [Double](repeating: 0, count: m)
                        for r in 0..<m { column[r] = Double(s[(image * m + r) * c + label]) }
                        let top = column.max() ?? 0
                        // softmax over m of S/τ, shifted by the maximum for stability
                        let weights = column.map { Foundation.exp(($0 - top) / tau) }
                        let total = weights.reduce(0, +)
                        maxPooled[image * c + label] = top
                        softPooled[image * c + label] = zip(weights, column).reduce(0) { $0 + $1.0 * $1.1 } / total
                    }
                }
                out[.regionalMax]! += maxPooled.map(probability)
                out[.regionalSoft]! += softPooled.map(probability)
                lo = hi
            }
            return out
        }

        /// The metrics of every method on `features` (labels as in the file; unknown entries left out).
        public static func reports(features: any FeaturesSource, knowledge: Tensor, labelNames: [String]? = nil,
                                   config: Config = Config(), batchSize: Int = 64) throws -> [Method: Metrics.Report] {
            var reports: [Method: Metrics.Report] = [:]
            let targets = try features.allLabels()
            for (method, p) in try probabilities(features: features, knowledge: knowledge, config: config, batchSize: batchSize) {
                reports[method] = try Metrics.Report(Metrics.Input(probabilities: p, targets: targets), labelNames: labelNames)
            }
            return reports
        }
    }
}
