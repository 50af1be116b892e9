/// Arithmetic operators as shorthand for the broadcasting kernels, so model code reads like the equations.
extension Tensor {
    /// `Ops.add`.
    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor { Ops.add(lhs, rhs) }
    /// `Ops.sub`.
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor { Ops.sub(lhs, rhs) }
    /// `Ops.mul` (element-wise; use `Ops.matmul` for the matrix product).
    public static func * (lhs: Tensor, rhs: Tensor) -> Tensor { Ops.mul(lhs, rhs) }
    /// `Ops.div`.
    public static func / (lhs: Tensor, rhs: Tensor) -> Tensor { Ops.div(lhs, rhs) }
    /// `Ops.scale`.
    public static func * (lhs: Tensor, rhs: Float) -> Tensor { Ops.scale(lhs, by: rhs) }
    /// `Ops.scale`.
    public static func * (lhs: Float, rhs: Tensor) -> Tensor { Ops.scale(rhs, by: lhs) }
    /// `Ops.addInPlace`: the right side broadcasts to the left's shape.
    public static func += (lhs: inout Tensor, rhs: Tensor) { Ops.addInPlace(&lhs, rhs) }
    /// `Ops.subInPlace`.
    public static func -= (lhs: inout Tensor, rhs: Tensor) { Ops.subInPlace(&lhs, rhs) }
    /// `Ops.mulInPlace`.
    public static func *= (lhs: inout Tensor, rhs: Tensor) { Ops.mulInPlace(&lhs, rhs) }
    /// `Ops.scaleInPlace`.
    public static func *= (lhs: inout Tensor, rhs: Float) { Ops.scaleInPlace(&lhs, by: rhs) }
}
