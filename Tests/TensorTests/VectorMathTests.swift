import Foundation
import Testing
@testable import Tensor

/// The SIMD exp/erf/tanh/sigmoid behind activations and softmax, against libm in Double, over their whole range.
@Suite("Vectorised math")
struct VectorMathTests {
    /// Evaluates a lane-wise function on a long list of inputs, eight at a time.
    static func evaluate(_ xs: [Float], _ f: (SIMD8<Float>) -> SIMD8<Float>) -> [Float] {
        var out: [Float] = []
        for start in stride(from: 0, to: xs.count, by: 8) {
            var v = SIMD8<Float>()
            for j in 0..<min(8, xs.count - start) { v[j] = xs[start + j] }
            let y = f(v)
            for j in 0..<min(8, xs.count - start) { out.append(y[j]) }
        }
        return out
    }

    static let grid: [Float] = stride(from: -90.0, through: 90.0, by: 0.0137).map { Float($0) }

    @Test("exp: within 3e-7 relative of libm where the result is a normal float; exact limits")
    func exp() {
        let xs = Self.grid.filter { $0 > -87.3 && $0 < 88.3 }
        let ys = Self.evaluate(xs, VectorMath.exp)
        let worst = zip(xs, ys).map { abs(Double($1) - Foundation.exp(Double($0))) / Foundation.exp(Double($0)) }.max()!
        #expect(worst <= 3e-7)
        let special = Self.evaluate([-.infinity, -1000, -87.4, 0, .infinity, 1000, .nan, 89], VectorMath.exp)
        #expect(special[0] == 0 && special[1] == 0 && special[2] == 0 && special[3] == 1)
        #expect(special[4] == .infinity && special[5] == .infinity && special[6].isNaN && special[7] == .infinity)
    }

    @Test("erf, tanh and sigmoid: within 4e-7 absolute of libm")
    func erfTanhSigmoid() {
        let xs = Self.grid.filter { abs($0) < 12 }
        let checks: [(String, (SIMD8<Float>) -> SIMD8<Float>, (Double) -> Double)] = [
            ("erf", VectorMath.erf, Foundation.erf),
            ("tanh", VectorMath.tanh, Foundation.tanh),
            ("sigmoid", VectorMath.sigmoid, Reference.sigmoid),
        ]
        for (name, f, reference) in checks {
            let ys = Self.evaluate(xs, f)
            let worst = zip(xs, ys).map { abs(Double($1) - reference(Double($0))) }.max()!
            print("VectorMath \(name): max abs error \(worst)")
            #expect(worst <= 4e-7, "\(name): \(worst)")  // A&S 7.1.26 is 1.5e-7, plus float rounding
        }
        let far = Self.evaluate([-200, 200, -.infinity, .infinity], VectorMath.sigmoid)
        #expect(far == [0, 1, 0, 1])
        #expect(Self.evaluate([-.infinity, .infinity, -20, 20], VectorMath.tanh) == [-1, 1, -1, 1])
    }
}
