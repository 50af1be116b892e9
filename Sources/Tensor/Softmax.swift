/// Softmax over the last axis, the numerically stable way (subtract the row maximum before exponentiating).
extension Ops {
    /// Row softmax over the last axis. A row that is entirely −∞ (every key masked) becomes all zeros, not NaN.
    public static func softmax(_ x: Tensor) -> Tensor {
        var y = x
        softmaxInPlace(&y)
        return y
    }

    /// Row softmax written over `x`; the result is what a softmax backward pass needs, so keep it.
    public static func softmaxInPlace(_ x: inout Tensor) {
        precondition(x.rank >= 1, "Ops.softmax: needs at least one axis")
        let n = x.lastDimension
        guard n > 0 else { return }
        let rows = x.count / n
        x.withUnsafeMutableBufferPointer { p in
            let base = UncheckedSendable(p.baseAddress!)
            Parallel.forEachChunk(rows, cost: n * 8) { r in
                for row in r { softmaxRow(base.value + row * n, n) }
            }
        }
    }

    /// Softmax of one contiguous row in place.
    @inline(__always)
    static func softmaxRow(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        let m = VectorMath.max(p, n)
        if m == -.infinity {
            p.update(repeating: 0, count: n)
            return
        }
        let s = VectorMath.expInPlace(p, n, shift: m)
        VectorMath.scale(p, p, n, by: 1 / s)
    }
}
