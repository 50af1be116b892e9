import COpenBLAS

/// Matrix products, all through `cblas_sgemm`: plain, transposed, batched, accumulating, and the `linear` layer.
extension Ops {
    /// `a · b`, with either side optionally transposed (the transposes cost nothing; sgemm reads in place).
    ///
    /// Ranks: 2-D × 2-D; batched `[…, M, K] × […, K, N]` with equal leading axes; a 2-D side is shared by every
    /// batch. `[B, T, K] × [K, N]` runs as one `[B·T, K] × [K, N]` sgemm, the common case of a layer over a batch.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        let plan = MatmulPlan(a.shape, b.shape, transposeA: transposeA, transposeB: transposeB)
        return Tensor(unsafeUninitializedShape: plan.outputShape) { out in
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    plan.run(pa.baseAddress!, pb.baseAddress!, out.baseAddress!, alpha: 1, beta: 0)
                }
            }
        }
    }

    /// `c = alpha · (a · b) + beta · c`, writing into an existing tensor: the accumulating product a backward pass
    /// needs (`dW += dYᵀ · X` with `beta = 1`) without a temporary.
    public static func gemm(
        _ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false,
        alpha: Float = 1, beta: Float = 0, into c: inout Tensor
    ) {
        let plan = MatmulPlan(a.shape, b.shape, transposeA: transposeA, transposeB: transposeB)
        precondition(c.shape == plan.outputShape,
                     "Ops.gemm: output has shape \(c.shape), the product of \(a.shape) and \(b.shape) has \(plan.outputShape)")
        c.withUnsafeMutableBufferPointer { pc in
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    plan.run(pa.baseAddress!, pb.baseAddress!, pc.baseAddress!, alpha: alpha, beta: beta)
                }
            }
        }
    }

    /// A fully connected layer, `x · weightᵀ + bias`, with `weight` stored `[out, in]` as PyTorch and Hugging Face
    /// checkpoints store it, so loaded weights are used without a transposed copy.
    ///
    /// `x` is `[…, in]` and the result `[…, out]`. The bias is written first and sgemm accumulates onto it
    /// (`beta = 1`), which saves a separate pass over the output.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        precondition(weight.rank == 2, "Ops.linear: weight must be [out, in], got \(weight.shape)")
        precondition(x.rank >= 1 && x.lastDimension == weight.shape[1],
                     "Ops.linear: input \(x.shape) does not end in the weight's input width \(weight.shape[1])")
        let outFeatures = weight.shape[0], inFeatures = weight.shape[1]
        let rows = x.count / max(inFeatures, 1)
        if let bias {
            precondition(bias.count == outFeatures && bias.rank == 1,
                         "Ops.linear: bias \(bias.shape) does not match weight \(weight.shape)")
        }
        let outShape = Array(x.shape.dropLast()) + [outFeatures]
        return Tensor(unsafeUninitializedShape: outShape) { out in
            let po = out.baseAddress!
            if let bias {
                bias.withUnsafeBufferPointer { pb in
                    for r in 0..<rows { (po + r * outFeatures).initialize(from: pb.baseAddress!, count: outFeatures) }
                }
            } else {
                out.initialize(repeating: 0)
            }
            x.withUnsafeBufferPointer { px in
                weight.withUnsafeBufferPointer { pw in
                    BLAS.sgemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
                               alpha: 1, a: px.baseAddress!, lda: inFeatures, b: pw.baseAddress!, ldb: inFeatures,
                               beta: 1, c: po, ldc: outFeatures)
                }
            }
        }
    }
}

/// The shapes, strides and loop of one (possibly batched) product, worked out once before touching data.
struct MatmulPlan {
    let m: Int, n: Int, k: Int
    let batch: Int
    let strideA: Int, strideB: Int  // 0 when a 2-D side is shared by every batch
    let transA: Bool, transB: Bool
    let outputShape: [Int]

    init(_ sa: [Int], _ sb: [Int], transposeA: Bool, transposeB: Bool) {
        precondition(sa.count >= 2 && sb.count >= 2, "Ops.matmul: both sides need rank ≥ 2, got \(sa) and \(sb)")
        let batchA = Array(sa.dropLast(2)), batchB = Array(sb.dropLast(2))
        precondition(batchA.isEmpty || batchB.isEmpty || batchA == batchB,
                     "Ops.matmul: batch axes differ: \(sa) × \(sb)")
        let (ra, ca) = (sa[sa.count - 2], sa[sa.count - 1])
        let (rb, cb) = (sb[sb.count - 2], sb[sb.count - 1])
        let m = transposeA ? ca : ra, ka = transposeA ? ra : ca
        let kb = transposeB ? cb : rb, n = transposeB ? rb : cb
        precondition(ka == kb, "Ops.matmul: inner sizes differ: \(sa)\(transposeA ? "ᵀ" : "") × \(sb)\(transposeB ? "ᵀ" : "")")
        let batchShape = batchA.isEmpty ? batchB : batchA
        let batch = batchShape.reduce(1, *)
        transA = transposeA
        transB = transposeB
        self.k = ka
        self.n = n
        outputShape = batchShape + [m, n]
        if !batchA.isEmpty && batchB.isEmpty && !transposeA {
            // [B, M, K] × [K, N]: the batch folds into the rows of one big product.
            self.m = m * batch
            self.batch = 1
            strideA = 0
            strideB = 0
        } else {
            self.m = m
            self.batch = batch
            strideA = batchA.isEmpty ? 0 : ra * ca
            strideB = batchB.isEmpty ? 0 : rb * cb
        }
    }

    func run(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
             alpha: Float, beta: Float) {
        let lda = transA ? m : k, ldb = transB ? k : n
        for i in 0..<batch {
            BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                       a: a + i * strideA, lda: lda, b: b + i * strideB, ldb: ldb,
                       beta: beta, c: c + i * m * n, ldc: n)
        }
    }
}

/// The one place that calls `cblas_sgemm`, so thread setup, degenerate sizes and the split of large products over
/// the pool are handled once.
enum BLAS {
    /// Row-major `C = alpha · op(A) · op(B) + beta · C` with explicit leading dimensions (so callers can address a
    /// head's columns inside a wider matrix).
    static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        Parallel.configure()
        if k == 0 {
            // BLAS leaves C untouched when k = 0 only if beta = 1; spell the definition out for every beta.
            for i in 0..<m {
                let row = c + i * ldc
                for j in 0..<n { row[j] = beta == 0 ? 0 : beta * row[j] }
            }
            return
        }
        if n == 1 || m == 1 {
            // A matrix-vector product. OpenBLAS 0.3.21's sgemm runs these shapes (e.g. [6272, 1024] × [1024, 1]) at
            // about 0.01 GFLOP/s; sgemv streams them. With beta = 0 the output is zeroed first, so whatever an
            // uninitialised buffer held (even NaN) never leaks through beta · C.
            if beta == 0 {
                if n == 1 { for i in 0..<m { c[i * ldc] = 0 } } else { c.update(repeating: 0, count: n) }
            }
            if n == 1 {
                // c[:, 0] = alpha · op(A) · (column 0 of op(B)) + beta · c[:, 0]
                sspa_cblas_sgemv(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, Int32(transA ? k : m),
                            Int32(transA ? m : k), alpha, a, Int32(max(lda, 1)), b, Int32(transB ? 1 : max(ldb, 1)),
                            beta, c, Int32(max(ldc, 1)))
            } else {
                // c[0, :]ᵀ = alpha · op(B)ᵀ · (row 0 of op(A))ᵀ + beta · c[0, :]ᵀ
                sspa_cblas_sgemv(CblasRowMajor, transB ? CblasNoTrans : CblasTrans, Int32(transB ? n : k),
                            Int32(transB ? k : n), alpha, b, Int32(max(ldb, 1)), a, Int32(transA ? max(lda, 1) : 1),
                            beta, c, 1)
            }
            return
        }
        let panels = panelCount(m: m, n: n, k: k)
        guard panels > 1 else {
            sspa_cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(max(lda, 1)), b, Int32(max(ldb, 1)),
                        beta, c, Int32(max(ldc, 1)))
            return
        }
        // Panels of C's rows (or columns, when C is wider than tall), one single-threaded sgemm each, over the pool.
        // Every element is computed by the same kernel over the whole of K, so the split (fixed by the shapes and the
        // thread count, never by timing) does not change the arithmetic.
        let pointers = UncheckedSendable((a, b, c))
        let byRows = m >= n
        Parallel.forEachChunk(byRows ? m : n, chunks: panels) { _, r in
            let (a, b, c) = pointers.value
            let (pa, pb, pc, pm, pn): (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int)
            if byRows {
                // Rows r of op(A): rows of A, or columns of a transposed A.
                (pa, pb, pc, pm, pn) = (transA ? a + r.lowerBound : a + r.lowerBound * lda, b, c + r.lowerBound * ldc, r.count, n)
            } else {
                // Columns r of op(B): columns of B, or rows of a transposed B.
                (pa, pb, pc, pm, pn) = (a, transB ? b + r.lowerBound * ldb : b + r.lowerBound, c + r.lowerBound, m, r.count)
            }
            sspa_cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(pm), Int32(pn), Int32(k), alpha, pa, Int32(max(lda, 1)), pb, Int32(max(ldb, 1)),
                        beta, pc, Int32(max(ldc, 1)))
        }
    }

    /// Below this many multiply-adds (m·n·k) a product runs whole on the calling thread: about 50 µs of one core,
    /// several times what handing a panel to another thread costs.
    static let splitWork = 1 << 21

    /// Rows (or columns) a panel keeps at least, a few of the kernel's register tiles.
    static let minimumPanel = 32

    /// How many panels `sgemm` cuts an m×n×k product into: one per thread for a large product, 1 (the calling thread)
    /// for a small one, with one thread, or inside a loop that is already split.
    static func panelCount(m: Int, n: Int, k: Int) -> Int {
        let threads = Parallel.threads
        guard threads > 1, !Parallel.isInsideSplitLoop else { return 1 }
        guard Double(m) * Double(n) * Double(k) >= Double(splitWork) else { return 1 }
        return max(1, min(threads, max(m, n) / minimumPanel))
    }
}
