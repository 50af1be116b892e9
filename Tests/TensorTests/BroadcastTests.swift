import Testing
@testable import Tensor

/// Element-wise binary kernels against a Double reference with explicit index arithmetic.
/// Tolerance: 1e-6 · (1 + |expected|), one float32 rounding (division: 2e-6, two roundings of the inputs' ratio).
@Suite("Broadcasting arithmetic")
struct BroadcastTests {
    static let cases: [([Int], [Int])] = [
        ([7, 33], [7, 33]),        // equal shapes
        ([130, 7], [7]),           // row vector over the last axis
        ([33, 7], []),             // scalar
        ([1], [7, 1]),             // both sides grow
        ([7, 1, 33], [1, 5, 1]),   // general, interleaved
        ([2, 7, 33], [7, 33]),     // a [T, D] table over [B, T, D]
        ([7, 1], [1, 130]),        // outer product shape
        ([3, 1, 1], [1, 4, 5]),
        ([130, 1], [130, 33]),     // column vector
    ]

    @Test("add, sub, mul, div broadcast like NumPy", arguments: cases)
    func binary(lhs: [Int], rhs: [Int]) {
        let a = Reference.random(lhs, seed: 1), b = Reference.random(rhs, seed: 2)
        let ops: [(String, (Tensor, Tensor) -> Tensor, (Double, Double) -> Double)] = [
            ("add", Ops.add, +), ("sub", Ops.sub, -), ("mul", Ops.mul, *),
        ]
        for (name, kernel, reference) in ops {
            let ref = Reference.broadcast(a, b, reference)
            let got = kernel(a, b)
            #expect(got.shape == ref.shape, "\(name) shape")
            #expect(Reference.maxMixedError(got, ref.values) <= 1e-6, "\(name) \(lhs) \(rhs)")
        }
        let positive = Ops.affine(Ops.sigmoid(b), scale: 1, offset: 0.5)
        let ref = Reference.broadcast(a, positive, /)
        #expect(Reference.maxMixedError(Ops.div(a, positive), ref.values) <= 2e-6)
        #expect(Ops.broadcastShape(lhs, rhs) == ref.shape)
    }

    @Test("large tensors take the parallel path and agree with the serial one")
    func parallelMatchesSerial() {
        let a = Reference.random([257, 257], seed: 3), row = Reference.random([257], seed: 4)
        let full = Reference.random([257, 257], seed: 5)
        let original = Tensor.threads
        defer { Tensor.threads = original }
        Tensor.threads = 1
        let serial = [Ops.add(a, row), Ops.mul(a, full), Ops.gelu(a), Ops.softmax(a), Ops.layerNorm(a, weight: row, bias: row)]
        Tensor.threads = 2
        let parallel = [Ops.add(a, row), Ops.mul(a, full), Ops.gelu(a), Ops.softmax(a), Ops.layerNorm(a, weight: row, bias: row)]
        #expect(serial == parallel)
        #expect(Reference.maxMixedError(serial[0], Reference.broadcast(a, row, +).values) <= 1e-6)
    }

    @Test("in-place forms match the out-of-place ones and leave shared copies alone", arguments: Reference.sizes)
    func inPlace(size: Int) {
        let a = Reference.random([size, 33], seed: 6), b = Reference.random([33], seed: 7)
        var x = a
        Ops.addInPlace(&x, b)
        #expect(x == Ops.add(a, b))
        x = a
        Ops.addInPlace(&x, b, scaledBy: -0.25)
        #expect(Reference.maxMixedError(x, Reference.broadcast(a, b) { $0 - 0.25 * $1 }.values) <= 1e-6)
        x = a
        Ops.subInPlace(&x, b)
        #expect(x == Ops.sub(a, b))
        x = a
        Ops.mulInPlace(&x, b)
        #expect(x == Ops.mul(a, b))
        #expect(a == Reference.random([size, 33], seed: 6), "the shared original must not change")
        x = a
        Ops.addInPlace(&x, x)  // aliasing: both operands are the same tensor
        #expect(x == Ops.scale(a, by: 2))
    }

    @Test("sum(toShape:) reverses broadcasting", arguments: cases)
    func sumToShape(lhs: [Int], rhs: [Int]) {
        let outShape = Ops.broadcastShape(lhs, rhs)!
        let g = Reference.random(outShape, seed: 8)
        for target in [lhs, rhs] {
            let got = Ops.sum(g, toShape: target)
            #expect(got.shape == target)
            // Reference: add each output element into the target cell it broadcast from.
            let ones = Tensor(repeating: 1, shape: target)
            var expected = [Double](repeating: 0, count: ones.count)
            let indexTensor = Tensor((0..<ones.count).map(Float.init), shape: target)
            let map = Reference.broadcast(g, indexTensor) { _, i in i }.values
            for (v, i) in zip(Reference.doubles(g), map) { expected[Int(i)] += v }
            #expect(Reference.maxAbsDiff(got, expected) <= 1e-4)
        }
    }
}
