import Foundation

/// Differentiable wrappers of the linear-algebra, broadcasting and reduction kernels.
extension Tape {
    func check(_ vs: Variable...) {
        for v in vs { precondition(v.tape === self, "Tape: variable belongs to another tape") }
    }

    // MARK: Products

    /// `Ops.matmul` with the same ranks and transposes (2-D, batched, a 2-D side shared over the batch).
    /// Keeps `b` if `a` needs a gradient and `a` if `b` does.
    public func matmul(_ a: Variable, _ b: Variable, transposeA: Bool = false, transposeB: Bool = false) -> Variable {
        check(a, b)
        let out = Ops.matmul(a.value, b.value, transposeA: transposeA, transposeB: transposeB)
        return record(out, a.requiresGrad || b.requiresGrad) {
            let ia = a.id, ib = b.id
            let keptA: Tensor? = ib >= 0 ? a.value : nil
            let keptB: Tensor? = ia >= 0 ? b.value : nil
            let tA = transposeA, tB = transposeB
            return { g, tape in
                if ia >= 0, let bv = keptB {
                    if !tA {
                        // dA = dC · op(B)ᵀ
                        tape.accumulateProduct(ia, g, bv, transposeA: false, transposeB: !tB)
                    } else {
                        // A stored transposed: dAᵀ = dC · op(B)ᵀ, so dA = op(B) · dCᵀ
                        tape.accumulateProduct(ia, bv, g, transposeA: tB, transposeB: true)
                    }
                }
                if ib >= 0, let av = keptA {
                    if !tB {
                        // dB = op(A)ᵀ · dC; a batched A against a shared 2-D B folds its batch into rows.
                        if av.rank > 2 && bv2(tape.shapes[ib]) && !tA {
                            let k = av.shape[av.rank - 1]
                            tape.accumulateProduct(ib, av.reshaped([-1, k]), g.reshaped([-1, g.shape[g.rank - 1]]),
                                                   transposeA: true, transposeB: false)
                        } else {
                            tape.accumulateProduct(ib, av, g, transposeA: !tA, transposeB: false)
                        }
                    } else {
                        // dBᵀ = op(A)ᵀ · dC, so dB = dCᵀ · op(A)
                        if av.rank > 2 && bv2(tape.shapes[ib]) && !tA {
                            let k = av.shape[av.rank - 1]
                            tape.accumulateProduct(ib, g.reshaped([-1, g.shape[g.rank - 1]]), av.reshaped([-1, k]),
                                                   transposeA: true, transposeB: false)
                        } else {
                            tape.accumulateProduct(ib, g, av, transposeA: true, transposeB: tA)
                        }
                    }
                }
            }
        }
    }

    /// `Ops.linear`: `x · weightᵀ + bias`, weight `[out, in]`. A frozen weight keeps nothing for itself.
    public func linear(_ x: Variable, weight: Variable, bias: Variable? = nil) -> Variable {
        check(x, weight)
        if let bias { check(bias) }
        let out = Ops.linear(x.value, weight: weight.value, bias: bias?.value)
        let biasID = bias?.id ?? -1
        return record(out, x.requiresGrad || weight.requiresGrad || biasID >= 0) {
            let ix = x.id, iw = weight.id
            let keptX: Tensor? = iw >= 0 ? x.value : nil
            let keptW: Tensor? = ix >= 0 ? weight.value : nil
            let outFeatures = weight.value.shape[0], inFeatures = weight.value.shape[1]
            return { g, tape in
                if ix >= 0, let w = keptW {
                    // dx = dy · W, [..., out] × [out, in]
                    tape.accumulateProduct(ix, g, w, transposeA: false, transposeB: false)
                }
                if iw >= 0, let xv = keptX {
                    // dW = dyᵀ · x over all rows
                    tape.accumulateProduct(iw, g.reshaped([-1, outFeatures]), xv.reshaped([-1, inFeatures]),
                                           transposeA: true, transposeB: false)
                }
                if biasID >= 0 {
                    tape.accumulate(biasID, Ops.sum(g.reshaped([-1, outFeatures]), axis: 0))
                }
            }
        }
    }

    // MARK: Broadcasting arithmetic

    /// `a + b` with broadcasting; each side's gradient is summed back to its shape.
    public func add(_ a: Variable, _ b: Variable) -> Variable {
        check(a, b)
        let out = Ops.add(a.value, b.value)
        return record(out, a.requiresGrad || b.requiresGrad) {
            let ia = a.id, ib = b.id, sa = a.shape, sb = b.shape
            return { g, tape in
                if ia >= 0 { tape.accumulate(ia, Ops.sum(g, toShape: sa)) }
                if ib >= 0 { tape.accumulate(ib, Ops.sum(g, toShape: sb)) }
            }
        }
    }

    /// `a − b` with broadcasting.
    public func sub(_ a: Variable, _ b: Variable) -> Variable {
        check(a, b)
        let out = Ops.sub(a.value, b.value)
        return record(out, a.requiresGrad || b.requiresGrad) {
            let ia = a.id, ib = b.id, sa = a.shape, sb = b.shape
            return { g, tape in
                if ia >= 0 { tape.accumulate(ia, Ops.sum(g, toShape: sa)) }
                if ib >= 0 { tape.accumulate(ib, Ops.sum(g, toShape: sb), scaledBy: -1) }
            }
        }
    }

    /// `a ⊙ b` with broadcasting. Keeps `b` if `a` needs a gradient and `a` if `b` does.
    public func mul(_ a: Variable, _ b: Variable) -> Variable {
        check(a, b)
        let out = Ops.mul(a.value, b.value)
        return record(out, a.requiresGrad || b.requiresGrad) {
            let ia = a.id, ib = b.id, sa = a.shape, sb = b.shape
            let keptA: Tensor? = ib >= 0 ? a.value : nil
            let keptB: Tensor? = ia >= 0 ? b.value : nil
            return { g, tape in
                if ia >= 0, let bv = keptB { tape.accumulate(ia, Ops.sum(Ops.mul(g, bv), toShape: sa)) }
                if ib >= 0, let av = keptA { tape.accumulate(ib, Ops.sum(Ops.mul(g, av), toShape: sb)) }
            }
        }
    }

    /// `x · factor` for a constant factor.
    public func scale(_ x: Variable, by factor: Float) -> Variable {
        check(x)
        return record(Ops.scale(x.value, by: factor), x.requiresGrad) {
            let ix = x.id
            return { g, tape in tape.accumulate(ix, g, scaledBy: factor) }
        }
    }

    /// The same values under a new shape (no copy); the gradient is reshaped back.
    public func reshape(_ x: Variable, _ shape: [Int]) -> Variable {
        check(x)
        return record(x.value.reshaped(shape), x.requiresGrad) {
            let ix = x.id, s = x.shape
            return { g, tape in tape.accumulate(ix, g.reshaped(s)) }
        }
    }

    // MARK: Reductions

    /// Sum of every element, rank 0.
    public func sum(_ x: Variable) -> Variable {
        check(x)
        return record(Ops.sum(x.value), x.requiresGrad) {
            let ix = x.id, s = x.shape
            return { g, tape in tape.accumulate(ix, Tensor(repeating: g.scalar, shape: s)) }
        }
    }

    /// Mean of every element, rank 0.
    public func mean(_ x: Variable) -> Variable {
        check(x)
        return record(Ops.mean(x.value), x.requiresGrad) {
            let ix = x.id, s = x.shape, n = Float(x.value.count)
            return { g, tape in tape.accumulate(ix, Tensor(repeating: g.scalar / n, shape: s)) }
        }
    }

    /// Sum over one axis.
    public func sum(_ x: Variable, axis: Int, keepDims: Bool = false) -> Variable {
        reduce(x, axis: axis, keepDims: keepDims, mean: false)
    }

    /// Mean over one axis.
    public func mean(_ x: Variable, axis: Int, keepDims: Bool = false) -> Variable {
        reduce(x, axis: axis, keepDims: keepDims, mean: true)
    }

    func reduce(_ x: Variable, axis: Int, keepDims: Bool, mean: Bool) -> Variable {
        check(x)
        let out = mean ? Ops.mean(x.value, axis: axis, keepDims: keepDims) : Ops.sum(x.value, axis: axis, keepDims: keepDims)
        return record(out, x.requiresGrad) {
            let ix = x.id, s = x.shape
            let a = x.value.normalizedAxis(axis)
            var kept = s
            kept[a] = 1
            let factor: Float = mean ? 1 / Float(s[a]) : 1
            return { g, tape in
                tape.withGradient(ix) { Ops.addInPlace(&$0, g.reshaped(kept), scaledBy: factor) }
            }
        }
    }
}

@inline(__always)
private func bv2(_ shape: [Int]) -> Bool { shape.count == 2 }
