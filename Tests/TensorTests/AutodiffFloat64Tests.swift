import Foundation
import Testing
@testable import Tensor

/// Every differentiable op against central finite differences computed wholly in float64 (reference forwards in
/// `Ref64`, h = 1e-6; scheme in `GradCheck64`).
///
/// Tolerances, stated once: gradient relative error (max |analytic − numeric| / (max |numeric| + 1e-3)) below
/// `gradTol` = 1e-5, and the Float32 forward within `forwardTol` = 1e-6 · (1 + max |reference|) of the reference.
/// (Observed worst: 9e-7 for the gradient, in attention; 1.2e-7 for the forward, in gelu tanh.)
@Suite("Autodiff float64 finite differences")
struct AutodiffFloat64Tests {
    static let gradTol = 1e-5
    static let forwardTol = 1e-6

    func expectClose(_ o: GradCheck64.Outcome, _ label: String, gradTol: Double = gradTol,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(o.worst < gradTol, "\(label): gradient errors \(o.errors)", sourceLocation: sourceLocation)
        #expect(o.forwardError < Self.forwardTol, "\(label): forward error \(o.forwardError)",
                sourceLocation: sourceLocation)
    }

    static func r(_ shape: [Int], _ seed: UInt64, std: Float = 1) -> Tensor { Tensor.randomNormal(shape, std: std, seed: seed) }

    @Test("matmul: plain, transposed, batched, shared 2-D side", arguments: AutodiffGradientTests.matmulCases)
    func matmul(_ c: AutodiffGradientTests.MatmulCase) {
        expectClose(GradCheck64.run([Self.r(c.a, 1), Self.r(c.b, 2)],
                                    tape: { t, v in t.matmul(v[0], v[1], transposeA: c.tA, transposeB: c.tB) },
                                    reference: { Ref64.matmul($0[0], $0[1], tA: c.tA, tB: c.tB) }), "matmul")
    }

    @Test("linear", arguments: [[1, 7], [3, 5, 7]])
    func linear(xShape: [Int]) {
        let inputs = [Self.r(xShape, 3), Self.r([3, 7], 4), Self.r([3], 5)]
        expectClose(GradCheck64.run(inputs, tape: { t, v in t.linear(v[0], weight: v[1], bias: v[2]) },
                                    reference: { Ref64.linear($0[0], $0[1], $0[2]) }), "linear")
    }

    @Test("add, sub, mul, div with broadcasting", arguments: AutodiffGradientTests.broadcastPairs)
    func arithmetic(shapes: [[Int]]) {
        let a = Self.r(shapes[0], 6), b = Self.r(shapes[1], 7)
        expectClose(GradCheck64.run([a, b], tape: { t, v in t.add(v[0], v[1]) },
                                    reference: { Ref64.binary($0[0], $0[1], +) }), "add")
        expectClose(GradCheck64.run([a, b], tape: { t, v in t.sub(v[0], v[1]) },
                                    reference: { Ref64.binary($0[0], $0[1], -) }), "sub")
        expectClose(GradCheck64.run([a, b], tape: { t, v in t.mul(v[0], v[1]) },
                                    reference: { Ref64.binary($0[0], $0[1], *) }), "mul")
        let positive = Ops.affine(Ops.sigmoid(b), scale: 1, offset: 1)
        expectClose(GradCheck64.run([a, positive], tape: { t, v in t.div(v[0], v[1]) },
                                    reference: { Ref64.binary($0[0], $0[1], /) }), "div")
    }

    @Test("scale, sum, mean, per-axis sum and mean")
    func reductions() {
        let x = Self.r([3, 5, 7], 8)
        expectClose(GradCheck64.run([x], tape: { t, v in t.scale(v[0], by: -1.5) },
                                    reference: { $0[0].map { -1.5 * $0 } }), "scale")
        expectClose(GradCheck64.run([x], tape: { t, v in t.sum(v[0]) },
                                    reference: { D64([], [$0[0].v.reduce(0, +)]) }), "sum")
        expectClose(GradCheck64.run([x], tape: { t, v in t.mean(v[0]) },
                                    reference: { D64([], [$0[0].v.reduce(0, +) / Double($0[0].count)]) }), "mean")
        for axis in [0, 1, -1] {
            for keep in [false, true] {
                expectClose(GradCheck64.run([x], tape: { t, v in t.sum(v[0], axis: axis, keepDims: keep) },
                                            reference: { Ref64.reduce($0[0], axis: axis, keepDims: keep, mean: false) }),
                            "sum axis \(axis)")
                expectClose(GradCheck64.run([x], tape: { t, v in t.mean(v[0], axis: axis, keepDims: keep) },
                                            reference: { Ref64.reduce($0[0], axis: axis, keepDims: keep, mean: true) }),
                            "mean axis \(axis)")
            }
        }
    }

    @Test("layerNorm with and without weight and bias", arguments: [[3, 7], [5, 13], [3, 1], [2, 3, 7]])
    func layerNorm(shape: [Int]) {
        let n = shape.last!
        let inputs = [Self.r(shape, 9, std: 2), Self.r([n], 10), Self.r([n], 11)]
        expectClose(GradCheck64.run(inputs, tape: { t, v in t.layerNorm(v[0], weight: v[1], bias: v[2]) },
                                    reference: { Ref64.layerNorm($0[0], $0[1], $0[2]) }), "layerNorm w b")
        expectClose(GradCheck64.run([inputs[0]], tape: { t, v in t.layerNorm(v[0], weight: nil, bias: nil) },
                                    reference: { Ref64.layerNorm($0[0], nil, nil) }), "layerNorm")
    }

    @Test("softmax", arguments: [[1, 1], [3, 7], [5, 13], [2, 3, 7]])
    func softmax(shape: [Int]) {
        expectClose(GradCheck64.run([Self.r(shape, 12, std: 2)], tape: { t, v in t.softmax(v[0]) },
                                    reference: { $0[0].mapRows(Ref64.softmaxRow) }), "softmax")
    }

    @Test("activations: gelu (exact, tanh), quickGELU, sigmoid, logSigmoid, exp, log", arguments: [[1], [3, 7], [13, 3]])
    func activations(shape: [Int]) {
        let x = Self.r(shape, 13, std: 2)
        let cases: [(String, (Tape, Variable) -> Variable, (Double) -> Double)] = [
            ("gelu", { $0.gelu($1) }, Ref64.gelu),
            ("gelu tanh", { $0.gelu($1, approximation: .tanh) }, Ref64.geluTanh),
            ("quickGELU", { $0.quickGELU($1) }, Ref64.quickGELU),
            ("sigmoid", { $0.sigmoid($1) }, Ref64.sigmoid),
            ("logSigmoid", { $0.logSigmoid($1) }, Ref64.logSigmoid),
            ("exp", { $0.exp($1) }, { Foundation.exp($0) }),
        ]
        for (name, op, ref) in cases {
            expectClose(GradCheck64.run([x], tape: { t, v in op(t, v[0]) }, reference: { $0[0].map(ref) }), name)
        }
        let positive = Ops.affine(Ops.sigmoid(x), scale: 2, offset: 0.5)
        expectClose(GradCheck64.run([positive], tape: { t, v in t.log(v[0]) },
                                    reference: { $0[0].map { Foundation.log($0) } }), "log")
    }

    @Test("l2Normalize (above and below eps) and cosine similarity")
    func l2AndCosine() {
        let x = Self.r([3, 7], 14)
        expectClose(GradCheck64.run([x], tape: { t, v in t.l2Normalize(v[0]) },
                                    reference: { Ref64.l2Normalize($0[0]) }), "l2Normalize")
        expectClose(GradCheck64.run([x], tape: { t, v in t.l2Normalize(v[0], eps: 100) },
                                    reference: { Ref64.l2Normalize($0[0], eps: 100) }), "l2Normalize below eps")
        let a = Self.r([2, 3, 7], 16), b = Self.r([5, 7], 17)
        expectClose(GradCheck64.run([a, b], tape: { t, v in t.cosineSimilarity(v[0], v[1]) },
                                    reference: { Ref64.matmul(Ref64.l2Normalize($0[0]), Ref64.l2Normalize($0[1]), tB: true) }),
                    "cosine")
    }

    @Test("embedding, concat, slice, transpose")
    func indexing() {
        let table = Self.r([7, 5], 19)
        let ids = [2, 0, 2, 6, 1, 2]
        expectClose(GradCheck64.run([table], tape: { t, v in t.embedding(v[0], ids: ids, idsShape: [2, 3]) },
                                    reference: { Ref64.embedding($0[0], ids: ids, shape: [2, 3]) }), "embedding")
        for axis in [0, 1, -1] {
            let a = Self.r([3, 5, 7], 20)
            var bShape = [3, 5, 7]
            bShape[axis < 0 ? 2 : axis] = 1
            let b = Self.r(bShape, 21)
            expectClose(GradCheck64.run([a, b], tape: { t, v in t.concat([v[0], v[1], v[0]], axis: axis) },
                                        reference: { Ref64.concat([$0[0], $0[1], $0[0]], axis: axis) }), "concat \(axis)")
            expectClose(GradCheck64.run([a], tape: { t, v in t.slice(v[0], axis: axis, range: 1..<3) },
                                        reference: { Ref64.slice($0[0], axis: axis, range: 1..<3) }), "slice \(axis)")
        }
        let x = Self.r([3, 5, 7], 22)
        expectClose(GradCheck64.run([x], tape: { t, v in t.transpose(v[0]) },
                                    reference: { xs in
                                        let x = xs[0]
                                        var out = [Double](repeating: 0, count: x.count)
                                        for b in 0..<3 { for i in 0..<5 { for j in 0..<7 { out[(b * 7 + j) * 5 + i] = x.v[(b * 5 + i) * 7 + j] } } }
                                        return D64([3, 7, 5], out)
                                    }), "transpose")
    }

    @Test("multi-head attention with and without causal mask", arguments: AutodiffGradientTests.attentionCases)
    func attention(_ c: AutodiffGradientTests.AttentionCase) {
        let lead = c.batch.map { [$0] } ?? []
        let q = Self.r(lead + [c.tq, c.heads * c.dk], 22)
        let k = Self.r(lead + [c.tk, c.heads * c.dk], 23)
        let v = Self.r(lead + [c.tk, c.heads * c.dv], 24)
        let b = c.batch ?? 1
        let mask: [Bool]? = c.padded ? (0..<(b * c.tk)).map { $0 % c.tk == c.tk - 1 || $0 == 1 } : nil
        expectClose(GradCheck64.run([q, k, v], tape: { t, x in
            t.attention(query: x[0], key: x[1], value: x[2], heads: c.heads, causal: c.causal, queryOffset: c.offset,
                        keyPaddingMask: mask)
        }, reference: { Ref64.attention($0[0], $0[1], $0[2], heads: c.heads, causal: c.causal, offset: c.offset,
                                        padding: mask) }),
                    "attention")
    }
}
