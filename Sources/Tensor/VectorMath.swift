/// Eight-lane exp, erf, tanh and sigmoid, so that activations and softmax run at SIMD speed instead of one libm
/// call per element (which made GELU and softmax ten times slower than PyTorch's vectorised kernels).
///
/// The formulas are the ones PyTorch's own vectorised CPU kernels use: Cephes' `expf` range reduction and
/// polynomial (about 2 ulp), and Abramowitz & Stegun 7.1.26 for erf (absolute error below 1.5e-7). Results
/// therefore stay within float rounding of PyTorch and of the libm functions the scalar reference uses.
enum VectorMath {
    typealias V = SIMD8<Float>
    static let lanes = 8

    @inline(__always) static func bits(_ v: V) -> SIMD8<UInt32> { unsafeBitCast(v, to: SIMD8<UInt32>.self) }
    @inline(__always) static func float(bits: SIMD8<UInt32>) -> V { unsafeBitCast(bits, to: V.self) }

    /// e^x per lane: 0 below −87.33 (the smallest normal's log, so −∞ → 0 exactly), +∞ above 88.72. Inputs in
    /// (88.3, 88.72] return e^88.3, keeping 2ⁿ finite; no caller here exponentiates anything that large.
    @inline(__always)
    static func exp(_ x: V) -> V {
        var clamped = x
        clamped.replace(with: -87.336_54, where: x .< -87.336_54)  // masks and blends: `clamped(…)` and
        clamped.replace(with: 88.3, where: x .> 88.3)              // `pointwiseMin` compile to calls
        clamped.replace(with: 0, where: x .!= x)
        // n = round(x / ln 2) via the 1.5·2²³ trick, which also leaves n in the low mantissa bits.
        let shifted = clamped * 1.442_695_04 + 12_582_912.0
        let n = shifted - 12_582_912.0
        let r = clamped - n * 0.693_359_375 + n * 2.121_944_4e-4
        var p = V(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        let y = p * (r * r) + r + 1
        let exponent = (bits(shifted) &- 0x4B40_0000 &+ 127) &<< 23
        var result = y * float(bits: exponent)
        result.replace(with: 0, where: x .< -87.336_54)
        result.replace(with: .infinity, where: x .> 88.722_83)
        result.replace(with: x, where: x .!= x)  // NaN in, NaN out
        return result
    }

    /// erf(x) per lane (A&S 7.1.26, as PyTorch's vectorised `erf`).
    @inline(__always)
    static func erf(_ x: V) -> V {
        let a = float(bits: bits(x) & 0x7FFF_FFFF)
        let t = 1 / (1 + 0.327_591_1 * a)
        var p = V(repeating: 1.061_405_429)
        p = p * t - 1.453_152_027
        p = p * t + 1.421_413_741
        p = p * t - 0.284_496_736
        p = p * t + 0.254_829_592
        let y = 1 - p * t * exp(-a * a)
        return float(bits: bits(y) | (bits(x) & 0x8000_0000))
    }

    /// tanh(x) per lane as 1 − 2/(e^{2x} + 1): exact limits ±1, absolute error near 1e-7 around 0.
    @inline(__always)
    static func tanh(_ x: V) -> V {
        1 - 2 / (exp(2 * x) + 1)
    }

    /// σ(x) = 1/(1 + e^{−x}) per lane; exactly 0 and 1 far out, never NaN for finite x.
    @inline(__always)
    static func sigmoid(_ x: V) -> V {
        1 / (1 + exp(-x))
    }

    /// Applies `kernel` to `n` floats from `src` into `dst` (which may be `src`), eight at a time; the tail goes
    /// through the same vector code on a padded copy, so every element sees the same formula.
    @inline(__always)
    static func map<K: UnaryKernel>(_ kernel: K, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + lanes <= n {
            store(kernel(load(src + i)), dst + i)
            i += lanes
        }
        if i < n {
            var v = V()
            for j in 0..<(n - i) { v[j] = src[i + j] }
            let y = kernel(v)
            for j in 0..<(n - i) { dst[i + j] = y[j] }
        }
    }
}

/// Row reductions and updates used by softmax and the normalisations, eight lanes at a time.
extension VectorMath {
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// Largest element of a row (−∞ for an empty row; NaN-propagation is not needed by callers).
    @inline(__always)
    static func max(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(repeating: -.infinity)
        var i = 0
        while i + lanes <= n {
            let v = load(p + i)
            acc.replace(with: v, where: v .> acc)
            i += lanes
        }
        var m = acc.max()
        while i < n { m = Swift.max(m, p[i]); i += 1 }
        return m
    }

    /// Σ (p[i] − center)², with eight partial sums.
    @inline(__always)
    static func sumOfSquares(_ p: UnsafePointer<Float>, _ n: Int, center: Float = 0) -> Float {
        var acc = V()
        var i = 0
        while i + lanes <= n { let d = load(p + i) - center; acc += d * d; i += lanes }
        var s = acc.sum()
        while i < n { let d = p[i] - center; s += d * d; i += 1 }
        return s
    }

    /// p[i] = e^{p[i] − shift} in place, returning the sum of the new values.
    @inline(__always)
    static func expInPlace(_ p: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
        var acc = V()
        var i = 0
        while i + lanes <= n {
            let e = exp(load(p + i) - shift)
            store(e, p + i)
            acc += e
            i += lanes
        }
        if i < n {
            var v = V(repeating: -.infinity)  // padding lanes exponentiate to exactly 0
            for j in 0..<(n - i) { v[j] = p[i + j] }
            let e = exp(v - shift)
            for j in 0..<(n - i) { p[i + j] = e[j] }
            acc += e
        }
        return acc.sum()
    }

    /// y[i] = x[i] · scale (x may be y).
    @inline(__always)
    static func scale(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, by scale: Float) {
        var i = 0
        while i + lanes <= n { store(load(x + i) * scale, y + i); i += lanes }
        while i < n { y[i] = x[i] * scale; i += 1 }
    }

    /// y[i] = (x[i] − mean) · inv · w[i] + b[i]: the affine step of layer normalisation.
    @inline(__always)
    static func normalize(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, mean: Float,
                          inverseStd inv: Float, weight w: UnsafePointer<Float>, bias b: UnsafePointer<Float>) {
        var i = 0
        while i + lanes <= n {
            store((load(x + i) - mean) * inv * load(w + i) + load(b + i), y + i)
            i += lanes
        }
        while i < n { y[i] = (x[i] - mean) * inv * w[i] + b[i]; i += 1 }
    }
}
