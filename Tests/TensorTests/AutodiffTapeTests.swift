import Foundation
import Testing
@testable import Tensor

/// The tape's bookkeeping: frozen weights, accumulation, composites. Finite-difference tolerance as in
/// `AutodiffGradientTests`: relative error below 1e-3 with h = 1e-2 (scheme in `GradCheck`).
@Suite("Autodiff tape")
struct AutodiffTapeTests {
    /// Weights of a pre-LN transformer block (CLIP text layer shape: causal attention, quickGELU MLP).
    struct Block {
        let ln1w: Tensor, ln1b: Tensor, ln2w: Tensor, ln2b: Tensor
        let wq: Tensor, bq: Tensor, wk: Tensor, bk: Tensor, wv: Tensor, bv: Tensor, wo: Tensor, bo: Tensor
        let fc1: Tensor, b1: Tensor, fc2: Tensor, b2: Tensor

        init(width d: Int, hidden: Int, seed: UInt64) {
            func r(_ s: [Int], _ k: UInt64, _ std: Float = 0.3) -> Tensor { Tensor.randomNormal(s, std: std, seed: seed &* 100 &+ k) }
            ln1w = Ops.affine(r([d], 1, 0.1), scale: 1, offset: 1); ln1b = r([d], 2, 0.1)
            ln2w = Ops.affine(r([d], 3, 0.1), scale: 1, offset: 1); ln2b = r([d], 4, 0.1)
            wq = r([d, d], 5); bq = r([d], 6, 0.1); wk = r([d, d], 7); bk = r([d], 8, 0.1)
            wv = r([d, d], 9); bv = r([d], 10, 0.1); wo = r([d, d], 11); bo = r([d], 12, 0.1)
            fc1 = r([hidden, d], 13); b1 = r([hidden], 14, 0.1); fc2 = r([d, hidden], 15); b2 = r([d], 16, 0.1)
        }

        /// The block on the tape, every weight a constant (frozen).
        func callAsFunction(_ t: Tape, _ x: Variable, heads: Int, frozen: Bool = true) -> Variable {
            func c(_ w: Tensor) -> Variable { frozen ? t.constant(w) : t.variable(w, requiresGrad: false) }
            let h = t.layerNorm(x, weight: c(ln1w), bias: c(ln1b))
            let q = t.linear(h, weight: c(wq), bias: c(bq))
            let k = t.linear(h, weight: c(wk), bias: c(bk))
            let v = t.linear(h, weight: c(wv), bias: c(bv))
            let a = t.attention(query: q, key: k, value: v, heads: heads, causal: true)
            let x1 = t.add(x, t.linear(a, weight: c(wo), bias: c(bo)))
            let m = t.quickGELU(t.linear(t.layerNorm(x1, weight: c(ln2w), bias: c(ln2b)), weight: c(fc1), bias: c(b1)))
            return t.add(x1, t.linear(m, weight: c(fc2), bias: c(b2)))
        }
    }

    static let blocks = [Block(width: 12, hidden: 24, seed: 1), Block(width: 12, hidden: 24, seed: 2)]

    @Test("2-layer pre-LN causal transformer on [2, 5, 12]: input gradient matches finite differences")
    func transformerInputGradient() {
        let x = Tensor.randomNormal([2, 5, 12], seed: 31)
        let outcome = GradCheck.run([x]) { t, v in
            Self.blocks[1](t, Self.blocks[0](t, v[0], heads: 3), heads: 3)
        }
        #expect(outcome.worst < 1e-3, "errors \(outcome.errors)")
    }

    @Test("frozen weights get no gradient buffer and no tape node")
    func frozenWeights() {
        let tape = Tape()
        let x = tape.variable(Tensor.randomNormal([2, 5, 12], seed: 32), requiresGrad: true)
        let block = Self.blocks[0]
        let w = tape.variable(block.fc1, requiresGrad: false)
        let y = Self.blocks[1](tape, block(tape, x, heads: 3, frozen: false), heads: 3)
        let loss = tape.mean(tape.linear(y, weight: w))
        // x is the only leaf; every recorded node is an op downstream of it.
        #expect(tape.nodeCount == 1 + 2 * 12 + 2)
        tape.backward(from: loss)
        #expect(tape.gradient(of: w) == nil)
        #expect(tape.gradient(of: tape.constant(block.wq)) == nil)
        let g = tape.gradient(of: x)
        #expect(g?.shape == [2, 5, 12])
        #expect(g.map { $0.scalars.contains { $0 != 0 } } == true)
    }

    @Test("ops on constants only record nothing")
    func constantsRecordNothing() {
        let tape = Tape()
        let a = tape.constant(Tensor.randomNormal([3, 7], seed: 33))
        let b = tape.variable(Tensor.randomNormal([7, 5], seed: 34), requiresGrad: false)
        let y = tape.softmax(tape.gelu(tape.matmul(a, b)))
        let z = tape.attention(query: y, key: y, value: y, heads: 1, causal: true)
        let s = tape.sum(tape.layerNorm(z, weight: nil, bias: nil))
        #expect(tape.nodeCount == 0 && !s.requiresGrad)
        tape.backward(from: s)  // a no-op
        #expect(tape.gradient(of: a) == nil)
    }

    @Test("CoOp-style: learnable context vectors concatenated with frozen tokens, through a frozen block")
    func contextVectors() {
        let ctx = Tensor.randomNormal([1, 2, 12], seed: 35)
        let tokens = Tensor.randomNormal([1, 3, 12], seed: 36)
        let outcome = GradCheck.run([ctx]) { t, v in
            let x = t.concat([v[0], t.constant(tokens)], axis: 1)
            let y = Self.blocks[0](t, x, heads: 3)
            return t.slice(y, axis: 1, range: 4..<5)  // the last token, as CLIP's EOT pooling
        }
        #expect(outcome.worst < 1e-3, "errors \(outcome.errors)")
    }

    @Test("a variable used twice accumulates both gradients")
    func accumulation() {
        let tape = Tape()
        let values = Tensor.randomNormal([3, 7], seed: 37)
        let x = tape.variable(values, requiresGrad: true)
        // L = Σ (x ⊙ x + 3x): dL/dx = 2x + 3 exactly.
        let loss = tape.sum(tape.add(tape.mul(x, x), tape.scale(x, by: 3)))
        tape.backward(from: loss)
        let g = tape.gradient(of: x)!
        let expected = values.scalars.map { 2 * $0 + 3 }
        #expect(zip(g.scalars, expected).allSatisfy { abs($0 - $1) <= 1e-5 * (1 + abs($1)) })

        // The same through products: x · xᵀ and x used as both sides, checked by finite differences.
        let outcome = GradCheck.run([values]) { t, v in
            t.add(t.matmul(v[0], v[0], transposeB: true), t.matmul(v[0], v[0], transposeB: true))
        }
        #expect(outcome.worst < 1e-3, "errors \(outcome.errors)")

        // One variable as query, key and value of attention, with a prior gradient already in its buffer.
        let xs = Tensor.randomNormal([2, 5, 6], seed: 56)
        let selfAttention = GradCheck.run([xs]) { t, v in
            t.add(t.attention(query: v[0], key: v[0], value: v[0], heads: 2, causal: true), t.scale(v[0], by: 0.5))
        }
        #expect(selfAttention.worst < 1e-3, "errors \(selfAttention.errors)")
        let kv = GradCheck.run([xs, Tensor.randomNormal([2, 3, 6], seed: 57)]) { t, v in
            t.attention(query: v[1], key: v[0], value: v[0], heads: 3)
        }
        #expect(kv.worst < 1e-3, "errors \(kv.errors)")
    }

    @Test("gradients of intermediates are released; leaves keep theirs")
    func intermediatesReleased() {
        let tape = Tape()
        let x = tape.variable(Tensor.randomNormal([3, 7], seed: 38), requiresGrad: true)
        let h = tape.gelu(x)
        let loss = tape.sum(h)
        tape.backward(from: loss)
        #expect(tape.gradient(of: h) == nil)
        #expect(tape.gradient(of: x) != nil)
    }

    @Test("attention and matmul with only some inputs requiring gradients give the same gradients as with all")
    func partialRequirements() {
        let q = Tensor.randomNormal([2, 5, 6], seed: 50), k = Tensor.randomNormal([2, 5, 6], seed: 51)
        let v = Tensor.randomNormal([2, 5, 9], seed: 52), seed = Tensor.randomNormal([2, 5, 9], seed: 53)
        func grads(_ needs: [Bool]) -> [Tensor?] {
            let tape = Tape()
            let vars = zip([q, k, v], needs).map { tape.variable($0, requiresGrad: $1) }
            let out = tape.attention(query: vars[0], key: vars[1], value: vars[2], heads: 3, causal: true)
            tape.backward(from: out, seed: seed)
            return vars.map { tape.gradient(of: $0) }
        }
        let all = grads([true, true, true])
        for i in 0..<3 {
            var needs = [false, false, false]
            needs[i] = true
            let one = grads(needs)
            #expect(one[i] == all[i])
            #expect(one.enumerated().allSatisfy { $0.offset == i || $0.element == nil })
        }
        let a = Tensor.randomNormal([3, 5, 7], seed: 54), w = Tensor.randomNormal([7, 4], seed: 55)
        let tape = Tape()
        let av = tape.variable(a, requiresGrad: false), wv = tape.variable(w, requiresGrad: true)
        tape.backward(from: tape.sum(tape.matmul(av, wv)))
        let tape2 = Tape()
        let av2 = tape2.variable(a, requiresGrad: true), wv2 = tape2.variable(w, requiresGrad: true)
        tape2.backward(from: tape2.sum(tape2.matmul(av2, wv2)))
        #expect(tape.gradient(of: wv) == tape2.gradient(of: wv2) && tape.gradient(of: av) == nil)
    }

    @Test("the gradient check catches a wrong backward rule")
    func checkerIsNotVacuous() {
        let x = Tensor.randomNormal([3, 7], seed: 39)
        // σ with a deliberately wrong derivative σ instead of σ(1 − σ).
        let outcome = GradCheck.run([x]) { t, v in
            let y = Ops.sigmoid(v[0].value)
            return t.unary(v[0], y, keep: y) { s in s }
        }
        #expect(outcome.worst > 0.1)
    }
}
