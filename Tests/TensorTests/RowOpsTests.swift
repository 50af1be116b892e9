import Foundation
import Testing
@testable import Tensor

/// Row-wise kernels and reductions against Double references, plus the properties that define them.
@Suite("Softmax, normalisation, reductions")
struct RowOpsTests {
    @Test("softmax matches the reference and every row sums to 1", arguments: Reference.sizes)
    func softmax(size: Int) {
        let x = Reference.random([33, size], seed: 1, std: 4)
        let y = Ops.softmax(x)
        var expected: [Double] = []
        let dx = Reference.doubles(x)
        for r in 0..<33 { expected += Reference.softmax(Array(dx[(r * size)..<((r + 1) * size)])) }
        #expect(Reference.maxAbsDiff(y, expected) <= 1e-6)  // probabilities: absolute 1e-6
        for r in 0..<33 {
            let sum = (0..<size).reduce(0.0) { $0 + Double(y[r, $1]) }
            #expect(abs(sum - 1) <= 1e-5)
        }
    }

    @Test("softmax is stable for huge logits and zeroes a fully masked row")
    func softmaxStability() {
        let x = Tensor([1000, 1001, 999, -.infinity, -.infinity, -.infinity], shape: [2, 3])
        let y = Ops.softmax(x).scalars
        #expect(y.allSatisfy { $0.isFinite })
        #expect(abs(y[1] - Float(Reference.softmax([1000, 1001, 999])[1])) < 1e-6)
        #expect(Array(y[3...]) == [0, 0, 0])
    }

    @Test("layerNorm matches the reference; without affine, rows have mean 0 and variance 1", arguments: Reference.sizes)
    func layerNorm(size: Int) {
        let x = Reference.affineRandom([7, size], seed: 2)
        let w = Reference.random([size], seed: 3), b = Reference.random([size], seed: 4)
        let eps: Float = 1e-5
        let y = Ops.layerNorm(x, weight: w, bias: b, eps: eps)
        let dx = Reference.doubles(x), dw = Reference.doubles(w), db = Reference.doubles(b)
        var expected: [Double] = []
        for r in 0..<7 {
            let row = Array(dx[(r * size)..<((r + 1) * size)])
            let mean = row.reduce(0, +) / Double(size)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(size)
            expected += row.enumerated().map { ($0.element - mean) / (variance + Double(eps)).squareRoot() * dw[$0.offset] + db[$0.offset] }
        }
        #expect(Reference.maxMixedError(y, expected) <= 1e-5)  // inputs offset by 10: cancellation costs a few ulps

        let stats = Ops.layerNormWithStatistics(x, weight: nil, bias: nil, eps: 0)
        #expect(stats.mean.shape == [7] && stats.inverseStd.shape == [7])
        guard size > 1 else { return }  // a single element has no variance to normalise
        for r in 0..<7 {
            let row = (0..<size).map { Double(stats.output[r, $0]) }
            let mean = row.reduce(0, +) / Double(size)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(size)
            #expect(abs(mean) <= 1e-5)
            #expect(abs(variance - 1) <= 1e-4)
        }
    }

    @Test("l2Normalize gives unit rows and leaves a zero row at zero", arguments: Reference.sizes)
    func l2Normalize(size: Int) {
        var x = Reference.random([7, size], seed: 5)
        for j in 0..<size { x[3, j] = 0 }
        let y = Ops.l2Normalize(x)
        let dx = Reference.doubles(x)
        var expected: [Double] = []
        for r in 0..<7 {
            let row = Array(dx[(r * size)..<((r + 1) * size)])
            let norm = max(row.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-6)
            expected += row.map { $0 / norm }
        }
        #expect(Reference.maxAbsDiff(y, expected) <= 1e-6)
        #expect((0..<size).allSatisfy { y[3, $0] == 0 })
    }

    @Test("sum and mean over each axis, with and without keepDims", arguments: Reference.sizes)
    func reductions(size: Int) {
        let shape = [3, size, 5]
        let x = Reference.random(shape, seed: 6)
        let dx = Reference.doubles(x)
        for axis in 0..<3 {
            var outShape = shape
            outShape[axis] = 1
            var expected = [Double](repeating: 0, count: outShape.reduce(1, *))
            for i in 0..<3 { for j in 0..<size { for k in 0..<5 {
                var idx = [i, j, k]
                idx[axis] = 0
                expected[(idx[0] * outShape[1] + idx[1]) * outShape[2] + idx[2]] += dx[(i * size + j) * 5 + k]
            } } }
            let s = Ops.sum(x, axis: axis, keepDims: true)
            #expect(s.shape == outShape)
            #expect(Reference.maxMixedError(s, expected) <= 1e-5)
            let m = Ops.mean(x, axis: axis - 3)
            #expect(m.shape == shape.enumerated().filter { $0.offset != axis }.map(\.element))
            #expect(Reference.maxMixedError(m, expected.map { $0 / Double(shape[axis]) }) <= 1e-5)
        }
        #expect(abs(Double(Ops.sum(x).scalar) - dx.reduce(0, +)) <= 1e-4)
        #expect(abs(Double(Ops.mean(x).scalar) - dx.reduce(0, +) / Double(dx.count)) <= 1e-6)
    }

    @Test("argmax picks the first maximum of each row", arguments: Reference.sizes)
    func argmax(size: Int) {
        let x = Reference.random([7, size], seed: 7)
        let expected = (0..<7).map { r in (0..<size).max { x[r, $0] < x[r, $1] || (x[r, $0] == x[r, $1] && $0 > $1) }! }
        #expect(Ops.argmax(x) == expected)
        #expect(Ops.argmax(Tensor([1, 3, 3, 2], shape: [4])) == [1])
    }
}

extension Reference {
    /// Normal samples offset by 10, so that a one-pass variance formula would visibly lose precision.
    static func affineRandom(_ shape: [Int], seed: UInt64) -> Tensor {
        Ops.affine(random(shape, seed: seed), scale: 2, offset: 10)
    }
}
