/// How two operands line up against a broadcast output, reduced to the fewest loops.
///
/// NumPy rules: shapes align at the right; an axis of extent 1 (or a missing one) repeats. Each operand gets a
/// stride per output axis, 0 where it repeats, and adjacent axes that walk memory the same way are merged. Every
/// common case then collapses to one or two loops: equal shapes to one contiguous run, a row vector over a matrix to
/// rows × a contiguous run, a position table `[T, D]` over `[B, T, D]` to `B × (T·D)`.
struct BroadcastLayout {
    /// Output extents after merging, outermost first; never empty.
    let dims: [Int]
    let stridesA: [Int]
    let stridesB: [Int]

    /// The broadcast shape of `a` and `b`, or nil when some axis pair differs and neither is 1.
    static func shape(_ a: [Int], _ b: [Int]) -> [Int]? {
        let rank = max(a.count, b.count)
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
        }
        return out
    }

    /// Row-major strides of `shape` laid against `outShape` (right-aligned), with 0 on repeated axes.
    static func strides(of shape: [Int], against outShape: [Int]) -> [Int] {
        var strides = [Int](repeating: 0, count: outShape.count)
        var step = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            let o = i + outShape.count - shape.count
            strides[o] = shape[i] == 1 ? 0 : step
            step *= shape[i]
        }
        return strides
    }

    init(output: [Int], a: [Int], b: [Int]) {
        var dims: [Int] = []
        var sa: [Int] = []
        var sb: [Int] = []
        let fullA = BroadcastLayout.strides(of: a, against: output)
        let fullB = BroadcastLayout.strides(of: b, against: output)
        for i in output.indices where output[i] != 1 {
            if let last = dims.indices.last,
               sa[last] == fullA[i] * output[i], sb[last] == fullB[i] * output[i] {
                dims[last] *= output[i]
                sa[last] = fullA[i]
                sb[last] = fullB[i]
            } else {
                dims.append(output[i])
                sa.append(fullA[i])
                sb.append(fullB[i])
            }
        }
        if dims.isEmpty { dims = [1]; sa = [0]; sb = [0] }
        self.dims = dims
        stridesA = sa
        stridesB = sb
    }

    /// Extent of the innermost merged loop.
    var inner: Int { dims[dims.count - 1] }
    /// Number of innermost runs (the product of the outer extents).
    var rows: Int { dims.dropLast().reduce(1, *) }

    /// Offsets of run `row` in each operand: one division per axis per run, never per element.
    @inline(__always)
    func offsets(ofRow row: Int) -> (Int, Int) {
        var rest = row, oa = 0, ob = 0
        var axis = dims.count - 2
        while axis >= 0 {
            let i = rest % dims[axis]
            rest /= dims[axis]
            oa += i * stridesA[axis]
            ob += i * stridesB[axis]
            axis -= 1
        }
        return (oa, ob)
    }
}
