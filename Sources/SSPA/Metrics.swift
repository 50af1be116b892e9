import Foundation
import Tensor

extension SSPA {
    /// Evaluation metrics of SSPA-SPEC.md ("Metrics"): pure functions of probabilities `p` [N, C] and targets
    /// `y` [N, C] in {1, 0, −1}. An entry with `y = −1` is unknown and is left out of every count, ranking and average.
    ///
    /// Every value is a fraction in [0, 1] (the text table shows percentages). A value that is undefined for the
    /// data (for example mAP when no label has a known positive) is `nil`, never NaN, so a `Report` always encodes
    /// to JSON. All arithmetic is in Double, and scores are Double: the model's `p` computed in float64 from its
    /// logits (`probabilities(regionLogits:globalLogits:)`), so that saturated probabilities (σ(s) rounds to 1 in
    /// float32 for s ≳ 17) do not tie.
    ///
    /// Conventions (SSPA-SPEC.md, "Metrics"; where it leaves a detail open it is fixed here and tested):
    /// - **mAP.** For each label, the samples with a known target are sorted by score descending; remaining equal
    ///   scores keep sample order (the earlier sample ranks first). AP = the mean, over the label's positives, of the
    ///   precision at that positive's rank. Without ties this is exactly scikit-learn's `average_precision_score`.
    ///   With ties it is not: scikit-learn takes one precision/recall step for a whole group of equal scores, here
    ///   each sample is its own step in index order (so a positive listed before a tied negative gains). mAP is the
    ///   mean AP over the labels with at least one known positive; the others are excluded (`averagePrecisions`
    ///   gives them as `nil`).
    /// - **Prediction.** At a threshold `t` a label is predicted positive when `p ≥ t` (the ML-GCN / ASL rule; 0.5
    ///   on probabilities is logit ≥ 0). At top-k a label is predicted positive when it is among the k
    ///   highest-scoring labels of its sample *and* `p ≥ 0.5` (ML-GCN's top-3 evaluation and the papers that follow
    ///   it); the k are chosen among *all* C labels (the model cannot know which are unknown; unknown entries are
    ///   then not counted); equal scores keep label order (the lower label index first).
    /// - **CP / CR / CF1.** Per-class precision TP/(TP+FP) and recall TP/(TP+FN), averaged over the labels with at
    ///   least one known positive (the same set as mAP). A label with no predicted positive has precision 0.
    ///   CF1 = 2·CP·CR/(CP+CR), the F1 *of the averages* (ML-GCN / ASL convention, not the mean of per-class F1s);
    ///   0 when CP + CR = 0.
    /// - **OP / OR / OF1.** Precision and recall of the TP/FP/FN counts pooled over all known entries;
    ///   OF1 = 2·OP·OR/(OP+OR). OP is 0 when nothing is predicted; OR is `nil` when there is no known positive.
    /// - **mA.** For each attribute, (TPR + TNR)/2 at threshold 0.5 over its known entries (scikit-learn's
    ///   `balanced_accuracy_score`). An attribute without a known positive or without a known negative is excluded
    ///   (balanced accuracy is undefined for it; the PA-100K eps code would instead score it TNR/2 or TPR/2).
    /// - **Instance Acc / Prec / Rec / F1** (the PA-100K convention). Per sample, over its known labels, with
    ///   P = predicted positives (p ≥ 0.5) and T = true positives: |P∩T|/|P∪T|, |P∩T|/|P|, |P∩T|/|T|; a ratio with a
    ///   zero denominator is 0 (the eps of the PA-100K code; scikit-learn's `zero_division=0`). Each is averaged over
    ///   the samples with at least one known label; F1 = 2·Prec·Rec/(Prec+Rec) of those averages (0 if both are 0).
    public enum Metrics {}
}

extension SSPA.Metrics {
    /// Bad metric input.
    public enum InputError: Error, Equatable, CustomStringConvertible {
        case shape(String)
        case empty
        case nonFiniteScore(sample: Int, label: Int)
        case invalidTarget(sample: Int, label: Int, value: Float)

        public var description: String {
            switch self {
            case .shape(let s): return "metrics: \(s)"
            case .empty: return "metrics: the dataset is empty (no samples or no labels)"
            case .nonFiniteScore(let n, let c): return "metrics: score of sample \(n), label \(c) is not finite"
            case .invalidTarget(let n, let c, let v):
                return "metrics: target of sample \(n), label \(c) is \(v); targets must be 1, 0 or -1 (unknown)"
            }
        }
    }

    /// Validated scores and targets, row-major [samples, labels].
    public struct Input: Sendable {
        public let samples: Int
        public let labels: Int
        /// Probabilities, row-major [samples, labels], in float64.
        public let scores: [Double]
        /// 1 positive, 0 negative, −1 unknown; row-major [samples, labels].
        public let targets: [Int8]

        public init(scores: [Float], targets: [Int8], samples: Int, labels: Int) throws {
            try self.init(probabilities: scores.map(Double.init), targets: targets, samples: samples, labels: labels)
        }

        /// Probabilities in float64 (the model's `Output.scores`, computed from the logits).
        public init(probabilities scores: [Double], targets: [Int8], samples: Int, labels: Int) throws {
            guard samples > 0, labels > 0 else { throw InputError.empty }
            guard scores.count == samples * labels else {
                throw InputError.shape("\(scores.count) scores for \(samples) samples × \(labels) labels")
            }
            guard targets.count == samples * labels else {
                throw InputError.shape("\(targets.count) targets for \(samples) samples × \(labels) labels")
            }
            for i in 0..<scores.count where !scores[i].isFinite {
                throw InputError.nonFiniteScore(sample: i / labels, label: i % labels)
            }
            for i in 0..<targets.count where targets[i] < -1 || targets[i] > 1 {
                throw InputError.invalidTarget(sample: i / labels, label: i % labels, value: Float(targets[i]))
            }
            self.samples = samples
            self.labels = labels
            self.scores = scores
            self.targets = targets
        }

        public init(scores: [Float], targets: [Float], samples: Int, labels: Int) throws {
            guard targets.count == samples * labels else {
                throw InputError.shape("\(targets.count) targets for \(samples) samples × \(labels) labels")
            }
            var t = [Int8](repeating: 0, count: targets.count)
            for i in 0..<targets.count {
                let v = targets[i]
                guard v == 1 || v == 0 || v == -1 else {
                    throw InputError.invalidTarget(sample: i / max(labels, 1), label: i % max(labels, 1), value: v)
                }
                t[i] = Int8(v)
            }
            try self.init(scores: scores, targets: t, samples: samples, labels: labels)
        }

        /// Scores and targets as [N, C] tensors (targets hold 1, 0 or −1).
        public init(scores: Tensor, targets: Tensor) throws {
            guard scores.rank == 2 else { throw InputError.shape("scores must be [N, C], got \(scores.shape)") }
            guard targets.shape == scores.shape else {
                throw InputError.shape("targets \(targets.shape) do not match scores \(scores.shape)")
            }
            try self.init(scores: scores.scalars, targets: targets.scalars, samples: scores.shape[0], labels: scores.shape[1])
        }

        /// Float64 probabilities, row-major [N, C], with targets as an [N, C] tensor holding 1, 0 or −1.
        public init(probabilities: [Double], targets: Tensor) throws {
            guard targets.rank == 2 else { throw InputError.shape("targets must be [N, C], got \(targets.shape)") }
            var t = [Int8](repeating: 0, count: targets.count)
            let values = targets.scalars
            for i in values.indices {
                guard values[i] == 1 || values[i] == 0 || values[i] == -1 else {
                    throw InputError.invalidTarget(sample: i / targets.shape[1], label: i % targets.shape[1], value: values[i])
                }
                t[i] = Int8(values[i])
            }
            try self.init(probabilities: probabilities, targets: t, samples: targets.shape[0], labels: targets.shape[1])
        }

        /// Scores as an [N, C] tensor, targets as int8 (the features file's `labels`).
        public init(scores: Tensor, targets: [Int8]) throws {
            guard scores.rank == 2 else { throw InputError.shape("scores must be [N, C], got \(scores.shape)") }
            try self.init(scores: scores.scalars, targets: targets, samples: scores.shape[0], labels: scores.shape[1])
        }

        @inline(__always) func score(_ n: Int, _ c: Int) -> Double { scores[n * labels + c] }
        @inline(__always) func target(_ n: Int, _ c: Int) -> Int8 { targets[n * labels + c] }
    }

    /// Which labels of a sample are predicted positive.
    public enum Selection: Sendable, Equatable, Codable {
        /// p ≥ t.
        case threshold(Float)
        /// Among the k highest scores of each sample (ties: lower label index first) and p ≥ `atLeast`.
        case topK(Int, atLeast: Float = 0.5)
    }

    /// Per-class and overall precision, recall and F1 at one `Selection`.
    public struct ClassOverall: Sendable, Equatable, Codable {
        public var cp: Double?
        public var cr: Double?
        public var cf1: Double?
        public var op: Double?
        public var or: Double?
        public var of1: Double?

        public init(cp: Double?, cr: Double?, cf1: Double?, op: Double?, or: Double?, of1: Double?) {
            self.cp = cp; self.cr = cr; self.cf1 = cf1; self.op = op; self.or = or; self.of1 = of1
        }
    }

    /// Instance-level (per-sample) metrics, PA-100K convention.
    public struct Instance: Sendable, Equatable, Codable {
        public var accuracy: Double?
        public var precision: Double?
        public var recall: Double?
        public var f1: Double?

        public init(accuracy: Double?, precision: Double?, recall: Double?, f1: Double?) {
            self.accuracy = accuracy; self.precision = precision; self.recall = recall; self.f1 = f1
        }
    }

    // MARK: - mAP

    /// Average precision of each label; `nil` for a label with no known positive.
    public static func averagePrecisions(_ input: Input) -> [Double?] {
        (0..<input.labels).map { averagePrecision(input, label: $0) }
    }

    /// Average precision of one label (see the type's documentation for the tie rule); `nil` without a positive.
    public static func averagePrecision(_ input: Input, label c: Int) -> Double? {
        var rows: [Int] = []
        rows.reserveCapacity(input.samples)
        var positives = 0
        for n in 0..<input.samples {
            let t = input.target(n, c)
            if t == -1 { continue }
            rows.append(n)
            if t == 1 { positives += 1 }
        }
        guard positives > 0 else { return nil }
        rows.sort { a, b in
            let sa = input.score(a, c), sb = input.score(b, c)
            return sa != sb ? sa > sb : a < b
        }
        var hits = 0
        var sum = 0.0
        for (rank, n) in rows.enumerated() where input.target(n, c) == 1 {
            hits += 1
            sum += Double(hits) / Double(rank + 1)
        }
        return sum / Double(positives)
    }

    /// Mean AP over the labels with at least one known positive; `nil` if there is none.
    public static func meanAveragePrecision(_ input: Input) -> Double? {
        mean(averagePrecisions(input).compactMap { $0 })
    }

    // MARK: - Predictions

    /// Predicted positives as a row-major [samples, labels] mask.
    public static func predictions(_ input: Input, _ selection: Selection) -> [Bool] {
        var pred = [Bool](repeating: false, count: input.samples * input.labels)
        switch selection {
        case .threshold(let t):
            for i in 0..<pred.count { pred[i] = input.scores[i] >= Double(t) }
        case .topK(let k, let floor):
            let k = max(0, min(k, input.labels))
            for n in 0..<input.samples {
                let order = (0..<input.labels).sorted { a, b in
                    let sa = input.score(n, a), sb = input.score(n, b)
                    return sa != sb ? sa > sb : a < b
                }
                for c in order.prefix(k) where input.score(n, c) >= Double(floor) { pred[n * input.labels + c] = true }
            }
        }
        return pred
    }

    // MARK: - CP / CR / CF1, OP / OR / OF1

    public static func classAndOverall(_ input: Input, _ selection: Selection) -> ClassOverall {
        let pred = predictions(input, selection)
        var tp = [Int](repeating: 0, count: input.labels)
        var fp = tp, fn = tp
        for n in 0..<input.samples {
            for c in 0..<input.labels {
                let i = n * input.labels + c
                switch (input.targets[i], pred[i]) {
                case (1, true): tp[c] += 1
                case (1, false): fn[c] += 1
                case (0, true): fp[c] += 1
                default: break
                }
            }
        }
        var precisions: [Double] = [], recalls: [Double] = []
        for c in 0..<input.labels where tp[c] + fn[c] > 0 {
            precisions.append(ratio(tp[c], tp[c] + fp[c]))
            recalls.append(ratio(tp[c], tp[c] + fn[c]))
        }
        let cp = mean(precisions), cr = mean(recalls)
        let TP = tp.reduce(0, +), FP = fp.reduce(0, +), FN = fn.reduce(0, +)
        let op: Double? = ratio(TP, TP + FP)
        let or: Double? = TP + FN > 0 ? ratio(TP, TP + FN) : nil
        return ClassOverall(cp: cp, cr: cr, cf1: f1(cp, cr), op: op, or: or, of1: f1(op, or))
    }

    // MARK: - mA

    /// Mean over attributes of (TPR + TNR)/2 at `threshold`; attributes lacking a known positive or a known negative
    /// are excluded; `nil` when every attribute is.
    public static func meanAccuracy(_ input: Input, threshold: Double = 0.5) -> Double? {
        var values: [Double] = []
        for c in 0..<input.labels {
            var tp = 0, pos = 0, tn = 0, neg = 0
            for n in 0..<input.samples {
                let predicted = input.score(n, c) >= threshold
                switch input.target(n, c) {
                case 1: pos += 1; if predicted { tp += 1 }
                case 0: neg += 1; if !predicted { tn += 1 }
                default: break
                }
            }
            guard pos > 0, neg > 0 else { continue }
            values.append((ratio(tp, pos) + ratio(tn, neg)) / 2)
        }
        return mean(values)
    }

    // MARK: - Instance metrics

    /// Instance Acc / Prec / Rec / F1 at `threshold` (PA-100K convention); `nil` when no sample has a known label.
    public static func instance(_ input: Input, threshold: Double = 0.5) -> Instance {
        var acc: [Double] = [], prec: [Double] = [], rec: [Double] = []
        for n in 0..<input.samples {
            var known = 0, inter = 0, union = 0, predicted = 0, truth = 0
            for c in 0..<input.labels {
                let t = input.target(n, c)
                if t == -1 { continue }
                known += 1
                let p = input.score(n, c) >= threshold
                if p { predicted += 1 }
                if t == 1 { truth += 1 }
                if p && t == 1 { inter += 1 }
                if p || t == 1 { union += 1 }
            }
            guard known > 0 else { continue }
            acc.append(ratio(inter, union))
            prec.append(ratio(inter, predicted))
            rec.append(ratio(inter, truth))
        }
        let p = mean(prec), r = mean(rec)
        return Instance(accuracy: mean(acc), precision: p, recall: r, f1: f1(p, r))
    }

    // MARK: - Scores from logits

    /// The prediction `p = (σ(s^G) + σ(s^R)) / 2` (or `σ(s^R)` without a global branch) in float64 from float32
    /// logits, element by element: the scores every metric ranks (SSPA-SPEC.md, "Metrics").
    public static func probabilities(regionLogits: [Float], globalLogits: [Float]?) -> [Double] {
        func sigmoid(_ s: Float) -> Double { 1 / (1 + Foundation.exp(-Double(s))) }
        guard let globalLogits else { return regionLogits.map(sigmoid) }
        precondition(globalLogits.count == regionLogits.count, "metrics: \(globalLogits.count) global and \(regionLogits.count) region logits")
        return zip(regionLogits, globalLogits).map { (sigmoid($0) + sigmoid($1)) / 2 }
    }

    // MARK: - Helpers

    /// a/b, or 0 when b = 0.
    @inline(__always) static func ratio(_ a: Int, _ b: Int) -> Double { b == 0 ? 0 : Double(a) / Double(b) }

    static func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }

    /// 2PR/(P+R); 0 when P + R = 0; `nil` if either is undefined.
    static func f1(_ p: Double?, _ r: Double?) -> Double? {
        guard let p, let r else { return nil }
        return p + r == 0 ? 0 : 2 * p * r / (p + r)
    }
}
