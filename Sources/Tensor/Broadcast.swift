/// A binary element-wise operation, as a value so that the generic loops below specialise to straight-line code.
protocol BinaryKernel {
    func callAsFunction(_ a: Float, _ b: Float) -> Float
}

struct AddKernel: BinaryKernel { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a + b } }
struct SubKernel: BinaryKernel { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a - b } }
struct MulKernel: BinaryKernel { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a * b } }
struct DivKernel: BinaryKernel { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a / b } }
struct AxpyKernel: BinaryKernel {
    let alpha: Float
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a + alpha * b }
}

/// Add, subtract, multiply and divide with NumPy broadcasting, and their in-place forms.
extension Ops {
    /// The broadcast shape of two shapes (NumPy rules), or nil if they do not broadcast.
    public static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
        BroadcastLayout.shape(a, b)
    }

    /// `a + b`, broadcasting.
    public static func add(_ a: Tensor, _ b: Tensor) -> Tensor { binary(AddKernel(), a, b, name: "add") }
    /// `a - b`, broadcasting.
    public static func sub(_ a: Tensor, _ b: Tensor) -> Tensor { binary(SubKernel(), a, b, name: "sub") }
    /// `a * b` element-wise (Hadamard), broadcasting.
    public static func mul(_ a: Tensor, _ b: Tensor) -> Tensor { binary(MulKernel(), a, b, name: "mul") }
    /// `a / b` element-wise, broadcasting.
    public static func div(_ a: Tensor, _ b: Tensor) -> Tensor { binary(DivKernel(), a, b, name: "div") }

    /// `a += alpha · b`, where `b` broadcasts to `a`'s shape: residual connections and gradient accumulation
    /// without a new tensor.
    public static func addInPlace(_ a: inout Tensor, _ b: Tensor, scaledBy alpha: Float = 1) {
        if alpha == 1 {
            binaryInPlace(AddKernel(), &a, b, name: "addInPlace")
        } else {
            binaryInPlace(AxpyKernel(alpha: alpha), &a, b, name: "addInPlace")
        }
    }

    /// `a -= b`, where `b` broadcasts to `a`'s shape.
    public static func subInPlace(_ a: inout Tensor, _ b: Tensor) { binaryInPlace(SubKernel(), &a, b, name: "subInPlace") }
    /// `a *= b`, where `b` broadcasts to `a`'s shape.
    public static func mulInPlace(_ a: inout Tensor, _ b: Tensor) { binaryInPlace(MulKernel(), &a, b, name: "mulInPlace") }

    static func binary<K: BinaryKernel>(_ kernel: K, _ a: Tensor, _ b: Tensor, name: String) -> Tensor {
        guard let outShape = BroadcastLayout.shape(a.shape, b.shape) else {
            preconditionFailure("Ops.\(name): shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let layout = BroadcastLayout(output: outShape, a: a.shape, b: b.shape)
        return Tensor(unsafeUninitializedShape: outShape) { out in
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    run(kernel, layout, pa.baseAddress!, pb.baseAddress!, out.baseAddress!)
                }
            }
        }
    }

    static func binaryInPlace<K: BinaryKernel>(_ kernel: K, _ a: inout Tensor, _ b: Tensor, name: String) {
        guard BroadcastLayout.shape(a.shape, b.shape) == a.shape else {
            preconditionFailure("Ops.\(name): \(b.shape) does not broadcast to the target's shape \(a.shape)")
        }
        let layout = BroadcastLayout(output: a.shape, a: a.shape, b: b.shape)
        // Read b before a is made unique: if they share storage, b keeps the old block alive and unchanged.
        b.withUnsafeBufferPointer { pb in
            a.withUnsafeMutableBufferPointer { pa in
                run(kernel, layout, pa.baseAddress!, pb.baseAddress!, pa.baseAddress!)
            }
        }
    }

    /// The shared loop: rows of the merged layout split across cores, a specialised contiguous inner loop.
    /// `out` may alias `a` (in-place), never `b`.
    static func run<K: BinaryKernel>(_ kernel: K, _ layout: BroadcastLayout,
                                     _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                     _ out: UnsafeMutablePointer<Float>) {
        let inner = layout.inner
        let ia = layout.stridesA[layout.dims.count - 1], ib = layout.stridesB[layout.dims.count - 1]
        let pa = UncheckedSendable(a), pb = UncheckedSendable(b), po = UncheckedSendable(out)
        if layout.dims.count == 1 {
            // One flat run (equal shapes or a scalar): split the run itself.
            Parallel.forEachChunk(inner) { r in
                innerLoop(kernel, r.count, pa.value + r.lowerBound * ia, ia,
                          pb.value + r.lowerBound * ib, ib, po.value + r.lowerBound)
            }
            return
        }
        Parallel.forEachChunk(layout.rows, cost: inner) { rows in
            for row in rows {
                let (oa, ob) = layout.offsets(ofRow: row)
                innerLoop(kernel, inner, pa.value + oa, ia, pb.value + ob, ib, po.value + row * inner)
            }
        }
    }

    @inline(__always)
    static func innerLoop<K: BinaryKernel>(_ kernel: K, _ n: Int,
                                           _ a: UnsafePointer<Float>, _ sa: Int,
                                           _ b: UnsafePointer<Float>, _ sb: Int,
                                           _ out: UnsafeMutablePointer<Float>) {
        switch (sa, sb) {
        case (1, 1): for i in 0..<n { out[i] = kernel(a[i], b[i]) }
        case (1, 0): let y = b[0]; for i in 0..<n { out[i] = kernel(a[i], y) }
        case (0, 1): let x = a[0]; for i in 0..<n { out[i] = kernel(x, b[i]) }
        default: for i in 0..<n { out[i] = kernel(a[i * sa], b[i * sb]) }
        }
    }

    /// Sums `x` down to `shape`, which must broadcast to `x.shape`: the reverse of broadcasting, and so the
    /// gradient of every broadcasting op with respect to its smaller operand.
    public static func sum(_ x: Tensor, toShape shape: [Int]) -> Tensor {
        precondition(BroadcastLayout.shape(x.shape, shape) == x.shape,
                     "Ops.sum(toShape:): \(shape) does not broadcast to \(x.shape)")
        if shape == x.shape { return x }
        // Treat the target as operand b of a broadcast whose output is x; accumulate instead of reading.
        let layout = BroadcastLayout(output: x.shape, a: x.shape, b: shape)
        var result = Tensor(zeros: shape)
        result.withUnsafeMutableBufferPointer { po in
            x.withUnsafeBufferPointer { px in
                let out = po.baseAddress!, input = px.baseAddress!
                let inner = layout.inner
                let ia = layout.stridesA[layout.dims.count - 1], ib = layout.stridesB[layout.dims.count - 1]
                for row in 0..<layout.rows {
                    let (oa, ob) = layout.offsets(ofRow: row)
                    let src = input + oa, dst = out + ob
                    if ib == 0 {
                        var s: Float = 0
                        for i in 0..<inner { s += src[i * ia] }
                        dst[0] += s
                    } else {
                        for i in 0..<inner { dst[i * ib] += src[i * ia] }
                    }
                }
            }
        }
        return result
    }
}
