/// Gathers, concatenation, slicing and transposition: the ops that move values without arithmetic.
extension Ops {
    /// Rows of a `[V, D]` table picked by `ids`: a token-embedding lookup, or pooling rows out of a flattened batch.
    ///
    /// The result is `idsShape + [D]` (default `[ids.count, D]`). An id outside `0..<V` stops with a message that
    /// names it, rather than reading out of bounds.
    public static func embedding<I: BinaryInteger>(_ table: Tensor, ids: [I], idsShape: [Int]? = nil) -> Tensor {
        precondition(table.rank == 2, "Ops.embedding: table must be [V, D], got \(table.shape)")
        let vocab = table.shape[0], width = table.shape[1]
        let shape = idsShape ?? [ids.count]
        precondition(Tensor.elementCount(shape) == ids.count, "Ops.embedding: \(ids.count) ids do not fill shape \(shape)")
        return Tensor(unsafeUninitializedShape: shape + [width]) { out in
            table.withUnsafeBufferPointer { pt in
                for (i, id) in ids.enumerated() {
                    guard let row = Int(exactly: id), row >= 0, row < vocab else {
                        preconditionFailure("Ops.embedding: id \(id) at position \(i) is outside the table's \(vocab) rows")
                    }
                    (out.baseAddress! + i * width).initialize(from: pt.baseAddress! + row * width, count: width)
                }
            }
        }
    }

    /// Joins tensors along `axis`; all other extents must agree.
    public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "Ops.concat: nothing to concatenate")
        let first = tensors[0]
        let a = first.normalizedAxis(axis)
        for t in tensors {
            precondition(t.rank == first.rank && t.shape[..<a] == first.shape[..<a] && t.shape[(a + 1)...] == first.shape[(a + 1)...],
                         "Ops.concat: shapes \(tensors.map(\.shape)) differ off axis \(axis)")
        }
        let outer = first.shape[..<a].reduce(1, *), inner = first.shape[(a + 1)...].reduce(1, *)
        var outShape = first.shape
        outShape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
        let outRow = outShape[a] * inner
        return Tensor(unsafeUninitializedShape: outShape) { out in
            var column = 0
            for t in tensors {
                let run = t.shape[a] * inner
                t.withUnsafeBufferPointer { pt in
                    for o in 0..<outer {
                        (out.baseAddress! + o * outRow + column).initialize(from: pt.baseAddress! + o * run, count: run)
                    }
                }
                column += run
            }
        }
    }

    /// The elements whose index along `axis` lies in `range`, copied into a new contiguous tensor.
    public static func slice(_ x: Tensor, axis: Int, range: Range<Int>) -> Tensor {
        let a = x.normalizedAxis(axis)
        precondition(range.lowerBound >= 0 && range.upperBound <= x.shape[a],
                     "Ops.slice: range \(range) outside 0..<\(x.shape[a]) on axis \(axis) of \(x.shape)")
        if range == 0..<x.shape[a] { return x }
        let outer = x.shape[..<a].reduce(1, *), inner = x.shape[(a + 1)...].reduce(1, *)
        var outShape = x.shape
        outShape[a] = range.count
        let run = range.count * inner, srcRow = x.shape[a] * inner
        return Tensor(unsafeUninitializedShape: outShape) { out in
            x.withUnsafeBufferPointer { px in
                for o in 0..<outer {
                    (out.baseAddress! + o * run).initialize(from: px.baseAddress! + o * srcRow + range.lowerBound * inner,
                                                            count: run)
                }
            }
        }
    }

    /// Swaps the last two axes (batched matrix transpose), copying. Prefer the `transpose` flags of `matmul`,
    /// which cost nothing; this is for the rare layout change a product cannot absorb.
    public static func transpose(_ x: Tensor) -> Tensor {
        precondition(x.rank >= 2, "Ops.transpose: needs rank ≥ 2, got \(x.shape)")
        let r = x.shape[x.rank - 2], c = x.shape[x.rank - 1], batch = x.count / max(r * c, 1)
        var outShape = x.shape
        outShape.swapAt(x.rank - 2, x.rank - 1)
        return Tensor(unsafeUninitializedShape: outShape) { out in
            x.withUnsafeBufferPointer { px in
                for b in 0..<(r * c == 0 ? 0 : batch) {
                    let s = px.baseAddress! + b * r * c, d = out.baseAddress! + b * r * c
                    // Blocked so both sides stay in cache on large matrices.
                    for i0 in stride(from: 0, to: r, by: 32) {
                        for j0 in stride(from: 0, to: c, by: 32) {
                            for i in i0..<min(i0 + 32, r) {
                                for j in j0..<min(j0 + 32, c) { d[j * r + i] = s[i * c + j] }
                            }
                        }
                    }
                }
            }
        }
    }
}
