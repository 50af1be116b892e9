import Testing
@testable import Tensor

/// Products against a Double reference. Tolerance: |error| ≤ 1e-5 · (1 + |expected|) · √K, float32 rounding over a
/// K-term dot product of unit-normal inputs.
@Suite("Matrix products")
struct MatmulTests {
    static func tolerance(_ k: Int) -> Double { 1e-5 * Double(k).squareRoot() + 1e-6 }

    @Test("2-D × 2-D, every transpose combination", arguments: Reference.sizes, [false, true])
    func plain(size: Int, transposeA: Bool) {
        let (m, k, n) = (size, size == 1 ? 3 : size + 2, size == 130 ? 5 : size + 1)
        for transposeB in [false, true] {
            let a = Reference.random(transposeA ? [k, m] : [m, k], seed: 1)
            let b = Reference.random(transposeB ? [n, k] : [k, n], seed: 2)
            let c = Ops.matmul(a, b, transposeA: transposeA, transposeB: transposeB)
            #expect(c.shape == [m, n])
            let ref = Reference.matmul(Reference.doubles(a), Reference.doubles(b), m: m, n: n, k: k,
                                       transA: transposeA, transB: transposeB)
            #expect(Reference.maxMixedError(c, ref) <= Self.tolerance(k))
        }
    }

    @Test("matrix-vector shapes (m = 1 or n = 1) with padded leading dimensions, beta 0 over NaN and beta 1",
          arguments: [(1, 7), (9, 1), (1, 1), (130, 1), (1, 130)])
    func matrixVector(m: Int, n: Int) {
        let k = 33, pad = 3
        for transA in [false, true] { for transB in [false, true] {
            let (ra, ca) = transA ? (k, m) : (m, k), (rb, cb) = transB ? (n, k) : (k, n)
            let lda = ca + pad, ldb = cb + pad, ldc = n + pad
            let a = Reference.random([ra * lda], seed: 31), b = Reference.random([rb * ldb], seed: 32)
            // The reference on the packed (unpadded) matrices.
            let packedA = (0..<ra).flatMap { r in (0..<ca).map { Double(a.scalars[r * lda + $0]) } }
            let packedB = (0..<rb).flatMap { r in (0..<cb).map { Double(b.scalars[r * ldb + $0]) } }
            let product = Reference.matmul(packedA, packedB, m: m, n: n, k: k, transA: transA, transB: transB)
            for beta: Float in [0, 1] {
                var c = [Float](repeating: beta == 0 ? .nan : 0.5, count: m * ldc)
                a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                    BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 2, a: pa.baseAddress!, lda: lda,
                               b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
                } } }
                var worst = 0.0
                for i in 0..<m { for j in 0..<n {
                    let expected = 2 * product[i * n + j] + (beta == 0 ? 0 : 0.5)
                    worst = max(worst, abs(Double(c[i * ldc + j]) - expected) / (1 + abs(expected)))
                } }
                #expect(worst <= Self.tolerance(k), "transA \(transA) transB \(transB) beta \(beta): error \(worst)")
                // The padding between rows of C is never written.
                for i in 0..<m { for j in n..<ldc { #expect(c[i * ldc + j].isNaN || c[i * ldc + j] == 0.5) } }
            }
        } }
    }

    @Test("batched [B,M,K]×[B,K,N], and a 2-D right side shared across the batch", arguments: Reference.sizes)
    func batched(size: Int) {
        let (batch, m, k, n) = (3, size, 7, size == 130 ? 9 : size + 1)
        let a = Reference.random([batch, m, k], seed: 3)
        let b = Reference.random([batch, k, n], seed: 4)
        let w = Reference.random([k, n], seed: 5)
        let c = Ops.matmul(a, b), shared = Ops.matmul(a, w)
        #expect(c.shape == [batch, m, n] && shared.shape == [batch, m, n])
        var ref: [Double] = [], refShared: [Double] = []
        let da = Reference.doubles(a), db = Reference.doubles(b), dw = Reference.doubles(w)
        for i in 0..<batch {
            let ai = Array(da[(i * m * k)..<((i + 1) * m * k)])
            ref += Reference.matmul(ai, Array(db[(i * k * n)..<((i + 1) * k * n)]), m: m, n: n, k: k, transA: false, transB: false)
            refShared += Reference.matmul(ai, dw, m: m, n: n, k: k, transA: false, transB: false)
        }
        #expect(Reference.maxMixedError(c, ref) <= Self.tolerance(k))
        #expect(Reference.maxMixedError(shared, refShared) <= Self.tolerance(k))
        // Transposed batched left side takes the per-batch path; compare with explicit transposes.
        let at = Ops.transpose(a)
        let viaFlag = Ops.matmul(at, b, transposeA: true)
        #expect(Reference.maxMixedError(viaFlag, ref) <= Self.tolerance(k))
        // A 2-D left side shared by a batched right side.
        let left = Reference.random([m, k], seed: 6)
        let lb = Ops.matmul(left, b)
        for i in 0..<batch {
            let slice = Ops.slice(lb, axis: 0, range: i..<(i + 1)).reshaped([m, n])
            #expect(slice == Ops.matmul(left, Ops.slice(b, axis: 0, range: i..<(i + 1)).reshaped([k, n])))
        }
    }

    @Test("linear is x·Wᵀ + b with W stored [out, in]", arguments: Reference.sizes)
    func linear(size: Int) {
        let (rows, inF, outF) = (size, 33, 7)
        let x = Reference.random([2, rows, inF], seed: 7)
        let w = Reference.random([outF, inF], seed: 8)
        let bias = Reference.random([outF], seed: 9)
        let y = Ops.linear(x, weight: w, bias: bias)
        #expect(y.shape == [2, rows, outF])
        var ref = Reference.matmul(Reference.doubles(x), Reference.doubles(w), m: 2 * rows, n: outF, k: inF,
                                   transA: false, transB: true)
        let db = Reference.doubles(bias)
        for i in ref.indices { ref[i] += db[i % outF] }
        #expect(Reference.maxMixedError(y, ref) <= Self.tolerance(inF))
        let noBias = Ops.linear(x, weight: w, bias: nil)
        #expect(Reference.maxMixedError(noBias, ref.enumerated().map { $0.element - db[$0.offset % outF] }) <= Self.tolerance(inF))
    }

    @Test("gemm accumulates alpha·A·B + beta·C into an existing tensor")
    func gemmAccumulates() {
        let a = Reference.random([7, 33], seed: 10), b = Reference.random([7, 5], seed: 11)
        var c = Reference.random([33, 5], seed: 12)
        let c0 = Reference.doubles(c)
        Ops.gemm(a, b, transposeA: true, alpha: 0.5, beta: 2, into: &c)
        let prod = Reference.matmul(Reference.doubles(a), Reference.doubles(b), m: 33, n: 5, k: 7, transA: true, transB: false)
        let ref = zip(prod, c0).map { 0.5 * $0 + 2 * $1 }
        #expect(Reference.maxMixedError(c, ref) <= Self.tolerance(7))
    }

    @Test("empty inner dimension gives zeros")
    func emptyInner() {
        let c = Ops.matmul(Tensor(zeros: [3, 0]), Tensor(zeros: [0, 4]))
        #expect(c == Tensor(zeros: [3, 4]))
    }

    /// Runs `BLAS.sgemm` on padded matrices (lda, ldb, ldc 3 wider than needed) and returns C with its padding.
    static func paddedProduct(m: Int, n: Int, k: Int, transA: Bool, transB: Bool, beta: Float,
                              a: Tensor, b: Tensor, pad: Int) -> [Float] {
        let lda = (transA ? m : k) + pad, ldb = (transB ? k : n) + pad, ldc = n + pad
        var c = [Float](repeating: beta == 0 ? .nan : 0.5, count: m * ldc)
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 2, a: pa.baseAddress!, lda: lda,
                       b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
        } } }
        return c
    }

    @Test("a large product split into panels over 2 threads (by rows, and by columns when wider): the float64 product, the same bits every run",
          arguments: [(301, 67, 130), (67, 301, 130)])
    func panelsOverThreads(m: Int, n: Int, k: Int) {
        #expect(BLAS.panelCount(m: m, n: n, k: k) <= 1 || Tensor.threads > 1)
        let original = Tensor.threads
        defer { Tensor.threads = original }
        let pad = 3
        for transA in [false, true] { for transB in [false, true] { for beta: Float in [0, 1] {
            let (ra, ca) = transA ? (k, m) : (m, k), (rb, cb) = transB ? (n, k) : (k, n)
            let a = Reference.random([ra * (ca + pad)], seed: 41), b = Reference.random([rb * (cb + pad)], seed: 42)
            Tensor.threads = 2
            #expect(BLAS.panelCount(m: m, n: n, k: k) == 2)
            let split = Self.paddedProduct(m: m, n: n, k: k, transA: transA, transB: transB, beta: beta, a: a, b: b, pad: pad)
            let again = Self.paddedProduct(m: m, n: n, k: k, transA: transA, transB: transB, beta: beta, a: a, b: b, pad: pad)
            // The split is fixed by the shapes and the thread count, never by which thread ran which panel. (It is not
            // bit-equal to the whole product on one thread: OpenBLAS sums a panel's edge tiles in another order.)
            let same = zip(split, again).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
            #expect(same, "transA \(transA) transB \(transB) beta \(beta)")
            Tensor.threads = 1
            #expect(BLAS.panelCount(m: m, n: n, k: k) == 1)
            // Against float64, and the padding between rows of C never written.
            let ldc = n + pad
            let packedA = (0..<ra).flatMap { r in (0..<ca).map { Double(a.scalars[r * (ca + pad) + $0]) } }
            let packedB = (0..<rb).flatMap { r in (0..<cb).map { Double(b.scalars[r * (cb + pad) + $0]) } }
            let product = Reference.matmul(packedA, packedB, m: m, n: n, k: k, transA: transA, transB: transB)
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    let expected = 2 * product[i * n + j] + (beta == 0 ? 0 : 0.5)
                    worst = max(worst, abs(Double(split[i * ldc + j]) - expected) / (1 + abs(expected)))
                }
                for j in n..<ldc { #expect(split[i * ldc + j].isNaN || split[i * ldc + j] == 0.5) }
            }
            #expect(worst <= Self.tolerance(k), "transA \(transA) transB \(transB) beta \(beta): error \(worst)")
        } } }
    }

    @Test("products are split only when large, with more than one thread, and never inside a split loop")
    func panelRule() {
        let original = Tensor.threads
        defer { Tensor.threads = original }
        Tensor.threads = 2
        #expect(BLAS.panelCount(m: 64, n: 64, k: 64) == 1)          // 262,144 multiply-adds: the calling thread
        #expect(BLAS.panelCount(m: 6304, n: 3072, k: 768) == 2)    // the ViT MLP product
        #expect(BLAS.panelCount(m: 40, n: 40, k: 4096) == 1)        // large but too narrow for two panels of 32
        Tensor.threads = 4
        #expect(BLAS.panelCount(m: 100, n: 512, k: 512) == 4)
        // Inside a split loop (an attention head's products), the product stays on its thread.
        var inside = [Int](repeating: -1, count: 4)
        inside.withUnsafeMutableBufferPointer { p in
            let out = UncheckedSendable(p.baseAddress!)
            Parallel.forEachChunk(4, chunks: 4) { chunk, _ in
                out.value[chunk] = BLAS.panelCount(m: 6304, n: 3072, k: 768)
            }
        }
        #expect(inside == [1, 1, 1, 1])
        Tensor.threads = 1
        #expect(BLAS.panelCount(m: 6304, n: 3072, k: 768) == 1)
    }
}
