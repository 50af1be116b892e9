import Foundation
import Tensor
import TestSupport
import Testing
@testable import SSPA

/// Issue 11 §5: the zero-shot CLIP baselines, checked against a direct float64 computation on a small synthetic
/// features file (unnormalised features and knowledge, so a missing normalisation shows).
@Suite("SSPA zero-shot baselines")
struct ZeroShotTests {
    /// 5 images × 4 regions, d = 6, 3 labels; features of norm far from 1, knowledge not normalised.
    static func data() throws -> (SSPA.Features, Tensor) {
        let n = 5, m = 4, d = 6, c = 3
        let x0 = Ops.scale(Tensor.randomNormal([n, d], seed: 21), by: 7)
        let regions = Ops.scale(Tensor.randomNormal([n, m, d], seed: 22), by: 3)
        let labels = Tensor([1, 0, -1, 0, 1, 1, 1, 1, 0, 0, 0, 1, -1, 0, 1], shape: [n, c])
        let features = try SSPA.Features(x0: x0, regions: regions, labels: labels, labelNames: ["a", "b", "c"], encoderSHA256: "e")
        return (features, Ops.scale(Tensor.randomNormal([c, d], seed: 23), by: 2))
    }

    /// The baselines written out in float64 from the spec: u = cos(x0, t); max_m cos(X_m, t);
    /// Σ_m softmax_m(cos/0.2) cos; p = σ(20u − 5).
    static func direct(_ f: SSPA.Features, _ t: Tensor) -> [SSPA.ZeroShot.Method: [Double]] {
        let d = f.width, m = f.regionCount, c = t.shape[0]
        let x0 = f.x0.scalars.map(Double.init), x = f.regions.scalars.map(Double.init), k = t.scalars.map(Double.init)
        func cos(_ a: ArraySlice<Double>, _ b: ArraySlice<Double>) -> Double {
            let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
            let na = a.reduce(0) { $0 + $1 * $1 }.squareRoot(), nb = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return dot / (na * nb)
        }
        func p(_ u: Double) -> Double { 1 / (1 + exp(-(20 * u - 5))) }
        var out: [SSPA.ZeroShot.Method: [Double]] = [.global: [], .regionalMax: [], .regionalSoft: []]
        for i in 0..<f.count {
            for label in 0..<c {
                let t = k[(label * d)..<((label + 1) * d)]
                out[.global]!.append(p(cos(x0[(i * d)..<((i + 1) * d)], t)))
                let s = (0..<m).map { r in cos(x[((i * m + r) * d)..<((i * m + r + 1) * d)], t) }
                out[.regionalMax]!.append(p(s.max()!))
                let w = s.map { exp($0 / 0.2) }
                out[.regionalSoft]!.append(p(zip(w, s).reduce(0) { $0 + $1.0 * $1.1 } / w.reduce(0, +)))
            }
        }
        return out
    }

    @Test("global, regional max and regional soft scores match a direct computation")
    func scores() throws {
        let (features, knowledge) = try Self.data()
        let expected = Self.direct(features, knowledge)
        for batch in [64, 2] {  // batching does not change a score
            let got = SSPA.ZeroShot.probabilities(features: features, knowledge: knowledge, batchSize: batch)
            for method in SSPA.ZeroShot.Method.allCases {
                let a = try #require(got[method]), e = try #require(expected[method])
                #expect(a.count == e.count)
                let worst = zip(a, e).map { abs($0 - $1) }.max() ?? .infinity
                #expect(worst < 1e-5, "\(method) (batch \(batch)): worst |swift − direct| \(worst)")
            }
        }
        // The three methods differ on this data (a mix-up of two would not pass unnoticed).
        let got = SSPA.ZeroShot.probabilities(features: features, knowledge: knowledge)
        #expect(got[.global]! != got[.regionalMax]! && got[.regionalMax]! != got[.regionalSoft]!)
        // Soft pooling lies between the mean and the max of the region cosines, so its p is at most the max's.
        #expect(zip(got[.regionalSoft]!, got[.regionalMax]!).allSatisfy { $0 <= $1 + 1e-12 })
        // The scale of the features and of the knowledge does not matter.
        var scaled = features
        scaled.x0 = Ops.scale(features.x0, by: 0.01)
        scaled.regions = Ops.scale(features.regions, by: 100)
        let again = SSPA.ZeroShot.probabilities(features: scaled, knowledge: Ops.scale(knowledge, by: 5))
        for method in SSPA.ZeroShot.Method.allCases {
            #expect(zip(again[method]!, got[method]!).allSatisfy { abs($0 - $1) < 1e-5 }, "\(method)")
        }
    }

    @Test("reports are the metrics of those scores; the comparison table lists every row")
    func reports() throws {
        let (features, knowledge) = try Self.data()
        let reports = try SSPA.ZeroShot.reports(features: features, knowledge: knowledge)
        let expected = Self.direct(features, knowledge)
        for method in SSPA.ZeroShot.Method.allCases {
            let direct = try SSPA.Metrics.Report(SSPA.Metrics.Input(probabilities: expected[method]!, targets: features.labels))
            let r = try #require(reports[method])
            #expect(abs((r.mAP ?? -1) - (direct.mAP ?? -2)) < 1e-12, "\(method)")
            #expect(r.atThreshold == direct.atThreshold && r.instance == direct.instance, "\(method)")
        }
        let rows = [("SSPA (full model)", reports[.global]!)] + SSPA.ZeroShot.Method.allCases.map { ($0.title, reports[$0]!) }
        let table = SSPA.Metrics.Report.comparison(rows)
        let lines = table.split(separator: "\n")
        #expect(lines.count == 5 && lines[0].contains("mAP") && lines[0].contains("OF1@3"), "\(table)")
        #expect(lines[1].hasPrefix("SSPA (full model)") && lines[2].hasPrefix("zero-shot global")
                && lines[3].hasPrefix("zero-shot regional max") && lines[4].hasPrefix("zero-shot regional soft"), "\(table)")
        #expect(lines[2].contains(String(format: "%.2f", reports[.global]!.mAP! * 100)), "\(table)")
    }
}
