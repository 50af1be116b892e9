import Foundation

/// Differentiable wrappers of the row-wise and element-wise kernels.
extension Tape {
    // MARK: Row-wise

    /// `Ops.layerNorm` over the last axis with optional `[D]` weight and bias. Keeps the normalised x̂ and the
    /// per-row 1/σ (not x); a frozen weight is kept only as a value for dx.
    public func layerNorm(_ x: Variable, weight: Variable?, bias: Variable?, eps: Float = 1e-5) -> Variable {
        check(x)
        if let weight { check(weight) }
        if let bias { check(bias) }
        let iw = weight?.id ?? -1, ib = bias?.id ?? -1
        guard x.requiresGrad || iw >= 0 || ib >= 0 else {
            return constant(Ops.layerNorm(x.value, weight: weight?.value, bias: bias?.value, eps: eps))
        }
        let stats = Ops.layerNormWithStatistics(x.value, weight: nil, bias: nil, eps: eps)
        let xhat = stats.output
        var out = xhat
        if let weight { out = Ops.mul(out, weight.value) }
        if let bias { out = Ops.add(out, bias.value) }
        return record(out, true) {
            let ix = x.id, n = x.value.lastDimension
            // dx needs x̂, 1/σ and the weight; dw needs x̂; db needs nothing.
            let w: Tensor? = ix >= 0 ? weight?.value : nil
            let inv: Tensor? = ix >= 0 ? stats.inverseStd : nil
            let kept: Tensor? = ix >= 0 || iw >= 0 ? xhat : nil
            return { g, tape in
                if iw >= 0, let xhat = kept { tape.accumulate(iw, Ops.sum(Ops.mul(g, xhat), toShape: [n])) }
                if ib >= 0 { tape.accumulate(ib, Ops.sum(g, toShape: [n])) }
                if ix >= 0, let xhat = kept, let inv {
                    tape.accumulate(ix, layerNormBackward(g: g, xhat: xhat, inverseStd: inv, weight: w))
                }
            }
        }
    }

    /// Softmax over the last axis; keeps its output y, dx = y ⊙ (g − Σ g⊙y).
    public func softmax(_ x: Variable) -> Variable {
        check(x)
        let y = Ops.softmax(x.value)
        return record(y, x.requiresGrad) {
            let ix = x.id
            return { g, tape in tape.accumulate(ix, softmaxBackward(y: y, g: g)) }
        }
    }

    /// `v / max(‖v‖, eps)` per row of the last axis. Keeps the output and the per-row norms; a row with
    /// ‖v‖ < eps is v/eps, whose gradient is g/eps.
    public func l2Normalize(_ x: Variable, eps: Float = 1e-6) -> Variable {
        check(x)
        let y = Ops.l2Normalize(x.value, eps: eps)
        return record(y, x.requiresGrad) {
            let ix = x.id, n = x.value.lastDimension
            let rows = n == 0 ? 0 : x.value.count / n
            let norms: [Float] = x.value.withUnsafeBufferPointer { p in
                (0..<rows).map { VectorMath.sumOfSquares(p.baseAddress! + $0 * n, n).squareRoot() }
            }
            return { g, tape in tape.accumulate(ix, l2NormalizeBackward(g: g, y: y, norms: norms, eps: eps)) }
        }
    }

    /// Cosine similarity of every row of `a` `[N, D]` (or `[…, N, D]`) with every row of `b` `[M, D]`:
    /// `l2Normalize(a) · l2Normalize(b)ᵀ`, shape `[…, N, M]`.
    public func cosineSimilarity(_ a: Variable, _ b: Variable, eps: Float = 1e-6) -> Variable {
        matmul(l2Normalize(a, eps: eps), l2Normalize(b, eps: eps), transposeB: true)
    }

    // MARK: Element-wise activations

    /// GELU, exact or tanh form; keeps its input.
    public func gelu(_ x: Variable, approximation: Ops.GELUApproximation = .exact) -> Variable {
        check(x)
        let out = Ops.gelu(x.value, approximation: approximation)
        switch approximation {
        case .exact:
            return unary(x, out, keep: x.value) { x in
                let cdf = 0.5 * (1 + erff(x * 0.707_106_77))
                return cdf + x * expf(-0.5 * x * x) * 0.398_942_3
            }
        case .tanh:
            return unary(x, out, keep: x.value) { x in
                let k: Float = 0.797_884_6, c: Float = 0.044_715
                let t = tanhf(k * (x + c * x * x * x))
                return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * c * x * x)
            }
        }
    }

    /// OpenAI CLIP's `x · σ(1.702x)`; keeps its input.
    public func quickGELU(_ x: Variable) -> Variable {
        check(x)
        return unary(x, Ops.quickGELU(x.value), keep: x.value) { x in
            let s = Ops.sigmoid(1.702 * x)
            return s + 1.702 * x * s * (1 - s)
        }
    }

    /// σ(x); keeps its output, dσ = σ(1 − σ).
    public func sigmoid(_ x: Variable) -> Variable {
        check(x)
        let y = Ops.sigmoid(x.value)
        return unary(x, y, keep: y) { s in s * (1 - s) }
    }

    /// log σ(x); keeps its input, d = σ(−x).
    public func logSigmoid(_ x: Variable) -> Variable {
        check(x)
        return unary(x, Ops.logSigmoid(x.value), keep: x.value) { x in Ops.sigmoid(-x) }
    }

    /// Records an element-wise op whose local derivative is `derivative(kept[i])`.
    func unary(_ x: Variable, _ out: Tensor, keep: Tensor, derivative: @escaping (Float) -> Float) -> Variable {
        record(out, x.requiresGrad) {
            let ix = x.id
            return { g, tape in
                let dx = Tensor(unsafeUninitializedShape: g.shape) { o in
                    g.withUnsafeBufferPointer { pg in
                        keep.withUnsafeBufferPointer { pk in
                            let gp = UncheckedSendable(pg.baseAddress!), kp = UncheckedSendable(pk.baseAddress!)
                            let op = UncheckedSendable(o.baseAddress!)
                            Parallel.forEachChunk(g.count, cost: 16) { r in
                                for i in r { op.value[i] = gp.value[i] * derivative(kp.value[i]) }
                            }
                        }
                    }
                }
                tape.accumulate(ix, dx)
            }
        }
    }
}

/// dx = y ⊙ (g − rowsum(g ⊙ y)) over the last axis.
func softmaxBackward(y: Tensor, g: Tensor) -> Tensor {
    let n = y.lastDimension, rows = n == 0 ? 0 : y.count / n
    return Tensor(unsafeUninitializedShape: y.shape) { out in
        g.withUnsafeBufferPointer { pg in
            y.withUnsafeBufferPointer { py in
                let ctx = UncheckedSendable((pg.baseAddress!, py.baseAddress!, out.baseAddress!))
                Parallel.forEachChunk(rows, cost: n * 3) { range in
                    let (gp, yp, op) = ctx.value
                    for r in range {
                        let gr = gp + r * n, yr = yp + r * n, o = op + r * n
                        var dot: Float = 0
                        for j in 0..<n { dot += gr[j] * yr[j] }
                        for j in 0..<n { o[j] = yr[j] * (gr[j] - dot) }
                    }
                }
            }
        }
    }
}

/// dx of layer normalisation per row: with ĝ = g ⊙ w, dx = (1/σ) · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)).
func layerNormBackward(g: Tensor, xhat: Tensor, inverseStd: Tensor, weight: Tensor?) -> Tensor {
    let n = g.lastDimension, rows = n == 0 ? 0 : g.count / n
    let w = weight ?? Tensor(repeating: 1, shape: [n])
    return Tensor(unsafeUninitializedShape: g.shape) { out in
        g.withUnsafeBufferPointer { pg in
            xhat.withUnsafeBufferPointer { px in
                inverseStd.withUnsafeBufferPointer { pi in
                    w.withUnsafeBufferPointer { pw in
                        let ctx = UncheckedSendable((pg.baseAddress!, px.baseAddress!, pw.baseAddress!,
                                                     out.baseAddress!, pi.baseAddress!))
                        Parallel.forEachChunk(rows, cost: n * 4) { range in
                            let (gp, xp, wp, op, ip) = ctx.value
                            for r in range {
                                let gr = gp + r * n, xr = xp + r * n, o = op + r * n
                                var s1: Double = 0, s2: Double = 0
                                for j in 0..<n {
                                    let gh = Double(gr[j] * wp[j])
                                    s1 += gh
                                    s2 += gh * Double(xr[j])
                                }
                                let m1 = Float(s1 / Double(n)), m2 = Float(s2 / Double(n)), iv = ip[r]
                                for j in 0..<n { o[j] = iv * (gr[j] * wp[j] - m1 - xr[j] * m2) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// dx of `v / max(‖v‖, eps)` per row: (g − y·(y·g)) / ‖v‖, or g / eps where ‖v‖ < eps.
func l2NormalizeBackward(g: Tensor, y: Tensor, norms: [Float], eps: Float) -> Tensor {
    let n = y.lastDimension
    return Tensor(unsafeUninitializedShape: g.shape) { out in
        g.withUnsafeBufferPointer { pg in
            y.withUnsafeBufferPointer { py in
                let ctx = UncheckedSendable((pg.baseAddress!, py.baseAddress!, out.baseAddress!))
                Parallel.forEachChunk(norms.count, cost: n * 3) { range in
                    let (gp, yp, op) = ctx.value
                    for r in range {
                        let gr = gp + r * n, yr = yp + r * n, o = op + r * n
                        if norms[r] >= eps {
                            var dot: Float = 0
                            for j in 0..<n { dot += gr[j] * yr[j] }
                            let s = 1 / norms[r]
                            for j in 0..<n { o[j] = (gr[j] - yr[j] * dot) * s }
                        } else {
                            for j in 0..<n { o[j] = gr[j] / eps }
                        }
                    }
                }
            }
        }
    }
}
