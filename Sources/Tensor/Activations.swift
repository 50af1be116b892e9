import Foundation

/// A unary element-wise function, as a value so the shared loop specialises for each one.
protocol UnaryKernel {
    /// Rough cost per element relative to an add; large kernels go parallel on smaller tensors.
    static var cost: Int { get }
    func callAsFunction(_ x: Float) -> Float
    /// The same function on eight lanes; what the loops call.
    func callAsFunction(_ x: SIMD8<Float>) -> SIMD8<Float>
}

extension UnaryKernel {
    @inline(__always) func callAsFunction(_ x: SIMD8<Float>) -> SIMD8<Float> {
        var y = x
        for i in 0..<8 { y[i] = self(x[i]) }
        return y
    }
}

struct ScaleKernel: UnaryKernel {
    static var cost: Int { 1 }
    let factor: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x * factor }
    @inline(__always) func callAsFunction(_ x: SIMD8<Float>) -> SIMD8<Float> { x * factor }
}

struct AffineKernel: UnaryKernel {
    static var cost: Int { 1 }
    let factor: Float, offset: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x * factor + offset }
    @inline(__always) func callAsFunction(_ x: SIMD8<Float>) -> SIMD8<Float> { x * factor + offset }
}

struct SigmoidKernel: UnaryKernel {
    static var cost: Int { 8 }
    @inline(__always) func callAsFunction(_ x: Float) -> Float { Ops.sigmoid(x) }
    @inline(__always) func callAsFunction(_ x: SIMD8<Float>) -> SIMD8<Float> { VectorMath.sigmoid(x) }
}

struct LogSigmoidKernel: UnaryKernel {
    static var cost: Int { 16 }
    // log σ(x) = min(x, 0) − log1p(exp(−|x|)): no overflow for large |x|, no log(0).
    @inline(__always) func callAsFunction(_ x: Float) -> Float { min(x, 0) - log1pf(expf(-abs(x))) }
}

struct GELUKernel: UnaryKernel {
    static var cost: Int { 16 }
    @inline(__always) func callAsFunction(_ x: Float) -> Float { 0.5 * x * (1 + erff(x * 0.707_106_77)) }
    @inline(__always) func callAsFunction(_ x: SIMD8<Float>) -> SIMD8<Float> {
        0.5 * x * (1 + VectorMath.erf(x * 0.707_106_77))
    }
}

struct GELUTanhKernel: UnaryKernel {
    static var cost: Int { 16 }
    @inline(__always) func callAsFunction(_ x: Float) -> Float {
        0.5 * x * (1 + tanhf(0.797_884_6 * (x + 0.044_715 * x * x * x)))
    }
    @inline(__always) func callAsFunction(_ x: SIMD8<Float>) -> SIMD8<Float> {
        0.5 * x * (1 + VectorMath.tanh(0.797_884_6 * (x + 0.044_715 * x * x * x)))
    }
}

struct QuickGELUKernel: UnaryKernel {
    static var cost: Int { 8 }
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x * Ops.sigmoid(1.702 * x) }
    @inline(__always) func callAsFunction(_ x: SIMD8<Float>) -> SIMD8<Float> { x * VectorMath.sigmoid(1.702 * x) }
}

/// Scaling and activation functions, each with an in-place form for the forward pass of a frozen model.
extension Ops {
    /// Which formula `gelu` uses; Hugging Face's `gelu` is `.exact`, `gelu_new`/`gelu_pytorch_tanh` are `.tanh`.
    public enum GELUApproximation: Sendable {
        /// `x · Φ(x)` with the error function, as `torch.nn.functional.gelu(x)`.
        case exact
        /// `0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))`, as `gelu(x, approximate="tanh")`.
        case tanh
    }

    /// `x · factor`.
    public static func scale(_ x: Tensor, by factor: Float) -> Tensor { map(ScaleKernel(factor: factor), x) }
    /// `x *= factor`.
    public static func scaleInPlace(_ x: inout Tensor, by factor: Float) { mapInPlace(ScaleKernel(factor: factor), &x) }
    /// `x · factor + offset`, one pass.
    public static func affine(_ x: Tensor, scale factor: Float, offset: Float) -> Tensor {
        map(AffineKernel(factor: factor, offset: offset), x)
    }

    /// The logistic function `1 / (1 + e^{−x})`, element-wise.
    public static func sigmoid(_ x: Tensor) -> Tensor { map(SigmoidKernel(), x) }
    /// `log σ(x)`, computed without overflow (the asymmetric loss takes logs of probabilities near 0 and 1).
    public static func logSigmoid(_ x: Tensor) -> Tensor { map(LogSigmoidKernel(), x) }

    /// GELU, exact (erf) or tanh-approximated.
    public static func gelu(_ x: Tensor, approximation: GELUApproximation = .exact) -> Tensor {
        switch approximation {
        case .exact: map(GELUKernel(), x)
        case .tanh: map(GELUTanhKernel(), x)
        }
    }

    /// GELU written over `x`.
    public static func geluInPlace(_ x: inout Tensor, approximation: GELUApproximation = .exact) {
        switch approximation {
        case .exact: mapInPlace(GELUKernel(), &x)
        case .tanh: mapInPlace(GELUTanhKernel(), &x)
        }
    }

    /// OpenAI CLIP's `x · σ(1.702x)` (`hidden_act: quick_gelu`).
    public static func quickGELU(_ x: Tensor) -> Tensor { map(QuickGELUKernel(), x) }
    /// quickGELU written over `x`.
    public static func quickGELUInPlace(_ x: inout Tensor) { mapInPlace(QuickGELUKernel(), &x) }

    /// Scalar logistic function, stable for large |x| (never evaluates e^{+large}).
    @inline(__always)
    public static func sigmoid(_ x: Float) -> Float {
        if x >= 0 { return 1 / (1 + expf(-x)) }
        let e = expf(x)
        return e / (1 + e)
    }

    static func map<K: UnaryKernel>(_ kernel: K, _ x: Tensor) -> Tensor {
        Tensor(unsafeUninitializedShape: x.shape) { out in
            x.withUnsafeBufferPointer { px in
                let src = UncheckedSendable(px.baseAddress!), dst = UncheckedSendable(out.baseAddress!)
                Parallel.forEachChunk(x.count, cost: K.cost) { r in
                    VectorMath.map(kernel, src.value + r.lowerBound, dst.value + r.lowerBound, r.count)
                }
            }
        }
    }

    static func mapInPlace<K: UnaryKernel>(_ kernel: K, _ x: inout Tensor) {
        let n = x.count
        x.withUnsafeMutableBufferPointer { px in
            let p = UncheckedSendable(px.baseAddress!)
            Parallel.forEachChunk(n, cost: K.cost) { r in
                VectorMath.map(kernel, p.value + r.lowerBound, p.value + r.lowerBound, r.count)
            }
        }
    }
}
