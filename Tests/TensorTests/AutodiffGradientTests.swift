import Foundation
import Testing
@testable import Tensor

/// Every differentiable op of the tape against central finite differences (see `GradCheck` for the scheme).
/// Tolerance: relative error (max |analytic − numeric| / (max |numeric| + 1e-3)) below `tol` = 1e-3 with
/// h = 1e-2, unless a test states otherwise.
@Suite("Autodiff gradient checks")
struct AutodiffGradientTests {
    static let tol = 1e-3

    func expectClose(_ outcome: GradCheck.Outcome, tolerance: Double = tol, _ label: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(outcome.worst < tolerance, "\(label): errors \(outcome.errors)", sourceLocation: sourceLocation)
    }

    // MARK: Products

    struct MatmulCase: CustomTestStringConvertible, Sendable {
        let a: [Int], b: [Int], tA: Bool, tB: Bool
        var testDescription: String { "\(a)\(tA ? "ᵀ" : "") × \(b)\(tB ? "ᵀ" : "")" }
    }

    static let matmulCases: [MatmulCase] = [
        .init(a: [3, 7], b: [7, 5], tA: false, tB: false),
        .init(a: [7, 3], b: [7, 5], tA: true, tB: false),
        .init(a: [3, 7], b: [5, 7], tA: false, tB: true),
        .init(a: [7, 3], b: [5, 7], tA: true, tB: true),
        .init(a: [1, 1], b: [1, 1], tA: false, tB: false),
        .init(a: [3, 5, 7], b: [3, 7, 1], tA: false, tB: false),
        .init(a: [3, 7, 5], b: [3, 3, 7], tA: true, tB: true),
        .init(a: [3, 5, 7], b: [7, 3], tA: false, tB: false),  // 2-D right side shared over the batch
        .init(a: [3, 5, 7], b: [3, 7], tA: false, tB: true),
        .init(a: [3, 7, 5], b: [7, 3], tA: true, tB: false),
        .init(a: [3, 7, 5], b: [3, 7], tA: true, tB: true),
        .init(a: [5, 7], b: [3, 7, 3], tA: false, tB: false),  // 2-D left side shared over the batch
        .init(a: [7, 5], b: [3, 3, 7], tA: true, tB: true),
    ]

    @Test("matmul: plain, transposed, batched, shared 2-D side", arguments: matmulCases)
    func matmul(_ c: MatmulCase) {
        let a = GradCheck.random(c.a, seed: 1), b = GradCheck.random(c.b, seed: 2)
        let outcome = GradCheck.run([a, b]) { t, v in t.matmul(v[0], v[1], transposeA: c.tA, transposeB: c.tB) }
        expectClose(outcome, "matmul")
    }

    @Test("linear with and without bias, 2-D and batched input", arguments: [[1, 7], [3, 7], [3, 5, 7]])
    func linear(xShape: [Int]) {
        let x = GradCheck.random(xShape, seed: 3), w = GradCheck.random([3, 7], seed: 4)
        let b = GradCheck.random([3], seed: 5)
        expectClose(GradCheck.run([x, w, b]) { t, v in t.linear(v[0], weight: v[1], bias: v[2]) }, "linear+bias")
        expectClose(GradCheck.run([x, w]) { t, v in t.linear(v[0], weight: v[1]) }, "linear")
    }

    // MARK: Broadcasting arithmetic

    static let broadcastPairs: [[[Int]]] = [[[3, 7], [3, 7]], [[3, 1, 7], [5, 1]], [[3, 7], []], [[7], [3, 7]], [[1], [13]]]

    @Test("add, sub, mul with broadcasting", arguments: broadcastPairs)
    func arithmetic(shapes: [[Int]]) {
        let a = GradCheck.random(shapes[0], seed: 6), b = GradCheck.random(shapes[1], seed: 7)
        expectClose(GradCheck.run([a, b]) { t, v in t.add(v[0], v[1]) }, "add")
        expectClose(GradCheck.run([a, b]) { t, v in t.sub(v[0], v[1]) }, "sub")
        expectClose(GradCheck.run([a, b]) { t, v in t.mul(v[0], v[1]) }, "mul")
    }

    @Test("scale, reshape, sum and mean (all and per axis)")
    func reductions() {
        let x = GradCheck.random([3, 5, 7], seed: 8)
        expectClose(GradCheck.run([x]) { t, v in t.scale(v[0], by: -1.7) }, "scale")
        expectClose(GradCheck.run([x]) { t, v in t.reshape(v[0], [15, 7]) }, "reshape")
        expectClose(GradCheck.run([x]) { t, v in t.sum(v[0]) }, "sum")
        expectClose(GradCheck.run([x]) { t, v in t.mean(v[0]) }, "mean")
        for axis in [0, 1, -1] {
            for keep in [false, true] {
                expectClose(GradCheck.run([x]) { t, v in t.sum(v[0], axis: axis, keepDims: keep) }, "sum axis \(axis)")
                expectClose(GradCheck.run([x]) { t, v in t.mean(v[0], axis: axis, keepDims: keep) }, "mean axis \(axis)")
            }
        }
    }

    // MARK: Row-wise

    @Test("layerNorm with and without weight and bias", arguments: [[3, 7], [5, 13], [3, 1], [2, 3, 7]])
    func layerNorm(shape: [Int]) {
        let n = shape.last!
        let x = GradCheck.random(shape, seed: 9, std: 2)
        let w = GradCheck.random([n], seed: 10), b = GradCheck.random([n], seed: 11)
        expectClose(GradCheck.run([x, w, b]) { t, v in t.layerNorm(v[0], weight: v[1], bias: v[2]) }, "layerNorm w b")
        expectClose(GradCheck.run([x]) { t, v in t.layerNorm(v[0], weight: nil, bias: nil) }, "layerNorm")
        // Only the input requires a gradient; weight and bias are constants.
        expectClose(GradCheck.run([x]) { t, v in t.layerNorm(v[0], weight: t.constant(w), bias: t.constant(b)) },
                    "layerNorm frozen affine")
        // Only weight and bias require gradients; x is a constant.
        expectClose(GradCheck.run([w, b]) { t, v in t.layerNorm(t.constant(x), weight: v[0], bias: v[1]) },
                    "layerNorm frozen input")
    }

    @Test("softmax over the last axis", arguments: [[1, 1], [3, 7], [5, 13], [2, 3, 7]])
    func softmax(shape: [Int]) {
        let x = GradCheck.random(shape, seed: 12, std: 2)
        expectClose(GradCheck.run([x]) { t, v in t.softmax(v[0]) }, "softmax")
    }

    @Test("activations: gelu (exact, tanh), quickGELU, sigmoid, logSigmoid", arguments: [[1], [3, 7], [13, 3]])
    func activations(shape: [Int]) {
        let x = GradCheck.random(shape, seed: 13, std: 2)
        expectClose(GradCheck.run([x]) { t, v in t.gelu(v[0]) }, "gelu")
        expectClose(GradCheck.run([x]) { t, v in t.gelu(v[0], approximation: .tanh) }, "gelu tanh")
        expectClose(GradCheck.run([x]) { t, v in t.quickGELU(v[0]) }, "quickGELU")
        expectClose(GradCheck.run([x]) { t, v in t.sigmoid(v[0]) }, "sigmoid")
        expectClose(GradCheck.run([x]) { t, v in t.logSigmoid(v[0]) }, "logSigmoid")
    }

    @Test("l2Normalize above eps, below eps (v/eps), and cosine similarity")
    func l2AndCosine() {
        let x = GradCheck.random([3, 7], seed: 14)
        expectClose(GradCheck.run([x]) { t, v in t.l2Normalize(v[0]) }, "l2Normalize")
        expectClose(GradCheck.run([GradCheck.random([1, 13], seed: 15)]) { t, v in t.l2Normalize(v[0]) }, "l2 1×13")
        // Every row norm (≈ √7) is below eps = 100: the op is v / eps.
        expectClose(GradCheck.run([x]) { t, v in t.l2Normalize(v[0], eps: 100) }, "l2Normalize below eps")
        let a = GradCheck.random([3, 7], seed: 16), b = GradCheck.random([5, 7], seed: 17)
        expectClose(GradCheck.run([a, b]) { t, v in t.cosineSimilarity(v[0], v[1]) }, "cosine")
        let a3 = GradCheck.random([2, 3, 7], seed: 18)
        expectClose(GradCheck.run([a3, b]) { t, v in t.cosineSimilarity(v[0], v[1]) }, "cosine batched")
    }

    // MARK: Indexing

    @Test("embedding gather with repeated ids scatter-adds")
    func embedding() {
        let table = GradCheck.random([7, 5], seed: 19)
        let ids = [2, 0, 2, 6, 1, 2]
        expectClose(GradCheck.run([table]) { t, v in t.embedding(v[0], ids: ids, idsShape: [2, 3]) }, "embedding")
        // Exact: row 2 is picked three times, so with seed all-ones its gradient is 3.
        let tape = Tape()
        let tv = tape.variable(table, requiresGrad: true)
        tape.backward(from: tape.sum(tape.embedding(tv, ids: ids)))
        let g = tape.gradient(of: tv)!
        #expect(g[2, 0] == 3 && g[0, 4] == 1 && g[3, 1] == 0)
    }

    @Test("concat along each axis and slice", arguments: [0, 1, -1])
    func concatSlice(axis: Int) {
        let a = GradCheck.random([3, 5, 7], seed: 20)
        var bShape = [3, 5, 7]
        bShape[axis < 0 ? 2 : axis] = 1
        let b = GradCheck.random(bShape, seed: 21)
        expectClose(GradCheck.run([a, b, a]) { t, v in t.concat([v[0], v[1], v[2]], axis: axis) }, "concat")
        expectClose(GradCheck.run([a]) { t, v in t.slice(v[0], axis: axis, range: 1..<3) }, "slice")
        expectClose(GradCheck.run([a]) { t, v in t.slice(v[0], axis: axis, range: 0..<(axis == 0 ? 3 : 5)) },
                    "slice full")
    }

    // MARK: Attention

    struct AttentionCase: CustomTestStringConvertible, Sendable {
        let batch: Int?, tq: Int, tk: Int, heads: Int, dk: Int, dv: Int, causal: Bool, padded: Bool
        /// Causal position of the first query among the keys (a shared prefix whose queries are elsewhere).
        var offset = 0
        var testDescription: String {
            "B=\(batch.map(String.init) ?? "-") Tq=\(tq) Tk=\(tk) H=\(heads) causal=\(causal) padded=\(padded) offset=\(offset)"
        }
    }

    static let attentionCases: [AttentionCase] = [
        .init(batch: 2, tq: 5, tk: 5, heads: 3, dk: 2, dv: 3, causal: false, padded: false),
        .init(batch: 2, tq: 5, tk: 5, heads: 3, dk: 2, dv: 3, causal: true, padded: false),
        .init(batch: 1, tq: 3, tk: 7, heads: 1, dk: 3, dv: 1, causal: false, padded: false),
        .init(batch: 2, tq: 3, tk: 3, heads: 1, dk: 1, dv: 3, causal: true, padded: false),
        .init(batch: 2, tq: 3, tk: 5, heads: 1, dk: 3, dv: 3, causal: false, padded: true),
        .init(batch: nil, tq: 7, tk: 7, heads: 1, dk: 3, dv: 3, causal: true, padded: false),
        .init(batch: 1, tq: 1, tk: 1, heads: 1, dk: 1, dv: 1, causal: true, padded: false),
        .init(batch: 2, tq: 3, tk: 7, heads: 2, dk: 2, dv: 3, causal: true, padded: false, offset: 4),
        .init(batch: 2, tq: 4, tk: 5, heads: 1, dk: 3, dv: 2, causal: true, padded: true, offset: 1),
    ]

    @Test("multi-head attention with and without causal mask", arguments: attentionCases)
    func attention(_ c: AttentionCase) {
        let lead = c.batch.map { [$0] } ?? []
        let q = GradCheck.random(lead + [c.tq, c.heads * c.dk], seed: 22)
        let k = GradCheck.random(lead + [c.tk, c.heads * c.dk], seed: 23)
        let v = GradCheck.random(lead + [c.tk, c.heads * c.dv], seed: 24)
        let b = c.batch ?? 1
        let mask: [Bool]? = c.padded ? (0..<(b * c.tk)).map { $0 % c.tk == c.tk - 1 || $0 == 1 } : nil
        let outcome = GradCheck.run([q, k, v]) { t, x in
            t.attention(query: x[0], key: x[1], value: x[2], heads: c.heads, causal: c.causal, queryOffset: c.offset,
                        keyPaddingMask: mask)
        }
        expectClose(outcome, "attention")
    }
}
