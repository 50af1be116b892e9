import Foundation

/// A few more differentiable ops the training code is likely to want (division by a learnable temperature,
/// exp/log for losses, an explicit transpose), and arithmetic operators on `Variable`.
extension Tape {
    /// `a / b` with broadcasting. Keeps `b` (for both sides) and the output (for b's gradient).
    public func div(_ a: Variable, _ b: Variable) -> Variable {
        check(a, b)
        let out = Ops.div(a.value, b.value)
        return record(out, a.requiresGrad || b.requiresGrad) {
            let ia = a.id, ib = b.id, sa = a.shape, sb = b.shape, bv = b.value
            let kept: Tensor? = ib >= 0 ? out : nil
            return { g, tape in
                let gb = Ops.div(g, bv)  // g / b
                if ia >= 0 { tape.accumulate(ia, Ops.sum(gb, toShape: sa)) }
                // d(a/b)/db = −(a/b)/b
                if ib >= 0, let y = kept { tape.accumulate(ib, Ops.sum(Ops.mul(gb, y), toShape: sb), scaledBy: -1) }
            }
        }
    }

    /// `x · factor + offset` for constants.
    public func affine(_ x: Variable, scale factor: Float, offset: Float) -> Variable {
        check(x)
        return record(Ops.affine(x.value, scale: factor, offset: offset), x.requiresGrad) {
            let ix = x.id
            return { g, tape in tape.accumulate(ix, g, scaledBy: factor) }
        }
    }

    /// e^x element-wise; keeps its output.
    public func exp(_ x: Variable) -> Variable {
        check(x)
        let y = elementwise(x.value) { Foundation.expf($0) }
        return unary(x, y, keep: y) { $0 }
    }

    /// Natural log element-wise; keeps its input.
    public func log(_ x: Variable) -> Variable {
        check(x)
        return unary(x, elementwise(x.value) { Foundation.logf($0) }, keep: x.value) { 1 / $0 }
    }

    /// Swaps the last two axes (copying); the gradient is transposed back.
    public func transpose(_ x: Variable) -> Variable {
        check(x)
        return record(Ops.transpose(x.value), x.requiresGrad) {
            let ix = x.id
            return { g, tape in tape.accumulate(ix, Ops.transpose(g)) }
        }
    }

    func elementwise(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
        Tensor(unsafeUninitializedShape: x.shape) { out in
            x.withUnsafeBufferPointer { p in
                for i in 0..<p.count { out[i] = f(p[i]) }
            }
        }
    }
}

extension Variable {
    /// `tape.add`.
    public static func + (lhs: Variable, rhs: Variable) -> Variable { lhs.tape.add(lhs, rhs) }
    /// `tape.sub`.
    public static func - (lhs: Variable, rhs: Variable) -> Variable { lhs.tape.sub(lhs, rhs) }
    /// `tape.mul` (element-wise).
    public static func * (lhs: Variable, rhs: Variable) -> Variable { lhs.tape.mul(lhs, rhs) }
    /// `tape.div`.
    public static func / (lhs: Variable, rhs: Variable) -> Variable { lhs.tape.div(lhs, rhs) }
    /// `tape.scale`.
    public static func * (lhs: Variable, rhs: Float) -> Variable { lhs.tape.scale(lhs, by: rhs) }
    /// `tape.scale`.
    public static func * (lhs: Float, rhs: Variable) -> Variable { rhs.tape.scale(rhs, by: lhs) }
    /// `tape.scale` by −1.
    public static prefix func - (x: Variable) -> Variable { x.tape.scale(x, by: -1) }
}
