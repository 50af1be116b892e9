import Foundation
import Tensor
import TestSupport
import Testing
@testable import SSPA

private typealias M = SSPA.Metrics

/// Absolute tolerance of every comparison here (all values are fractions in [0, 1], computed in Double).
private let tolerance = 1e-6

private func close(_ a: Double?, _ b: Double?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    return abs(a - b) <= tolerance
}

/// Builds an input from rows of scores and rows of targets.
private func input(_ scores: [[Float]], _ targets: [[Int8]]) throws -> M.Input {
    try M.Input(scores: scores.flatMap { $0 }, targets: targets.flatMap { $0 },
                samples: scores.count, labels: scores.first?.count ?? 0)
}

/// Hand-computed cases for each metric of SSPA.Metrics.
@Suite("SSPA metrics: hand-computed cases")
struct MetricsHandTests {
    @Test("AP and mAP: unknown entries excluded, labels without a positive excluded")
    func averagePrecision() throws {
        // label 0: order s0+ s1- s2+ s3- s4+  → precision at the positives 1/1, 2/3, 3/5 → AP = 34/45.
        // label 1: s2 (0.5) is unknown. Known order s4+ (0.6) s1+ (0.4) s3- (0.2) s0- (0.1) → AP = 1.
        //          (Counting s2 as a negative would give s4+ s2- s1+ → (1 + 2/3)/2 = 5/6.)
        // label 2: no positive (one unknown) → nil, left out of mAP.
        // mAP = (34/45 + 1)/2 = 79/90.
        let x = try input(
            [[0.9, 0.1, 0.3], [0.8, 0.4, 0.3], [0.7, 0.5, 0.3], [0.6, 0.2, 0.3], [0.5, 0.6, 0.3]],
            [[1, 0, 0], [0, 1, 0], [1, -1, -1], [0, 0, 0], [1, 1, 0]])
        let aps = M.averagePrecisions(x)
        #expect(close(aps[0], 34.0 / 45) && close(aps[1], 1) && aps[2] == nil)
        #expect(close(M.meanAveragePrecision(x), 79.0 / 90))
        // No label with a positive at all: mAP is undefined.
        let none = try input([[0.3, 0.7]], [[0, -1]])
        #expect(M.meanAveragePrecision(none) == nil)
    }

    @Test("AP with tied scores: the earlier sample ranks first")
    func ties() throws {
        // Scores 0.5, 0.5, 0.5, 0.2 on one label.
        // y = 1 0 0 1: order s0+ s1- s2- s3+ → (1/1 + 2/4)/2 = 3/4.
        // y = 0 0 1 1: order s0- s1- s2+ s3+ → (1/3 + 2/4)/2 = 5/12.
        // scikit-learn steps over the tied group at once and gives 5/12 for both; without ties the two agree.
        let scores: [[Float]] = [[0.5], [0.5], [0.5], [0.2]]
        #expect(close(M.averagePrecision(try input(scores, [[1], [0], [0], [1]]), label: 0), 3.0 / 4))
        #expect(close(M.averagePrecision(try input(scores, [[0], [0], [1], [1]]), label: 0), 5.0 / 12))
    }

    // scores                 targets
    // s0: 0.9  0.6  0.2      1  0  0
    // s1: 0.3  0.8  0.7      0  1 -1
    // s2: 0.55 0.1  0.4      1  0  1
    // s3: 0.2  0.65 0.35     0  1  0
    private func classOverallInput() throws -> M.Input {
        try input([[0.9, 0.6, 0.2], [0.3, 0.8, 0.7], [0.55, 0.1, 0.4], [0.2, 0.65, 0.35]],
                  [[1, 0, 0], [0, 1, -1], [1, 0, 1], [0, 1, 0]])
    }

    @Test("CP/CR/CF1 and OP/OR/OF1 at threshold 0.5")
    func atThreshold() throws {
        // Predicted (p ≥ 0.5): s0 {0,1}, s1 {1,2}, s2 {0}, s3 {1}.
        // label 0: TP 2 (s0, s2), FP 0, FN 0 → P 1, R 1.
        // label 1: TP 2 (s1, s3), FP 1 (s0), FN 0 → P 2/3, R 1.
        // label 2: s1 is unknown (its 0.7 would be an FP); TP 0, FP 0, FN 1 (s2) → P 0 (nothing predicted), R 0.
        // CP = (1 + 2/3 + 0)/3 = 5/9, CR = 2/3, CF1 = 2·(5/9)(2/3)/(5/9 + 2/3) = 20/33
        //   (the mean of per-class F1s would be (1 + 0.8 + 0)/3 = 0.6).
        // OP = 4/(4 + 1) = 4/5, OR = 4/(4 + 1) = 4/5, OF1 = 4/5.
        let m = M.classAndOverall(try classOverallInput(), .threshold(0.5))
        #expect(close(m.cp, 5.0 / 9) && close(m.cr, 2.0 / 3) && close(m.cf1, 20.0 / 33))
        #expect(close(m.op, 4.0 / 5) && close(m.or, 4.0 / 5) && close(m.of1, 4.0 / 5))
    }

    @Test("CP/CR/CF1 and OP/OR/OF1 at top-k")
    func atTopK() throws {
        // Top-1 of the matrix above: s0 → 0, s1 → 1, s2 → 0, s3 → 1.
        // label 0: TP 2 → P 1, R 1; label 1: TP 2, FN 0 → P 1, R 1; label 2: nothing predicted, FN 1 → P 0, R 0.
        // CP = CR = CF1 = 2/3. OP = 4/4 = 1, OR = 4/5, OF1 = 2·0.8/1.8 = 8/9.
        let m = M.classAndOverall(try classOverallInput(), .topK(1))
        #expect(close(m.cp, 2.0 / 3) && close(m.cr, 2.0 / 3) && close(m.cf1, 2.0 / 3))
        #expect(close(m.op, 1) && close(m.or, 4.0 / 5) && close(m.of1, 8.0 / 9))

        // Top-3 of one sample: scores 0.1 0.9 0.3 0.8 0.7, y 1 1 0 0 1 → predicted {1, 3, 4}.
        // TP {1, 4}, FP {3}, FN {0}: OP = OR = 2/3. Labels with a positive: 0 (P 0, R 0), 1 (1, 1), 4 (1, 1)
        // → CP = CR = 2/3 (label 3's FP is not in CP: it has no positive).
        let t = M.classAndOverall(try input([[0.1, 0.9, 0.3, 0.8, 0.7]], [[1, 1, 0, 0, 1]]), .topK(3))
        #expect(close(t.cp, 2.0 / 3) && close(t.cr, 2.0 / 3) && close(t.op, 2.0 / 3) && close(t.or, 2.0 / 3))

        // Top-k chooses among all labels, unknown ones included: scores 0.2 0.8 0.9, y 0 1 −1, top-1 → label 2,
        // which is not counted; label 1 is an FN. OR = 0, OP = 0 (nothing counted as predicted).
        let u = M.classAndOverall(try input([[0.2, 0.8, 0.9]], [[0, 1, -1]]), .topK(1))
        #expect(close(u.or, 0) && close(u.op, 0) && close(u.of1, 0))

        // Ties at top-k: the lower label index wins. Scores 0.5 0.5 0.5, top-1 → label 0.
        #expect(M.predictions(try input([[0.5, 0.5, 0.5]], [[0, 0, 1]]), .topK(1)) == [true, false, false])
        // k ≥ C predicts every label with p ≥ 0.5 (and only those: SSPA-SPEC's ML-GCN top-3 rule).
        #expect(M.predictions(try input([[0.6, 0.7]], [[0, 1]]), .topK(3)) == [true, true])
        #expect(M.predictions(try input([[0.1, 0.7]], [[0, 1]]), .topK(3)) == [false, true])
    }

    @Test("top-3 counts a label only if p ≥ 0.5 (ML-GCN)")
    func topThreeNeedsHalf() throws {
        // One sample: scores 0.9 0.4 0.3 0.2, y 1 1 0 0. The 3 most probable are {0, 1, 2}, but only label 0 has
        // p ≥ 0.5, so only it is predicted: TP {0}, FN {1}, no FP → OP = 1, OR = 1/2, OF1 = 2/3.
        // Labels with a positive: 0 (P 1, R 1), 1 (P 0, R 0) → CP = CR = 1/2.
        // (Counting all three would give FP {2}: OP 2/3, OR 1.)
        let x = try input([[0.9, 0.4, 0.3, 0.2]], [[1, 1, 0, 0]])
        #expect(M.predictions(x, .topK(3)) == [true, false, false, false])
        let m = M.classAndOverall(x, .topK(3))
        #expect(close(m.op, 1) && close(m.or, 1.0 / 2) && close(m.of1, 2.0 / 3), "\(m)")
        #expect(close(m.cp, 1.0 / 2) && close(m.cr, 1.0 / 2), "\(m)")
        #expect(try M.Report(x).top3 == m)
    }

    @Test("AP ranks float64 scores from the logits, so saturated probabilities do not tie")
    func saturatedLogits() throws {
        // Region logits 18 (negative, sample 0) and 20 (positive, sample 1), no global branch. In float32 both
        // probabilities round to 1, the tie keeps sample order and AP = 1/2; in float64 from the logits they are
        // 1 − 1.5e-8 and 1 − 2.1e-9, the positive ranks first and AP = 1.
        let logits: [Float] = [18, 20]
        #expect(Ops.sigmoid(Tensor(logits, shape: [2])).scalars == [1, 1], "the case needs float32 to tie")
        let tied = try M.Input(scores: Ops.sigmoid(Tensor(logits, shape: [2, 1])), targets: Tensor([0, 1], shape: [2, 1]))
        #expect(close(M.averagePrecision(tied, label: 0), 1.0 / 2))
        let scores = M.probabilities(regionLogits: logits, globalLogits: nil)
        #expect(scores[0] < scores[1] && scores[1] < 1)
        let exact = try M.Input(probabilities: scores, targets: Tensor([0, 1], shape: [2, 1]))
        #expect(close(M.averagePrecision(exact, label: 0), 1))
        // With a global branch, p = (σ(s^G) + σ(s^R)) / 2 in float64.
        let both = M.probabilities(regionLogits: [0, 18], globalLogits: [2, 20])
        #expect(abs(both[0] - (0.5 + 1 / (1 + exp(-2.0))) / 2) < 1e-15)
        #expect(both[1] < 1 && both[1] > 1 - 1e-8)
        // Remaining ties (equal logits) still keep sample order: the hand cases of "AP with tied scores" hold.
    }

    @Test("mA: (TPR + TNR)/2 at 0.5; unknowns and one-sided attributes excluded")
    func meanAccuracy() throws {
        // attr 0: y 1 1 0 0, p .9 .4 .3 .6 → TPR 1/2, TNR 1/2 → 1/2.
        // attr 1: y 1 0 0 −1, p .7 .2 .1 .9 → TPR 1, TNR 1 → 1 (the unknown 0.9 would make TNR 2/3).
        // attr 2: y 0 0 0 −1 → no positive → excluded.
        // mA = (1/2 + 1)/2 = 3/4.
        let x = try input([[0.9, 0.7, 0.8], [0.4, 0.2, 0.1], [0.3, 0.1, 0.1], [0.6, 0.9, 0.9]],
                          [[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, -1, -1]])
        #expect(close(M.meanAccuracy(x), 3.0 / 4))
        #expect(M.meanAccuracy(try input([[0.9]], [[1]])) == nil)
    }

    @Test("instance Acc/Prec/Rec/F1 (PA-100K convention)")
    func instance() throws {
        // s0: p .9 .8 .1 .2, y 1 0 1 0 → P {0,1}, T {0,2}: ∩ 1, ∪ 3 → acc 1/3, prec 1/2, rec 1/2.
        // s1: p .1 .2 .3 .9, y 0 0 0 −1 → P {}, T {} (label 3 unknown) → 0, 0, 0 (zero denominators).
        // s2: p .6 .7 .8 .1, y 1 1 1 1 → P {0,1,2}, T {0,1,2,3}: ∩ 3, ∪ 4 → 3/4, 1, 3/4.
        // s3: every label unknown → not counted.
        // Acc = (1/3 + 0 + 3/4)/3 = 13/36, Prec = (1/2 + 0 + 1)/3 = 1/2, Rec = (1/2 + 0 + 3/4)/3 = 5/12,
        // F1 = 2·(1/2)(5/12)/(1/2 + 5/12) = 5/11 (F1 of the averages).
        let x = try input([[0.9, 0.8, 0.1, 0.2], [0.1, 0.2, 0.3, 0.9], [0.6, 0.7, 0.8, 0.1], [0.9, 0.9, 0.9, 0.9]],
                          [[1, 0, 1, 0], [0, 0, 0, -1], [1, 1, 1, 1], [-1, -1, -1, -1]])
        let m = M.instance(x)
        #expect(close(m.accuracy, 13.0 / 36) && close(m.precision, 1.0 / 2))
        #expect(close(m.recall, 5.0 / 12) && close(m.f1, 5.0 / 11))
    }

    @Test("bad input is a clear error; tensors and float targets are accepted")
    func validation() throws {
        #expect(throws: M.InputError.empty) { try M.Input(scores: [], targets: [Int8](), samples: 0, labels: 3) }
        #expect(throws: M.InputError.self) { try M.Input(scores: [0.1, 0.2], targets: [Int8]([1]), samples: 1, labels: 2) }
        #expect(throws: M.InputError.nonFiniteScore(sample: 1, label: 0)) {
            try M.Input(scores: [0.1, 0.2, .nan, 0.3], targets: [Int8]([1, 0, 0, 1]), samples: 2, labels: 2)
        }
        #expect(throws: M.InputError.invalidTarget(sample: 0, label: 1, value: 2)) {
            try M.Input(scores: [0.1, 0.2], targets: [Int8]([1, 2]), samples: 1, labels: 2)
        }
        #expect(throws: M.InputError.invalidTarget(sample: 0, label: 0, value: 0.5)) {
            try M.Input(scores: [0.1, 0.2], targets: [Float]([0.5, 1]), samples: 1, labels: 2)
        }
        #expect(throws: M.InputError.self) {
            try M.Input(scores: Tensor([0.1, 0.2], shape: [1, 2]), targets: Tensor([1, 0], shape: [2, 1]))
        }
        let t = try M.Input(scores: Tensor([0.1, 0.2, 0.3, 0.4], shape: [2, 2]), targets: Tensor([1, 0, -1, 1], shape: [2, 2]))
        #expect(t.samples == 2 && t.labels == 2 && t.targets == [1, 0, -1, 1])
        #expect(M.InputError.empty.description.contains("empty"))
    }

    @Test("Report: every metric, JSON round trip, text table")
    func report() throws {
        let x = try input([[0.9, 0.6, 0.2, 0.1], [0.3, 0.8, 0.7, 0.2], [0.55, 0.1, 0.4, 0.3], [0.2, 0.65, 0.35, 0.4]],
                          [[1, 0, 0, 0], [0, 1, -1, 0], [1, 0, 1, 0], [0, 1, 0, 0]])
        let r = try M.Report(x, labelNames: ["cat", "dog", "bird", "fish"])
        #expect(r.samples == 4 && r.labels == 4 && r.averagePrecision.count == 4 && r.averagePrecision[3] == nil)
        #expect(close(r.mAP, M.meanAveragePrecision(x)) && r.atThreshold == M.classAndOverall(x, .threshold(0.5)))
        #expect(r.top3 == M.classAndOverall(x, .topK(3)) && close(r.mA, M.meanAccuracy(x)) && r.instance == M.instance(x))
        let json = try JSONEncoder().encode(r)
        #expect(try JSONDecoder().decode(M.Report.self, from: json) == r)
        let text = r.table(perLabel: true)
        for needle in ["4 samples, 4 labels (3 with a positive)", "mAP", "CF1", "OF1", "top-3", "instance", "fish", "–"] {
            #expect(text.contains(needle), "table lacks \(needle):\n\(text)")
        }
        #expect(throws: M.InputError.self) { try M.Report(x, labelNames: ["cat"]) }
    }
}

/// Parity with scikit-learn on seeded random data (Tests/SSPATests/Fixtures/metrics_sklearn.json, written by
/// scripts/make_metrics_fixtures.py), tolerance 1e-6 absolute. The fixture is tie-free (scikit-learn treats a tie as
/// one step), so ranking conventions agree; ties are covered by the hand cases. One case holds float32 logits up to
/// 30: its scores are computed from them in float64 here, as the model's are, and in float32 they would tie.
@Suite("SSPA metrics: scikit-learn parity")
struct MetricsSklearnParityTests {
    struct Fixture: Decodable {
        struct Case: Decodable {
            struct ClassOverall: Decodable { let cp, cr, op, or: Double }
            struct Instance: Decodable { let accuracy, precision, recall: Double }
            struct Expected: Decodable {
                let ap: [Double?]
                let map: Double
                let threshold, top3: ClassOverall
                let ma: Double
                let instance: Instance
            }
            let name: String
            let scores: [Double]
            let targets: [Int8]
            /// Float32 logits; the scores are σ(logit) in float64 (the "saturated" case).
            let logits: [Double]?
            let expected: Expected
        }
        let samples, labels, k: Int
        let cases: [Case]
    }

    static func load() throws -> Fixture {
        let url = URL(fileURLWithPath: Repo.path("Tests/SSPATests/Fixtures/metrics_sklearn.json"))
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    private func check(_ m: M.ClassOverall, _ e: Fixture.Case.ClassOverall, _ name: String) {
        #expect(close(m.cp, e.cp) && close(m.cr, e.cr), "\(name): CP/CR \(m) vs \(e)")
        #expect(close(m.op, e.op) && close(m.or, e.or), "\(name): OP/OR \(m) vs \(e)")
        #expect(close(m.cf1, M.f1(e.cp, e.cr)) && close(m.of1, M.f1(e.op, e.or)), "\(name): F1")
    }

    @Test("AP, mAP, CP/CR/OP/OR at 0.5 and top-3, mA and instance metrics match scikit-learn")
    func parity() throws {
        let fixture = try Self.load()
        #expect(fixture.cases.count == 5 && fixture.k == 3)
        #expect(fixture.cases.contains { $0.logits != nil }, "the fixture lacks the saturated-logits case")
        for c in fixture.cases {
            var scores = c.scores
            if let logits = c.logits {
                let floats = logits.map { Float($0) }
                #expect(floats.map(Double.init) == logits, "\(c.name): logits are not exact float32 values")
                scores = M.probabilities(regionLogits: floats, globalLogits: nil)
                let worst = zip(scores, c.scores).map { abs($0 - $1) }.max() ?? 0
                #expect(worst < 1e-15, "\(c.name): σ in float64 differs from numpy's by \(worst)")
                // Ranked in float32 the case ties and its AP differs from scikit-learn's: the float64 path matters.
                let float32 = try M.Input(scores: Ops.sigmoid(Tensor(floats, shape: [fixture.samples, fixture.labels])),
                                          targets: Tensor(c.targets.map(Float.init), shape: [fixture.samples, fixture.labels]))
                #expect(zip(M.averagePrecisions(float32), c.expected.ap).contains { !close($0, $1) },
                        "\(c.name): float32 scores give scikit-learn's APs; the case does not test float64 ranking")
            }
            let x = try M.Input(probabilities: scores, targets: c.targets, samples: fixture.samples, labels: fixture.labels)
            let aps = M.averagePrecisions(x)
            #expect(aps.count == c.expected.ap.count)
            for (label, (a, e)) in zip(aps, c.expected.ap).enumerated() {
                #expect(close(a, e), "\(c.name): AP of label \(label) \(String(describing: a)) vs \(String(describing: e))")
            }
            #expect(close(M.meanAveragePrecision(x), c.expected.map), "\(c.name): mAP")
            check(M.classAndOverall(x, .threshold(0.5)), c.expected.threshold, c.name + " @0.5")
            check(M.classAndOverall(x, .topK(fixture.k)), c.expected.top3, c.name + " top-3")
            #expect(close(M.meanAccuracy(x), c.expected.ma), "\(c.name): mA")
            let i = M.instance(x), e = c.expected.instance
            #expect(close(i.accuracy, e.accuracy) && close(i.precision, e.precision) && close(i.recall, e.recall),
                    "\(c.name): instance \(i) vs \(e)")
        }
    }
}
