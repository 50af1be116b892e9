/// Layer normalisation and L2 normalisation over the last axis.
extension Ops {
    /// What `layerNormWithStatistics` returns: the output plus the per-row mean and 1/σ a backward pass reuses.
    public struct LayerNormResult: Sendable {
        /// The normalised, scaled and shifted tensor, shaped like the input.
        public var output: Tensor
        /// Per-row mean, shaped like the input without its last axis.
        public var mean: Tensor
        /// Per-row `1 / sqrt(var + eps)` (biased variance, as PyTorch), shaped like `mean`.
        public var inverseStd: Tensor
    }

    /// `(x − mean) / sqrt(var + eps) · weight + bias` per row of the last axis (PyTorch `nn.LayerNorm`).
    /// `weight` and `bias` are `[D]`; nil means 1 and 0.
    public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) -> Tensor {
        layerNorm(x, weight: weight, bias: bias, eps: eps, keepStatistics: false).output
    }

    /// `layerNorm` that also returns the row statistics, for the autodiff tape.
    public static func layerNormWithStatistics(_ x: Tensor, weight: Tensor?, bias: Tensor?,
                                               eps: Float = 1e-5) -> LayerNormResult {
        layerNorm(x, weight: weight, bias: bias, eps: eps, keepStatistics: true)
    }

    static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float,
                          keepStatistics: Bool) -> LayerNormResult {
        precondition(x.rank >= 1, "Ops.layerNorm: needs at least one axis")
        let n = x.lastDimension, rows = n == 0 ? 0 : x.count / n
        for (name, t) in [("weight", weight), ("bias", bias)] {
            if let t { precondition(t.count == n, "Ops.layerNorm: \(name) \(t.shape) does not match rows of \(n) in \(x.shape)") }
        }
        let statsShape = Array(x.shape.dropLast())
        var mean = Tensor(zeros: keepStatistics ? statsShape : [0])
        var rstd = mean
        let output = Tensor(unsafeUninitializedShape: x.shape) { out in
            let w = weight ?? Tensor(repeating: 1, shape: [n])
            let b = bias ?? Tensor(zeros: [n])
            x.withUnsafeBufferPointer { px in
                w.withUnsafeBufferPointer { pw in
                    b.withUnsafeBufferPointer { pb in
                        mean.withUnsafeMutableBufferPointer { pm in
                            rstd.withUnsafeMutableBufferPointer { pr in
                                let src = UncheckedSendable(px.baseAddress!), dst = UncheckedSendable(out.baseAddress!)
                                let gw = UncheckedSendable(pw.baseAddress!), gb = UncheckedSendable(pb.baseAddress!)
                                let sm = UncheckedSendable(pm.baseAddress!), sr = UncheckedSendable(pr.baseAddress!)
                                Parallel.forEachChunk(rows, cost: n * 4) { r in
                                    for row in r {
                                        let xi = src.value + row * n, yi = dst.value + row * n
                                        let mu = sumContiguous(xi, n) / Float(n)
                                        let v = VectorMath.sumOfSquares(xi, n, center: mu) / Float(n)
                                        let inv = 1 / (v + eps).squareRoot()
                                        VectorMath.normalize(xi, yi, n, mean: mu, inverseStd: inv,
                                                             weight: gw.value, bias: gb.value)
                                        if keepStatistics { sm.value[row] = mu; sr.value[row] = inv }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return LayerNormResult(output: output, mean: mean, inverseStd: rstd)
    }

    /// `v / max(‖v‖₂, eps)` per row of the last axis: CLIP's feature normalisation, safe for a zero row.
    public static func l2Normalize(_ x: Tensor, eps: Float = 1e-6) -> Tensor {
        precondition(x.rank >= 1, "Ops.l2Normalize: needs at least one axis")
        let n = x.lastDimension, rows = n == 0 ? 0 : x.count / n
        return Tensor(unsafeUninitializedShape: x.shape) { out in
            x.withUnsafeBufferPointer { px in
                let src = UncheckedSendable(px.baseAddress!), dst = UncheckedSendable(out.baseAddress!)
                Parallel.forEachChunk(rows, cost: n * 2) { r in
                    for row in r {
                        let xi = src.value + row * n, yi = dst.value + row * n
                        let norm = VectorMath.sumOfSquares(xi, n).squareRoot()
                        VectorMath.scale(xi, yi, n, by: 1 / max(norm, eps))
                    }
                }
            }
        }
    }
}
