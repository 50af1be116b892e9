import Testing
@testable import Tensor

/// Gather, concat, slice and transpose move values without arithmetic, so results must be bit-exact.
@Suite("Indexing")
struct IndexingTests {
    @Test("embedding gathers table rows by Int32 or Int ids", arguments: Reference.sizes)
    func embedding(size: Int) {
        let table = Reference.random([size + 3, 7], seed: 1)
        let ids: [Int32] = (0..<6).map { Int32(($0 * 5 + 2) % (size + 3)) }
        let e = Ops.embedding(table, ids: ids, idsShape: [2, 3])
        #expect(e.shape == [2, 3, 7])
        for (n, id) in ids.enumerated() {
            for d in 0..<7 { #expect(e[n / 3, n % 3, d] == table[Int(id), d]) }
        }
        #expect(Ops.embedding(table, ids: ids.map(Int.init)).reshaped([2, 3, 7]) == e)
    }

    @Test("concat and slice along each axis are inverses", arguments: Reference.sizes)
    func concatSlice(size: Int) {
        let shapes = [[2, size, 3], [2, size, 3]]
        for axis in 0..<3 {
            var a = shapes[0], b = shapes[1]
            a[axis] += 1
            let ta = Reference.random(a, seed: 2), tb = Reference.random(b, seed: 3)
            let c = Ops.concat([ta, tb], axis: axis)
            var expectedShape = a
            expectedShape[axis] = a[axis] + b[axis]
            #expect(c.shape == expectedShape)
            #expect(Ops.slice(c, axis: axis, range: 0..<a[axis]) == ta)
            #expect(Ops.slice(c, axis: axis - 3, range: a[axis]..<expectedShape[axis]) == tb)
        }
        // Element-level check of a middle slice.
        let x = Reference.random([3, size, 4], seed: 4)
        let s = Ops.slice(x, axis: 2, range: 1..<3)
        #expect(s.shape == [3, size, 2])
        for i in 0..<3 { for j in 0..<size { for k in 0..<2 { #expect(s[i, j, k] == x[i, j, k + 1]) } } }
    }

    @Test("transpose swaps the last two axes", arguments: Reference.sizes)
    func transpose(size: Int) {
        let x = Reference.random([2, size, 37], seed: 5)
        let t = Ops.transpose(x)
        #expect(t.shape == [2, 37, size])
        for b in 0..<2 { for i in 0..<size { for j in 0..<37 { #expect(t[b, j, i] == x[b, i, j]) } } }
    }
}
