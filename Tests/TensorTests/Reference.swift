import Foundation
@testable import Tensor

/// Float64 reference implementations and comparison helpers: each test computes the expected result the
/// straightforward way, in Double, from the same Float inputs the kernel sees.
enum Reference {
    /// Odd sizes that catch off-by-one, remainder-loop and single-element bugs.
    static let sizes = [1, 7, 33, 130]

    static func random(_ shape: [Int], seed: UInt64, std: Float = 1) -> Tensor {
        Tensor.randomNormal(shape, std: std, seed: seed)
    }

    static func doubles(_ t: Tensor) -> [Double] { t.scalars.map(Double.init) }

    /// Largest |a − b| over matching elements; shapes must agree.
    static func maxAbsDiff(_ t: Tensor, _ expected: [Double]) -> Double {
        precondition(t.count == expected.count, "count \(t.count) vs \(expected.count)")
        var worst = 0.0
        for (a, b) in zip(t.scalars, expected) {
            if a.isNaN != b.isNaN { return .infinity }
            if !a.isNaN { worst = max(worst, abs(Double(a) - b)) }
        }
        return worst
    }

    /// Largest |a − b| / (1 + |b|): absolute near zero, relative for large values.
    static func maxMixedError(_ t: Tensor, _ expected: [Double]) -> Double {
        precondition(t.count == expected.count, "count \(t.count) vs \(expected.count)")
        var worst = 0.0
        for (a, b) in zip(t.scalars, expected) { worst = max(worst, abs(Double(a) - b) / (1 + abs(b))) }
        return worst
    }

    /// Row-major `[m, k] × [k, n]` in Double, with optional transposes of the stored operands.
    static func matmul(_ a: [Double], _ b: [Double], m: Int, n: Int, k: Int, transA: Bool, transB: Bool) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let x = transA ? a[p * m + i] : a[i * k + p]
                    let y = transB ? b[j * k + p] : b[p * n + j]
                    s += x * y
                }
                c[i * n + j] = s
            }
        }
        return c
    }

    /// Element-wise binary op with NumPy broadcasting, by explicit multi-index arithmetic.
    static func broadcast(_ a: Tensor, _ b: Tensor, _ f: (Double, Double) -> Double) -> (shape: [Int], values: [Double]) {
        broadcast(a.shape, doubles(a), b.shape, doubles(b), f)
    }

    /// The same on shapes and row-major values (the float64 autodiff reference uses it too).
    static func broadcast(_ shapeA: [Int], _ va: [Double], _ shapeB: [Int], _ vb: [Double],
                          _ f: (Double, Double) -> Double) -> (shape: [Int], values: [Double]) {
        let rank = max(shapeA.count, shapeB.count)
        let sa = [Int](repeating: 1, count: rank - shapeA.count) + shapeA
        let sb = [Int](repeating: 1, count: rank - shapeB.count) + shapeB
        let out = zip(sa, sb).map { max($0, $1) }
        let total = out.reduce(1, *)
        var result = [Double](repeating: 0, count: total)
        for flat in 0..<total {
            var rest = flat, ia = 0, ib = 0, stepA = 1, stepB = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                let i = rest % out[axis]
                rest /= out[axis]
                ia += (sa[axis] == 1 ? 0 : i) * stepA
                ib += (sb[axis] == 1 ? 0 : i) * stepB
                stepA *= sa[axis]
                stepB *= sb[axis]
            }
            result[flat] = f(va[ia], vb[ib])
        }
        return (out, result)
    }

    static func softmax(_ row: [Double]) -> [Double] {
        let m = row.max() ?? 0
        let e = row.map { exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    static func erfGELU(_ x: Double) -> Double { 0.5 * x * (1 + erf(x / 2.0.squareRoot())) }
    static func tanhGELU(_ x: Double) -> Double { 0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x))) }
    static func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

    /// Naive multi-head attention on `[B, T, H·D]` inputs, with the same mask conventions as `Ops.attention`.
    static func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, causal: Bool, padding: [Bool]?) -> [Double] {
        let (b, tq, width) = (q.shape[0], q.shape[1], q.shape[2])
        let tk = k.shape[1], vw = v.shape[2]
        let dk = width / heads, dv = vw / heads
        let vq = doubles(q), vk = doubles(k), vv = doubles(v)
        var out = [Double](repeating: 0, count: b * tq * vw)
        for bi in 0..<b {
            for h in 0..<heads {
                for i in 0..<tq {
                    var scores = [Double](repeating: -.infinity, count: tk)
                    for j in 0..<tk {
                        if causal && j > i { continue }
                        if let padding, padding[bi * tk + j] { continue }
                        var s = 0.0
                        for d in 0..<dk { s += vq[(bi * tq + i) * width + h * dk + d] * vk[(bi * tk + j) * width + h * dk + d] }
                        scores[j] = s / Double(dk).squareRoot()
                    }
                    guard scores.contains(where: { $0 > -.infinity }) else { continue }
                    let p = softmax(scores)
                    for d in 0..<dv {
                        var s = 0.0
                        for j in 0..<tk where p[j] > 0 { s += p[j] * vv[(bi * tk + j) * vw + h * dv + d] }
                        out[(bi * tq + i) * vw + h * dv + d] = s
                    }
                }
            }
        }
        return out
    }
}
