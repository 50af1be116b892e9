import Foundation
import Testing
@testable import Tensor

/// Central finite differences for the autodiff tests.
///
/// Scheme: the scalar loss is L = Σ f(inputs) ⊙ R with a fixed random R. The analytic gradient comes from
/// `backward(from: out, seed: R)`. The numeric one perturbs one input element at a time by ±h (h = 1e-2 by default,
/// inputs are O(1)), runs the forward in Float on a fresh tape with every input a constant (so the no-record path is
/// exercised too), and accumulates L in Float64; the divided difference uses the actual Float spacing of the two
/// perturbed values, in Float64.
///
/// Error: for each input, max |analytic − numeric| / (max |numeric| + 1e-3), i.e. relative to the gradient's own
/// scale. Float32 rounding in the forward gives about 1e-4 of noise at h = 1e-2; the O(h²) truncation term is of the
/// same order for these smooth functions (observed worst: 8e-5, in attention); tests state their tolerance (1e-3).
enum GradCheck {
    struct Outcome {
        var errors: [Double]
        var worst: Double { errors.max() ?? 0 }
    }

    static func lossValue(_ out: Tensor, _ r: Tensor) -> Double {
        out.withUnsafeBufferPointer { po in
            r.withUnsafeBufferPointer { pr in
                var s = 0.0
                for i in 0..<po.count { s += Double(po[i]) * Double(pr[i]) }
                return s
            }
        }
    }

    /// Compares analytic and numeric gradients of every input (all inputs require gradients).
    static func run(_ inputs: [Tensor], h: Float = 1e-2, seed: UInt64 = 99,
                    _ f: (Tape, [Variable]) -> Variable) -> Outcome {
        let tape = Tape()
        let vars = inputs.map { tape.variable($0, requiresGrad: true) }
        let out = f(tape, vars)
        let r = Tensor.randomNormal(out.shape, seed: seed)
        tape.backward(from: out, seed: r)
        var errors: [Double] = []
        for (index, input) in inputs.enumerated() {
            let analytic = tape.gradient(of: vars[index]).map(Reference.doubles)
                ?? [Double](repeating: 0, count: input.count)
            var numeric = [Double](repeating: 0, count: input.count)
            for j in 0..<input.count {
                var plus = inputs, minus = inputs
                let x0 = input.scalars[j]
                let xp = x0 + h, xm = x0 - h
                plus[index].withUnsafeMutableBufferPointer { $0[j] = xp }
                minus[index].withUnsafeMutableBufferPointer { $0[j] = xm }
                let lp = evaluate(plus, r, f), lm = evaluate(minus, r, f)
                numeric[j] = (lp - lm) / (Double(xp) - Double(xm))
            }
            let scale = numeric.map(abs).max() ?? 0
            let diff = zip(analytic, numeric).map { abs($0 - $1) }.max() ?? 0
            errors.append(diff / (scale + 1e-3))
        }
        return Outcome(errors: errors)
    }

    static func evaluate(_ inputs: [Tensor], _ r: Tensor, _ f: (Tape, [Variable]) -> Variable) -> Double {
        let tape = Tape()
        let out = f(tape, inputs.map { tape.constant($0) })
        precondition(tape.nodeCount == 0, "constant forward recorded nodes")
        return lossValue(out.value, r)
    }

    static func random(_ shape: [Int], seed: UInt64, std: Float = 1) -> Tensor {
        Tensor.randomNormal(shape, std: std, seed: seed)
    }
}
