import Testing
@testable import Tensor

/// Attention against a naive Double implementation on `[B, T, H·D]` inputs.
/// Tolerance: 2e-5 absolute (outputs are convex combinations of unit-normal values; float32 sgemm + softmax).
@Suite("Scaled dot-product attention")
struct AttentionTests {
    @Test("unmasked and causal attention match the naive reference", arguments: Reference.sizes)
    func matchesReference(length: Int) {
        let (batch, heads, dh) = (2, 3, 5)
        let q = Reference.random([batch, length, heads * dh], seed: 1)
        let k = Reference.random([batch, length, heads * dh], seed: 2)
        let v = Reference.random([batch, length, heads * dh], seed: 3)
        for causal in [false, true] {
            let out = Ops.attention(query: q, key: k, value: v, heads: heads, causal: causal)
            #expect(out.shape == [batch, length, heads * dh])
            let ref = Reference.attention(q: q, k: k, v: v, heads: heads, causal: causal, padding: nil)
            #expect(Reference.maxAbsDiff(out, ref) <= 2e-5, "causal: \(causal)")
        }
    }

    @Test("cross-attention with different query and key lengths and value width")
    func crossAttention() {
        let q = Reference.random([2, 7, 2 * 4], seed: 4)
        let k = Reference.random([2, 33, 2 * 4], seed: 5)
        let v = Reference.random([2, 33, 2 * 3], seed: 6)
        let out = Ops.attention(query: q, key: k, value: v, heads: 2)
        #expect(out.shape == [2, 7, 6])
        #expect(Reference.maxAbsDiff(out, Reference.attention(q: q, k: k, v: v, heads: 2, causal: false, padding: nil)) <= 2e-5)
        // Rank-2 inputs are a batch of one.
        let single = Ops.attention(query: q.reshaped([14, 8]).sliced(0..<7), key: k.reshaped([66, 8]).sliced(0..<33),
                                   value: v.reshaped([66, 6]).sliced(0..<33), heads: 2)
        #expect(single.shape == [7, 6])
        #expect(single == Ops.slice(out, axis: 0, range: 0..<1).reshaped([7, 6]))
    }

    @Test("a causal query offset equals the last rows of full causal attention (a shared prefix)", arguments: [7, 33, 130])
    func queryOffset(length: Int) {
        let (heads, dh) = (2, 4)
        let q = Reference.random([2, length, heads * dh], seed: 13)
        let k = Reference.random([2, length, heads * dh], seed: 14)
        let v = Reference.random([2, length, heads * dh], seed: 15)
        let full = Ops.attention(query: q, key: k, value: v, heads: heads, causal: true)
        for prefix in [1, length / 2, length - 1] {
            let tail = Ops.attention(query: Ops.slice(q, axis: 1, range: prefix..<length), key: k, value: v,
                                     heads: heads, causal: true, queryOffset: prefix)
            #expect(Reference.maxAbsDiff(tail, Reference.doubles(Ops.slice(full, axis: 1, range: prefix..<length))) <= 1e-6,
                    "prefix \(prefix)")
        }
    }

    @Test("padded keys are ignored: same output as attention over the unpadded keys", arguments: [7, 33, 130])
    func paddingMask(length: Int) {
        let (heads, dh) = (2, 4)
        let q = Reference.random([2, length, heads * dh], seed: 7)
        let k = Reference.random([2, length, heads * dh], seed: 8)
        let v = Reference.random([2, length, heads * dh], seed: 9)
        let valid = [length, length / 2 + 1]
        let mask = (0..<2).flatMap { b in (0..<length).map { $0 >= valid[b] } }
        let out = Ops.attention(query: q, key: k, value: v, heads: heads, keyPaddingMask: mask)
        #expect(Reference.maxAbsDiff(out, Reference.attention(q: q, k: k, v: v, heads: heads, causal: false, padding: mask)) <= 2e-5)
        // Changing what sits in the padded positions changes nothing.
        var k2 = k, v2 = v
        for t in valid[1]..<length { for d in 0..<(heads * dh) { k2[1, t, d] = 1000; v2[1, t, d] = -1000 } }
        #expect(Ops.attention(query: q, key: k2, value: v2, heads: heads, keyPaddingMask: mask) == out)
        // Batch 1 equals running it alone on the truncated keys.
        let alone = Ops.attention(query: Ops.slice(q, axis: 0, range: 1..<2),
                                  key: Ops.slice(Ops.slice(k, axis: 0, range: 1..<2), axis: 1, range: 0..<valid[1]),
                                  value: Ops.slice(Ops.slice(v, axis: 0, range: 1..<2), axis: 1, range: 0..<valid[1]),
                                  heads: heads)
        #expect(Reference.maxAbsDiff(Ops.slice(out, axis: 0, range: 1..<2), Reference.doubles(alone)) <= 1e-6)
        // Causal plus padding together.
        let both = Ops.attention(query: q, key: k, value: v, heads: heads, causal: true, keyPaddingMask: mask)
        #expect(Reference.maxAbsDiff(both, Reference.attention(q: q, k: k, v: v, heads: heads, causal: true, padding: mask)) <= 2e-5)
    }

    @Test("probabilities are returned, rows sum to 1, masked entries are exactly 0")
    func probabilities() {
        let q = Reference.random([2, 7, 6], seed: 10), k = Reference.random([2, 7, 6], seed: 11)
        let v = Reference.random([2, 7, 6], seed: 12)
        let mask = (0..<14).map { $0 == 5 }
        let (out, p) = Ops.attentionWithProbabilities(query: q, key: k, value: v, heads: 3, causal: true, keyPaddingMask: mask)
        #expect(p.shape == [2, 3, 7, 7])
        #expect(out == Ops.attention(query: q, key: k, value: v, heads: 3, causal: true, keyPaddingMask: mask))
        for b in 0..<2 { for h in 0..<3 { for i in 0..<7 {
            let row = (0..<7).map { p[b, h, i, $0] }
            #expect(abs(row.reduce(0, +) - 1) <= 1e-5)
            #expect(row[(i + 1)...].allSatisfy { $0 == 0 })
        } } }
        #expect((0..<3).allSatisfy { h in (0..<7).allSatisfy { p[0, h, $0, 5] == 0 } })
        // A query that sees only masked keys yields zeros, not NaN.
        let allMasked = Ops.attention(query: q, key: k, value: v, heads: 3, keyPaddingMask: [Bool](repeating: true, count: 14))
        #expect(allMasked == Tensor(zeros: [2, 7, 6]))
    }

    @Test("long sequences split into row blocks (for single-threaded BLAS) give the same result")
    func rowBlocks() {
        // 130 keys × 40 dims makes blocks of ~50 query rows, so both masks cross block boundaries.
        let (heads, dh, length) = (2, 40, 130)
        #expect(Ops.blasSingleThreadWork / (length * dh) < length)
        let q = Reference.random([1, length, heads * dh], seed: 16), k = Reference.random([1, length, heads * dh], seed: 17)
        let v = Reference.random([1, length, heads * dh], seed: 18)
        let mask = (0..<length).map { $0 % 9 == 4 }
        for causal in [false, true] {
            let out = Ops.attention(query: q, key: k, value: v, heads: heads, causal: causal, keyPaddingMask: mask)
            let ref = Reference.attention(q: q, k: k, v: v, heads: heads, causal: causal, padding: mask)
            #expect(Reference.maxAbsDiff(out, ref) <= 2e-5, "causal: \(causal)")
        }
    }

    @Test("many heads in parallel equal the serial result")
    func parallelHeads() {
        let q = Reference.random([4, 77, 8 * 16], seed: 13), k = Reference.random([4, 77, 8 * 16], seed: 14)
        let v = Reference.random([4, 77, 8 * 16], seed: 15)
        let original = Tensor.threads
        defer { Tensor.threads = original }
        Tensor.threads = 1
        let serial = Ops.attention(query: q, key: k, value: v, heads: 8, causal: true)
        Tensor.threads = 2
        let parallel = Ops.attention(query: q, key: k, value: v, heads: 8, causal: true)
        #expect(Reference.maxAbsDiff(parallel, Reference.doubles(serial)) <= 1e-6)
    }
}

extension Tensor {
    /// Rows `range` of a rank-2 tensor (test shorthand).
    func sliced(_ range: Range<Int>) -> Tensor { Ops.slice(self, axis: 0, range: range) }
}
