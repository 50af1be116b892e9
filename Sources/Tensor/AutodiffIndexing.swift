/// Differentiable gathers, concatenation, slicing and attention.
extension Tape {
    /// Rows of a `[V, D]` table picked by `ids`; the backward scatter-adds into the table's gradient (a repeated
    /// id accumulates). Keeps only the ids.
    public func embedding<I: BinaryInteger>(_ table: Variable, ids: [I], idsShape: [Int]? = nil) -> Variable {
        check(table)
        let out = Ops.embedding(table.value, ids: ids, idsShape: idsShape)
        return record(out, table.requiresGrad) {
            let it = table.id, width = table.value.shape[1]
            let rows = ids.map { Int($0) }
            return { g, tape in
                tape.withGradient(it) { grad in
                    grad.withUnsafeMutableBufferPointer { pd in
                        g.withUnsafeBufferPointer { pg in
                            for (i, row) in rows.enumerated() {
                                let d = pd.baseAddress! + row * width, s = pg.baseAddress! + i * width
                                for j in 0..<width { d[j] += s[j] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `Ops.concat` along `axis`; each input gets its slice of the gradient.
    public func concat(_ xs: [Variable], axis: Int) -> Variable {
        for x in xs { check(x) }
        let out = Ops.concat(xs.map(\.value), axis: axis)
        return record(out, xs.contains { $0.requiresGrad }) {
            let a = out.normalizedAxis(axis)
            let parts = xs.map { ($0.id, $0.shape[a]) }
            return { g, tape in
                var start = 0
                for (id, extent) in parts {
                    if id >= 0 { tape.accumulate(id, Ops.slice(g, axis: a, range: start..<(start + extent))) }
                    start += extent
                }
            }
        }
    }

    /// `Ops.slice`; the gradient is added into the sliced region of the input's gradient.
    public func slice(_ x: Variable, axis: Int, range: Range<Int>) -> Variable {
        check(x)
        let out = Ops.slice(x.value, axis: axis, range: range)
        return record(out, x.requiresGrad) {
            let ix = x.id, s = x.shape
            let a = x.value.normalizedAxis(axis)
            let outer = s[..<a].reduce(1, *), inner = s[(a + 1)...].reduce(1, *)
            let run = range.count * inner, srcRow = s[a] * inner, offset = range.lowerBound * inner
            return { g, tape in
                tape.withGradient(ix) { grad in
                    grad.withUnsafeMutableBufferPointer { pd in
                        g.withUnsafeBufferPointer { pg in
                            for o in 0..<outer {
                                let d = pd.baseAddress! + o * srcRow + offset, src = pg.baseAddress! + o * run
                                for j in 0..<run { d[j] += src[j] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Multi-head attention, `softmax(Q·Kᵀ·scale + mask)·V`, layout `[B, T, H·D]` (or `[T, H·D]`) as
    /// `Ops.attention`. Keeps Q, K, V and the probabilities P; per head the backward is dV = Pᵀ·dO, dP = dO·Vᵀ,
    /// dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = scale·dS·K, dK = scale·dSᵀ·Q.
    public func attention(query: Variable, key: Variable, value: Variable, heads: Int, causal: Bool = false,
                          queryOffset: Int = 0, keyPaddingMask: [Bool]? = nil, scale: Float? = nil) -> Variable {
        check(query, key, value)
        guard query.requiresGrad || key.requiresGrad || value.requiresGrad else {
            return constant(Ops.attention(query: query.value, key: key.value, value: value.value, heads: heads,
                                          causal: causal, queryOffset: queryOffset, keyPaddingMask: keyPaddingMask,
                                          scale: scale))
        }
        let r = Ops.attentionWithProbabilities(query: query.value, key: key.value, value: value.value, heads: heads,
                                               causal: causal, queryOffset: queryOffset,
                                               keyPaddingMask: keyPaddingMask, scale: scale)
        return record(r.output, true) {
            let iq = query.id, ik = key.id, iv = value.id
            // dV needs only P; dQ needs K and V; dK needs Q and V. Keep nothing else (a tensor that is not needed
            // is replaced by an empty placeholder, never read).
            let geo = AttentionGeometry(query.shape, key.shape, value.shape, heads: heads)
            let needQK = iq >= 0 || ik >= 0
            let placeholder = Tensor(zeros: [0])
            let q = ik >= 0 ? query.value : placeholder, k = iq >= 0 ? key.value : placeholder
            let v = needQK ? value.value : placeholder, p = r.probabilities
            let shapes = (query.shape, key.shape, value.shape)
            let alpha = scale ?? 1 / Float(geo.dk).squareRoot()
            return { g, tape in
                // The products accumulate (beta = 1) straight into the gradient buffers, taken off the tape so
                // they are uniquely held. A tensor passed as two of q, k, v has one node and one buffer.
                let kAliased = ik >= 0 && ik == iq, vAliased = iv >= 0 && (iv == iq || iv == ik)
                var dq = iq >= 0 ? tape.takeGradient(iq) : nil
                var dk = ik < 0 ? nil : kAliased ? Tensor(zeros: shapes.1) : tape.takeGradient(ik)
                var dv = iv < 0 ? nil : vAliased ? Tensor(zeros: shapes.2) : tape.takeGradient(iv)
                attentionBackward(g: g, q: q, k: k, v: v, p: p, geo: geo, heads: heads, alpha: alpha,
                                  dq: &dq, dk: &dk, dv: &dv)
                if let dq { tape.grads[iq] = dq }
                if let dk { if kAliased { tape.accumulate(ik, dk) } else { tape.grads[ik] = dk } }
                if let dv { if vAliased { tape.accumulate(iv, dv) } else { tape.grads[iv] = dv } }
            }
        }
    }
}

/// The per-(batch, head) backward of attention, accumulating (beta = 1) into whichever of dq/dk/dv are non-nil.
func attentionBackward(g: Tensor, q: Tensor, k: Tensor, v: Tensor, p: Tensor, geo: AttentionGeometry, heads: Int,
                       alpha: Float, dq: inout Tensor?, dk: inout Tensor?, dv: inout Tensor?) {
    let items = geo.batch * heads
    let qk = heads * geo.dk, vw = heads * geo.dv
    let tq = geo.tq, tk = geo.tk
    let needScores = dq != nil || dk != nil
    g.withUnsafeBufferPointer { pg in
    q.withUnsafeBufferPointer { pq in
    k.withUnsafeBufferPointer { pk in
    v.withUnsafeBufferPointer { pv in
    p.withUnsafeBufferPointer { pp in
    Ops.withOptionalMutablePointer(&dq) { dqp in
    Ops.withOptionalMutablePointer(&dk) { dkp in
    Ops.withOptionalMutablePointer(&dv) { dvp in
        let ctx = UncheckedSendable((pg.baseAddress!, pq.baseAddress!, pk.baseAddress!, pv.baseAddress!,
                                     pp.baseAddress!, dqp, dkp, dvp))
        // Items write disjoint column blocks (heads) or row blocks (batches) of the gradients: safe in parallel.
        Parallel.forEachChunk(items, cost: tq * tk * (geo.dk + geo.dv) * 2) { range in
            let (gb, qb, kb, vb, pb, dqb, dkb, dvb) = ctx.value
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(tq * tk, 1))
            defer { scratch.deallocate() }
            for item in range {
                let b = item / heads, h = item % heads
                let qOff = b * tq * qk + h * geo.dk, kOff = b * tk * qk + h * geo.dk
                let vOff = b * tk * vw + h * geo.dv, oOff = b * tq * vw + h * geo.dv
                let probs = pb + item * tq * tk
                if let dvb {
                    // dV = Pᵀ · dO
                    BLAS.sgemm(transA: true, transB: false, m: tk, n: geo.dv, k: tq, alpha: 1,
                               a: probs, lda: tk, b: gb + oOff, ldb: vw, beta: 1, c: dvb + vOff, ldc: vw)
                }
                guard needScores else { continue }
                // dP = dO · Vᵀ
                BLAS.sgemm(transA: false, transB: true, m: tq, n: tk, k: geo.dv, alpha: 1,
                           a: gb + oOff, lda: vw, b: vb + vOff, ldb: vw, beta: 0, c: scratch, ldc: tk)
                // dS = P ⊙ (dP − rowsum(dP ⊙ P)); masked entries have P = 0 and so dS = 0.
                for i in 0..<tq {
                    let ds = scratch + i * tk, pr = probs + i * tk
                    var dot: Float = 0
                    for j in 0..<tk { dot += ds[j] * pr[j] }
                    for j in 0..<tk { ds[j] = pr[j] * (ds[j] - dot) }
                }
                if let dqb {
                    BLAS.sgemm(transA: false, transB: false, m: tq, n: geo.dk, k: tk, alpha: alpha,
                               a: scratch, lda: tk, b: kb + kOff, ldb: qk, beta: 1, c: dqb + qOff, ldc: qk)
                }
                if let dkb {
                    BLAS.sgemm(transA: true, transB: false, m: tk, n: geo.dk, k: tq, alpha: alpha,
                               a: scratch, lda: tk, b: qb + qOff, ldb: qk, beta: 1, c: dkb + kOff, ldc: qk)
                }
            }
        }
    }
    }
    }
    }
    }
    }
    }
    }
}
