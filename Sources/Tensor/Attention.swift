/// Multi-head scaled dot-product attention, `softmax(Q·Kᵀ · scale + mask) · V`, on BLAS.
///
/// Layout: `query` is `[B, Tq, H·Dk]`, `key` `[B, Tk, H·Dk]`, `value` `[B, Tk, H·Dv]`, and the result
/// `[B, Tq, H·Dv]`: heads side by side in the last axis, exactly as the q/k/v projections of a transformer produce
/// them and as its output projection consumes them. Head `h` is the column block `h·D ..< (h+1)·D`, which sgemm
/// addresses through its leading dimension, so no tensor is ever split into heads or transposed. Rank-2 inputs
/// `[T, H·D]` mean a batch of one.
///
/// Masks: `causal` lets query `i` see keys `0...i + queryOffset` (top-left aligned, as PyTorch's `is_causal`, when
/// `queryOffset` is 0; with a prefix of `queryOffset` keys whose queries were computed elsewhere, such as a cached or
/// shared prompt prefix, query `i` sits at position `queryOffset + i`);
/// `keyPaddingMask` is `[B, Tk]` row-major, `true` for a padded key that no query may see (PyTorch's
/// `key_padding_mask` convention). A query with no visible key gets zeros rather than NaN.
extension Ops {
    /// Attention output; see the extension's comment for layout and masks. `scale` defaults to `1/√Dk`.
    public static func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int, causal: Bool = false,
                                 queryOffset: Int = 0, keyPaddingMask: [Bool]? = nil, scale: Float? = nil) -> Tensor {
        attention(query: query, key: key, value: value, heads: heads, causal: causal, queryOffset: queryOffset,
                  keyPaddingMask: keyPaddingMask, scale: scale, keepProbabilities: false).output
    }

    /// Attention that also returns the probabilities `[B, H, Tq, Tk]` (masked entries exactly 0), which the
    /// backward pass needs and which GDMA reports.
    public static func attentionWithProbabilities(
        query: Tensor, key: Tensor, value: Tensor, heads: Int, causal: Bool = false, queryOffset: Int = 0,
        keyPaddingMask: [Bool]? = nil, scale: Float? = nil
    ) -> (output: Tensor, probabilities: Tensor) {
        let r = attention(query: query, key: key, value: value, heads: heads, causal: causal, queryOffset: queryOffset,
                          keyPaddingMask: keyPaddingMask, scale: scale, keepProbabilities: true)
        return (r.output, r.probabilities!)
    }

    static func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int, causal: Bool, queryOffset: Int,
                          keyPaddingMask: [Bool]?, scale: Float?,
                          keepProbabilities: Bool) -> (output: Tensor, probabilities: Tensor?) {
        let g = AttentionGeometry(query.shape, key.shape, value.shape, heads: heads)
        precondition(queryOffset >= 0 && (queryOffset == 0 || causal),
                     "Ops.attention: queryOffset must be non-negative and is only meaningful with a causal mask")
        if let keyPaddingMask {
            precondition(keyPaddingMask.count == g.batch * g.tk,
                         "Ops.attention: keyPaddingMask has \(keyPaddingMask.count) flags, expected B·Tk = \(g.batch * g.tk)")
        }
        let alpha = scale ?? 1 / Float(g.dk).squareRoot()
        let items = g.batch * heads
        var probabilities = keepProbabilities ? Tensor(zeros: [g.batch, heads, g.tq, g.tk]) : nil
        let outShape = query.rank == 2 ? [g.tq, heads * g.dv] : [g.batch, g.tq, heads * g.dv]
        let output = Tensor(unsafeUninitializedShape: outShape) { out in
            let scoresPerItem = g.tq * g.tk
            let chunks = Parallel.chunkCount(items, cost: g.tq * g.tk * (g.dk + g.dv))
            // Without kept probabilities, each concurrent chunk reuses one scratch block of Tq×Tk scores.
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: keepProbabilities ? 1 : chunks * scoresPerItem)
            defer { scratch.deallocate() }
            query.withUnsafeBufferPointer { pq in
                key.withUnsafeBufferPointer { pk in
                    value.withUnsafeBufferPointer { pv in
                        withOptionalMutablePointer(&probabilities) { pp in
                            let ctx = UncheckedSendable((pq.baseAddress!, pk.baseAddress!, pv.baseAddress!,
                                                         out.baseAddress!, pp, scratch))
                            Parallel.forEachChunk(items, chunks: chunks) { chunk, range in
                                let (q, k, v, o, probs, scr) = ctx.value
                                for item in range {
                                    let scores = probs.map { $0 + item * scoresPerItem } ?? scr + chunk * scoresPerItem
                                    attendOne(item: item, g: g, heads: heads, alpha: alpha, causal: causal,
                                              offset: queryOffset, padding: keyPaddingMask, q: q, k: k, v: v, out: o, scores: scores)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (output, probabilities)
    }

    /// Largest m·n·k that OpenBLAS runs on the calling thread (`SMP_THRESHOLD_MIN × GEMM_MULTITHREAD_THRESHOLD`
    /// in its interface/gemm.c). Attention keeps every call below it: items already run in parallel here, and
    /// nesting OpenBLAS's own threads inside them measured slower (16×8 heads of 77 tokens: 3.7 ms → 4.4 ms).
    static let blasSingleThreadWork = 65_536 * 4

    /// One (batch, head) pair: scores by sgemm, masks, in-place softmax, then probabilities · V by sgemm straight
    /// into the head's columns of the output.
    ///
    /// Query rows go in blocks small enough for single-threaded BLAS. Under a causal mask a block of rows
    /// `i0..<i1` only needs keys `0..<i1 + offset`, so the masked upper triangle is never computed.
    @inline(__always)
    static func attendOne(item: Int, g: AttentionGeometry, heads: Int, alpha: Float, causal: Bool, offset: Int,
                          padding: [Bool]?, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                          v: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                          scores: UnsafeMutablePointer<Float>) {
        let b = item / heads, h = item % heads
        let qk = heads * g.dk, vw = heads * g.dv
        let qBase = q + b * g.tq * qk + h * g.dk, kBase = k + b * g.tk * qk + h * g.dk
        let vBase = v + b * g.tk * vw + h * g.dv, oBase = out + b * g.tq * vw + h * g.dv
        let perRow = max(g.tk * max(g.dk, g.dv), 1)
        let block = max(1, min(g.tq, blasSingleThreadWork / perRow - 1, causal ? 32 : g.tq))
        for i0 in stride(from: 0, to: g.tq, by: block) {
            let i1 = min(i0 + block, g.tq)
            let keys = causal ? min(i1 + offset, g.tk) : g.tk
            let rows = scores + i0 * g.tk
            BLAS.sgemm(transA: false, transB: true, m: i1 - i0, n: keys, k: g.dk, alpha: alpha,
                       a: qBase + i0 * qk, lda: qk, b: kBase, ldb: qk, beta: 0, c: rows, ldc: g.tk)
            for i in i0..<i1 {
                let row = scores + i * g.tk
                // Under a causal mask only keys 0...i + offset take part; softmax runs over that prefix alone.
                let visible = causal ? min(i + 1 + offset, g.tk) : g.tk
                if let padding {
                    let flags = b * g.tk
                    for j in 0..<visible where padding[flags + j] { row[j] = -.infinity }
                }
                softmaxRow(row, visible)
                if visible < g.tk { (row + visible).update(repeating: 0, count: g.tk - visible) }
            }
            BLAS.sgemm(transA: false, transB: false, m: i1 - i0, n: g.dv, k: keys, alpha: 1,
                       a: rows, lda: g.tk, b: vBase, ldb: vw, beta: 0, c: oBase + i0 * vw, ldc: vw)
        }
    }

    /// Runs `body` with a pointer into an optional tensor (nil when absent), copy-on-write respected.
    static func withOptionalMutablePointer<R>(_ t: inout Tensor?,
                                              _ body: (UnsafeMutablePointer<Float>?) -> R) -> R {
        guard var tensor = t else { return body(nil) }
        t = nil  // drop the optional's reference so the tensor below is unique and not copied
        defer { t = tensor }
        return tensor.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }
}

/// Extents of one attention call, validated once.
struct AttentionGeometry {
    let batch: Int, tq: Int, tk: Int, dk: Int, dv: Int

    init(_ q: [Int], _ k: [Int], _ v: [Int], heads: Int) {
        precondition(heads > 0, "Ops.attention: heads must be positive")
        precondition(q.count == k.count && k.count == v.count && (q.count == 2 || q.count == 3),
                     "Ops.attention: q, k, v must all be [B, T, H·D] or all [T, H·D]; got \(q), \(k), \(v)")
        let lead = q.count == 3
        batch = lead ? q[0] : 1
        precondition(!lead || (k[0] == batch && v[0] == batch), "Ops.attention: batch sizes differ: \(q), \(k), \(v)")
        tq = q[q.count - 2]
        tk = k[k.count - 2]
        precondition(v[v.count - 2] == tk, "Ops.attention: key and value lengths differ: \(k) vs \(v)")
        precondition(q.last! % heads == 0 && v.last! % heads == 0,
                     "Ops.attention: widths \(q.last!) and \(v.last!) are not divisible by \(heads) heads")
        precondition(k.last! == q.last!, "Ops.attention: query width \(q.last!) differs from key width \(k.last!)")
        dk = q.last! / heads
        dv = v.last! / heads
    }
}
