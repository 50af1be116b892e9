/// Sums, means and argmax along one axis.
extension Ops {
    /// Sum over `axis` (negative counts from the end); `keepDims` leaves the axis in place with extent 1, which
    /// keeps the result broadcastable against `x`.
    public static func sum(_ x: Tensor, axis: Int, keepDims: Bool = false) -> Tensor {
        reduce(x, axis: axis, keepDims: keepDims, scale: 1)
    }

    /// Mean over `axis`; an empty axis gives NaN, as in NumPy.
    public static func mean(_ x: Tensor, axis: Int, keepDims: Bool = false) -> Tensor {
        let a = x.normalizedAxis(axis)
        return reduce(x, axis: axis, keepDims: keepDims, scale: 1 / Float(x.shape[a]))
    }

    /// Sum of every element as a rank-0 tensor, accumulated in Double so a large loss does not drift.
    public static func sum(_ x: Tensor) -> Tensor {
        Tensor(scalar: Float(x.withUnsafeBufferPointer { p in p.reduce(0.0) { $0 + Double($1) } }))
    }

    /// Mean of every element as a rank-0 tensor.
    public static func mean(_ x: Tensor) -> Tensor {
        Tensor(scalar: Float(x.withUnsafeBufferPointer { p in p.reduce(0.0) { $0 + Double($1) } } / Double(x.count)))
    }

    /// Index of the largest value along the last axis, one per row, rows in row-major order of the leading axes.
    /// Ties go to the first index; a NaN wins over numbers, so a poisoned row is visible rather than hidden.
    public static func argmax(_ x: Tensor) -> [Int] {
        precondition(x.rank >= 1 && x.lastDimension > 0, "Ops.argmax: needs a non-empty last axis, got \(x.shape)")
        let n = x.lastDimension, rows = x.count / n
        return x.withUnsafeBufferPointer { p in
            (0..<rows).map { r in
                let row = p.baseAddress! + r * n
                var best = 0
                for j in 1..<max(n, 1) where row[j] > row[best] || (row[j].isNaN && !row[best].isNaN) { best = j }
                return best
            }
        }
    }

    /// Views `x` as `[outer, n, inner]` and reduces the middle axis; contiguous adds in the inner loop either way.
    static func reduce(_ x: Tensor, axis: Int, keepDims: Bool, scale: Float) -> Tensor {
        let a = x.normalizedAxis(axis)
        let n = x.shape[a]
        let outer = x.shape[..<a].reduce(1, *), inner = x.shape[(a + 1)...].reduce(1, *)
        var outShape = x.shape
        if keepDims { outShape[a] = 1 } else { outShape.remove(at: a) }
        return Tensor(unsafeUninitializedShape: outShape) { out in
            x.withUnsafeBufferPointer { px in
                let src = UncheckedSendable(px.baseAddress!), dst = UncheckedSendable(out.baseAddress!)
                if inner == 1 {
                    Parallel.forEachChunk(outer, cost: n) { rows in
                        for o in rows { dst.value[o] = scale * sumContiguous(src.value + o * n, n) }
                    }
                } else {
                    Parallel.forEachChunk(outer, cost: n * inner) { rows in
                        for o in rows {
                            let d = dst.value + o * inner, s = src.value + o * n * inner
                            d.initialize(repeating: 0, count: inner)
                            for k in 0..<n {
                                let row = s + k * inner
                                for i in 0..<inner { d[i] += row[i] }
                            }
                            if scale != 1 { for i in 0..<inner { d[i] *= scale } }
                        }
                    }
                }
            }
        }
    }

    /// Sum of a contiguous run with eight partial sums: vectorises, and rounds less than one running total.
    @inline(__always)
    static func sumContiguous(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        var s = acc.sum()
        while i < n { s += p[i]; i += 1 }
        return s
    }
}
