import Foundation
import Testing
@testable import Tensor

/// A tiny Float64 array type and naive Float64 forwards of the differentiable ops, used to take finite differences
/// entirely in float64 (no Float32 rounding in the numeric side at all).
struct D64 {
    var shape: [Int]
    var v: [Double]

    init(_ shape: [Int], _ v: [Double]) {
        precondition(shape.reduce(1, *) == v.count)
        self.shape = shape
        self.v = v
    }

    init(_ t: Tensor) { self.init(t.shape, t.scalars.map(Double.init)) }

    var count: Int { v.count }
    var last: Int { shape.last ?? 1 }
    var rows: Int { last == 0 ? 0 : count / last }

    func map(_ f: (Double) -> Double) -> D64 { D64(shape, v.map(f)) }

    /// Applies `f` to each row of the last axis.
    func mapRows(_ f: ([Double]) -> [Double]) -> D64 {
        let n = last
        var out: [Double] = []
        out.reserveCapacity(count)
        for r in 0..<rows { out += f(Array(v[(r * n)..<((r + 1) * n)])) }
        return D64(shape, out)
    }
}

enum Ref64 {
    static func binary(_ a: D64, _ b: D64, _ f: (Double, Double) -> Double) -> D64 {
        let r = Reference.broadcast(a.shape, a.v, b.shape, b.v, f)
        return D64(r.shape, r.values)
    }

    /// Batched product with transposes; a 2-D side is shared over the other's batch.
    static func matmul(_ a: D64, _ b: D64, tA: Bool = false, tB: Bool = false) -> D64 {
        let ra = a.shape[a.shape.count - 2], ca = a.shape[a.shape.count - 1]
        let rb = b.shape[b.shape.count - 2], cb = b.shape[b.shape.count - 1]
        let m = tA ? ca : ra, k = tA ? ra : ca, n = tB ? rb : cb
        let batchShape = a.shape.count > 2 ? Array(a.shape.dropLast(2)) : Array(b.shape.dropLast(2))
        let batch = batchShape.reduce(1, *)
        let strideA = a.shape.count > 2 ? ra * ca : 0, strideB = b.shape.count > 2 ? rb * cb : 0
        var out = [Double](repeating: 0, count: batch * m * n)
        for bi in 0..<batch {
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0
                    for p in 0..<k {
                        let x = tA ? a.v[bi * strideA + p * ca + i] : a.v[bi * strideA + i * ca + p]
                        let y = tB ? b.v[bi * strideB + j * cb + p] : b.v[bi * strideB + p * cb + j]
                        s += x * y
                    }
                    out[(bi * m + i) * n + j] = s
                }
            }
        }
        return D64(batchShape + [m, n], out)
    }

    static func linear(_ x: D64, _ w: D64, _ b: D64?) -> D64 {
        let rows = x.count / x.last
        var y = matmul(D64([rows, x.last], x.v), w, tB: true)
        if let b { y = binary(y, b, +) }
        return D64(Array(x.shape.dropLast()) + [w.shape[0]], y.v)
    }

    static func reduce(_ x: D64, axis: Int, keepDims: Bool, mean: Bool) -> D64 {
        let a = axis < 0 ? axis + x.shape.count : axis
        let n = x.shape[a], outer = x.shape[..<a].reduce(1, *), inner = x.shape[(a + 1)...].reduce(1, *)
        var out = [Double](repeating: 0, count: outer * inner)
        for o in 0..<outer { for j in 0..<n { for i in 0..<inner { out[o * inner + i] += x.v[(o * n + j) * inner + i] } } }
        if mean { out = out.map { $0 / Double(n) } }
        var shape = x.shape
        if keepDims { shape[a] = 1 } else { shape.remove(at: a) }
        return D64(shape, out)
    }

    static func layerNorm(_ x: D64, _ w: D64?, _ b: D64?, eps: Double = 1e-5) -> D64 {
        x.mapRows { row in
            let n = Double(row.count)
            let mu = row.reduce(0, +) / n
            let variance = row.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / n
            let inv = 1 / (variance + eps).squareRoot()
            return row.enumerated().map { j, value in (value - mu) * inv * (w?.v[j] ?? 1) + (b?.v[j] ?? 0) }
        }
    }

    static func softmaxRow(_ row: [Double]) -> [Double] {
        let m = row.max() ?? 0
        if m == -.infinity { return row.map { _ in 0 } }
        let e = row.map { Foundation.exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    static func l2Normalize(_ x: D64, eps: Double = 1e-6) -> D64 {
        x.mapRows { row in
            let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return row.map { $0 / max(norm, eps) }
        }
    }

    static func sigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }
    static func gelu(_ x: Double) -> Double { 0.5 * x * (1 + erf(x / 2.0.squareRoot())) }
    static func geluTanh(_ x: Double) -> Double {
        0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
    }
    static func quickGELU(_ x: Double) -> Double { x * sigmoid(1.702 * x) }
    static func logSigmoid(_ x: Double) -> Double { min(x, 0) - log1p(Foundation.exp(-abs(x))) }

    static func embedding(_ table: D64, ids: [Int], shape: [Int]) -> D64 {
        let w = table.shape[1]
        return D64(shape + [w], ids.flatMap { table.v[($0 * w)..<(($0 + 1) * w)] })
    }

    static func concat(_ xs: [D64], axis: Int) -> D64 {
        let a = axis < 0 ? axis + xs[0].shape.count : axis
        let outer = xs[0].shape[..<a].reduce(1, *)
        var out: [Double] = []
        for o in 0..<outer {
            for x in xs {
                let run = x.shape[a...].reduce(1, *)
                out += x.v[(o * run)..<((o + 1) * run)]
            }
        }
        var shape = xs[0].shape
        shape[a] = xs.reduce(0) { $0 + $1.shape[a] }
        return D64(shape, out)
    }

    static func slice(_ x: D64, axis: Int, range: Range<Int>) -> D64 {
        let a = axis < 0 ? axis + x.shape.count : axis
        let outer = x.shape[..<a].reduce(1, *), inner = x.shape[(a + 1)...].reduce(1, *)
        var out: [Double] = []
        for o in 0..<outer {
            for j in range { out += x.v[((o * x.shape[a] + j) * inner)..<((o * x.shape[a] + j + 1) * inner)] }
        }
        var shape = x.shape
        shape[a] = range.count
        return D64(shape, out)
    }

    /// Naive multi-head attention on `[B, T, H·D]` or `[T, H·D]`, masks as `Ops.attention`.
    static func attention(_ q: D64, _ k: D64, _ v: D64, heads: Int, causal: Bool, offset: Int = 0,
                          padding: [Bool]?) -> D64 {
        let lead = q.shape.count == 3
        let b = lead ? q.shape[0] : 1
        let tq = q.shape[q.shape.count - 2], tk = k.shape[k.shape.count - 2]
        let width = q.last, vw = v.last, dk = width / heads, dv = vw / heads
        var out = [Double](repeating: 0, count: b * tq * vw)
        for bi in 0..<b {
            for h in 0..<heads {
                for i in 0..<tq {
                    var scores = [Double](repeating: -.infinity, count: tk)
                    for j in 0..<tk {
                        if causal && j > i + offset { continue }
                        if let padding, padding[bi * tk + j] { continue }
                        var s = 0.0
                        for d in 0..<dk { s += q.v[(bi * tq + i) * width + h * dk + d] * k.v[(bi * tk + j) * width + h * dk + d] }
                        scores[j] = s / Double(dk).squareRoot()
                    }
                    let p = softmaxRow(scores)
                    for d in 0..<dv {
                        var s = 0.0
                        for j in 0..<tk where p[j] > 0 { s += p[j] * v.v[(bi * tk + j) * vw + h * dv + d] }
                        out[(bi * tq + i) * vw + h * dv + d] = s
                    }
                }
            }
        }
        return D64(q.shape.dropLast() + [vw], out)
    }
}

/// Finite differences in float64 on float64 reference forwards.
///
/// The analytic gradient is the tape's (Float32 forward and backward, seed R). The numeric gradient of
/// L = Σ ref(inputs) ⊙ R is a central difference with h = 1e-6 on the float64 reference forward, so its error is
/// about 1e-9: the comparison measures the Float32 backward alone. Error metric as `GradCheck`:
/// max |analytic − numeric| / (max |numeric| + 1e-3). The forward is also compared with the reference
/// (max |Float − Double| / (1 + max |Double|)).
enum GradCheck64 {
    struct Outcome {
        var forwardError: Double
        var errors: [Double]
        var worst: Double { errors.max() ?? 0 }
    }

    static func run(_ inputs: [Tensor], h: Double = 1e-6, seed: UInt64 = 99,
                    tape f: (Tape, [Variable]) -> Variable, reference: ([D64]) -> D64) -> Outcome {
        let tape = Tape()
        let vars = inputs.map { tape.variable($0, requiresGrad: true) }
        let out = f(tape, vars)
        let r = Tensor.randomNormal(out.shape, seed: seed)
        let rd = r.scalars.map(Double.init)
        tape.backward(from: out, seed: r)
        let base = inputs.map(D64.init)
        let ref = reference(base)
        precondition(ref.shape == out.shape, "reference shape \(ref.shape) vs \(out.shape)")
        let refScale = ref.v.map(abs).max() ?? 0
        let forwardError = zip(out.value.scalars, ref.v).map { abs(Double($0) - $1) }.max() ?? 0
        func loss(_ xs: [D64]) -> Double { zip(reference(xs).v, rd).reduce(0) { $0 + $1.0 * $1.1 } }
        var errors: [Double] = []
        for (index, input) in inputs.enumerated() {
            let analytic = tape.gradient(of: vars[index]).map { $0.scalars.map(Double.init) }
                ?? [Double](repeating: 0, count: input.count)
            var numeric = [Double](repeating: 0, count: input.count)
            for j in 0..<input.count {
                var plus = base, minus = base
                plus[index].v[j] += h
                minus[index].v[j] -= h
                numeric[j] = (loss(plus) - loss(minus)) / (2 * h)
            }
            let scale = numeric.map(abs).max() ?? 0
            let diff = zip(analytic, numeric).map { abs($0 - $1) }.max() ?? 0
            errors.append(diff / (scale + 1e-3))
        }
        return Outcome(forwardError: forwardError / (1 + refScale), errors: errors)
    }
}
