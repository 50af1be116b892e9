/// Reverse-mode automatic differentiation over the `Ops` kernels: a tape of recorded operations and `Variable`
/// handles into it.
///
/// Usage, one tape per training step:
///
///     let tape = Tape()
///     let w = tape.variable(weights, requiresGrad: true)    // a parameter
///     let x = tape.constant(inputs)                          // frozen weights and data: nothing is recorded
///     let loss = tape.mean(tape.matmul(x, w))
///     tape.backward(from: loss)
///     let dw = tape.gradient(of: w)                          // Tensor?
///
/// Cost model. A variable either requires a gradient or does not. Constants (`tape.constant`, or
/// `variable(_:requiresGrad: false)`) never get a slot on the tape. An op whose inputs all lack `requiresGrad` just
/// runs its forward kernel and returns a constant: it records nothing and keeps nothing, so a frozen model costs
/// exactly its inference cost. When some inputs require gradients, the op keeps only what its backward needs
/// (e.g. a matmul keeps the side needed for the other side's gradient) and computes gradients only for those inputs.
///
/// Gradients accumulate in place into per-node buffers allocated on first use (`Ops.gemm` with `beta: 1`,
/// `Ops.addInPlace`). After `backward`, gradients of leaf variables stay readable through `gradient(of:)`; buffers
/// of intermediate results and the values kept for backward are released as the pass goes.
///
/// Ops (methods on `Tape`, each mirroring its `Ops` kernel): `matmul` (transposes, batched, a 2-D side shared over
/// the batch), `linear`, `add`/`sub`/`mul`/`div` with broadcasting, `scale`, `affine`, `reshape`, `transpose`,
/// `sum`/`mean` (all, or over an axis), `layerNorm`, `softmax`, `gelu` (exact, tanh), `quickGELU`, `sigmoid`,
/// `logSigmoid`, `exp`, `log`, `l2Normalize`, `cosineSimilarity`, `embedding`, `concat`, `slice`, and
/// multi-head `attention` (causal and key-padding masks). `Variable` has `+ − * /` operators.
///
/// Not thread-safe: one tape belongs to one thread.
public final class Tape {
    /// The backward rule of one node: receives the gradient of the node's output and accumulates into its parents.
    typealias Backward = (_ gradient: Tensor, _ tape: Tape) -> Void

    var grads: [Tensor?] = []
    var backwards: [Backward?] = []
    var isLeaf: [Bool] = []
    var shapes: [[Int]] = []

    public init() {}

    /// Number of nodes on the tape (leaves requiring gradients plus recorded ops); constants do not count.
    public var nodeCount: Int { grads.count }

    /// A leaf. With `requiresGrad` false it is a constant: ops on it record nothing.
    public func variable(_ value: Tensor, requiresGrad: Bool) -> Variable {
        guard requiresGrad else { return Variable(value: value, id: -1, tape: self) }
        return Variable(value: value, id: appendNode(shape: value.shape, leaf: true, backward: nil), tape: self)
    }

    /// A constant leaf (frozen weight, input data): never gets a gradient.
    public func constant(_ value: Tensor) -> Variable {
        variable(value, requiresGrad: false)
    }

    func appendNode(shape: [Int], leaf: Bool, backward: Backward?) -> Int {
        grads.append(nil)
        backwards.append(backward)
        isLeaf.append(leaf)
        shapes.append(shape)
        return grads.count - 1
    }

    /// Records an op's result: a constant if `anyRequiresGrad` is false (and the backward closure is never built).
    func record(_ value: Tensor, _ anyRequiresGrad: Bool, _ backward: () -> Backward) -> Variable {
        guard anyRequiresGrad else { return Variable(value: value, id: -1, tape: self) }
        return Variable(value: value, id: appendNode(shape: value.shape, leaf: false, backward: backward()), tape: self)
    }

    /// Back-propagates from `output` with seed 1 (every element of `output` gets gradient 1; for a scalar loss
    /// this is d loss / d loss). Can be called once per tape; recorded values are released as the pass goes.
    public func backward(from output: Variable) {
        backward(from: output, seed: Tensor(repeating: 1, shape: output.value.shape))
    }

    /// Back-propagates from `output` with an explicit seed gradient of the same shape.
    public func backward(from output: Variable, seed: Tensor) {
        precondition(output.tape === self, "Tape.backward: variable belongs to another tape")
        precondition(seed.shape == output.value.shape,
                     "Tape.backward: seed \(seed.shape) does not match output \(output.value.shape)")
        guard output.requiresGrad else { return }
        accumulate(output.id, seed)
        for i in stride(from: output.id, through: 0, by: -1) {
            guard let rule = backwards[i] else { continue }
            backwards[i] = nil  // releases what the node kept
            guard let g = grads[i] else { continue }
            if !isLeaf[i] { grads[i] = nil }
            rule(g, self)
        }
    }

    /// The accumulated gradient of a leaf (or of the backward output), or nil when the variable is a constant or
    /// no gradient reached it.
    public func gradient(of v: Variable) -> Tensor? {
        guard v.id >= 0, v.tape === self else { return nil }
        return grads[v.id]
    }

    /// Clears accumulated gradients (keeps the nodes); mostly for tests.
    public func zeroGradients() {
        for i in grads.indices { grads[i] = nil }
    }

    // MARK: Accumulation helpers for backward rules

    /// grads[id] += g (g must have the node's shape). The first gradient is stored without copying.
    func accumulate(_ id: Int, _ g: Tensor) {
        precondition(g.shape == shapes[id], "Tape: gradient \(g.shape) for a node of shape \(shapes[id])")
        if grads[id] == nil {
            grads[id] = g
        } else {
            withGradient(id) { Ops.addInPlace(&$0, g) }
        }
    }

    /// grads[id] += alpha · g.
    func accumulate(_ id: Int, _ g: Tensor, scaledBy alpha: Float) {
        if alpha == 1 { accumulate(id, g); return }
        if grads[id] == nil {
            accumulate(id, Ops.scale(g, by: alpha))
        } else {
            withGradient(id) { Ops.addInPlace(&$0, g, scaledBy: alpha) }
        }
    }

    /// Runs `body` on the node's gradient buffer (zeros if none yet), uniquely held so writes do not copy.
    func withGradient(_ id: Int, _ body: (inout Tensor) -> Void) {
        var t = grads[id] ?? Tensor(zeros: shapes[id])
        grads[id] = nil
        body(&t)
        grads[id] = t
    }

    /// Removes and returns the node's gradient buffer (zeros if none yet), so the caller holds it uniquely;
    /// the caller puts it back with `grads[id] = …`.
    func takeGradient(_ id: Int) -> Tensor {
        let t = grads[id] ?? Tensor(zeros: shapes[id])
        grads[id] = nil
        return t
    }

    /// grads[id] += op(a) · op(b), reduced over a broadcast batch when the product has more axes than the node.
    func accumulateProduct(_ id: Int, _ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) {
        let plan = MatmulPlan(a.shape, b.shape, transposeA: transposeA, transposeB: transposeB)
        if plan.outputShape == shapes[id] {
            if grads[id] == nil {
                grads[id] = Ops.matmul(a, b, transposeA: transposeA, transposeB: transposeB)
            } else {
                withGradient(id) { Ops.gemm(a, b, transposeA: transposeA, transposeB: transposeB, beta: 1, into: &$0) }
            }
        } else {
            let full = Ops.matmul(a, b, transposeA: transposeA, transposeB: transposeB)
            accumulate(id, Ops.sum(full, toShape: shapes[id]))
        }
    }
}

/// A value on a tape: the forward result plus its node index (−1 for a constant, which has no node).
public struct Variable {
    /// The forward value.
    public let value: Tensor
    let id: Int
    /// The tape this variable belongs to.
    public let tape: Tape

    /// Whether gradients flow to this variable (false for constants and results computed only from constants).
    public var requiresGrad: Bool { id >= 0 }
    /// Shape of the value.
    public var shape: [Int] { value.shape }
}
