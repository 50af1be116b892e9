import Foundation
import Testing
@testable import Tensor

/// The extra ops (div, affine, exp, log, transpose) and the `Variable` operators, by finite differences.
/// Tolerance: relative error below 1e-3 with h = 1e-2 (scheme in `GradCheck`).
@Suite("Autodiff extra ops")
struct AutodiffExtrasTests {
    @Test("div with broadcasting (denominators kept away from 0)", arguments: [[[3, 7], [3, 7]], [[3, 7], []], [[3, 1, 7], [5, 1]]])
    func div(shapes: [[Int]]) {
        let a = GradCheck.random(shapes[0], seed: 41)
        let b = Ops.affine(Ops.sigmoid(GradCheck.random(shapes[1], seed: 42)), scale: 1, offset: 1)  // in (1, 2)
        let outcome = GradCheck.run([a, b]) { t, v in t.div(v[0], v[1]) }
        #expect(outcome.worst < 1e-3, "errors \(outcome.errors)")
    }

    @Test("affine, exp, log, transpose")
    func unaryExtras() {
        let x = GradCheck.random([3, 5, 7], seed: 43)
        let positive = Ops.affine(Ops.sigmoid(x), scale: 2, offset: 0.5)  // in (0.5, 2.5)
        for (name, input, f) in [
            ("affine", x, { (t: Tape, v: [Variable]) in t.affine(v[0], scale: -0.7, offset: 2) }),
            ("exp", x, { (t: Tape, v: [Variable]) in t.exp(v[0]) }),
            ("log", positive, { (t: Tape, v: [Variable]) in t.log(v[0]) }),
            ("transpose", x, { (t: Tape, v: [Variable]) in t.transpose(v[0]) }),
        ] as [(String, Tensor, (Tape, [Variable]) -> Variable)] {
            let outcome = GradCheck.run([input], f)
            #expect(outcome.worst < 1e-3, "\(name): errors \(outcome.errors)")
        }
    }

    @Test("operators compose: (a·b − a)/b + 2a, with a used three times")
    func operators() {
        let a = GradCheck.random([3, 7], seed: 44)
        let b = Ops.affine(Ops.sigmoid(GradCheck.random([7], seed: 45)), scale: 1, offset: 1)
        let outcome = GradCheck.run([a, b]) { _, v in (v[0] * v[1] - v[0]) / v[1] + 2 * v[0] + -v[1] }
        #expect(outcome.worst < 1e-3, "errors \(outcome.errors)")
    }
}
