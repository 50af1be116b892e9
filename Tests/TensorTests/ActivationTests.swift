import Foundation
import Testing
@testable import Tensor

/// Unary kernels against Double formulas. Tolerance: 2e-6 · (1 + |expected|); libm's float erf/tanh/exp are within
/// a few ulps, so this is tight enough to catch a wrong constant or formula.
@Suite("Activations and scaling")
struct ActivationTests {
    @Test("each activation matches its Double formula", arguments: Reference.sizes)
    func activations(size: Int) {
        let x = Reference.random([size, 33], seed: UInt64(size), std: 3)
        let dx = Reference.doubles(x)
        let checks: [(String, Tensor, (Double) -> Double)] = [
            ("gelu", Ops.gelu(x), Reference.erfGELU),
            ("gelu tanh", Ops.gelu(x, approximation: .tanh), Reference.tanhGELU),
            ("quickGELU", Ops.quickGELU(x), { $0 * Reference.sigmoid(1.702 * $0) }),
            ("sigmoid", Ops.sigmoid(x), Reference.sigmoid),
            ("logSigmoid", Ops.logSigmoid(x), { log(Reference.sigmoid($0)) }),
            ("scale", Ops.scale(x, by: -1.5), { -1.5 * $0 }),
            ("affine", Ops.affine(x, scale: 2, offset: -1), { 2 * $0 - 1 }),
        ]
        for (name, got, f) in checks {
            #expect(got.shape == x.shape)
            #expect(Reference.maxMixedError(got, dx.map(f)) <= 2e-6, "\(name)")
        }
        var y = x
        Ops.geluInPlace(&y)
        #expect(y == Ops.gelu(x))
        y = x
        Ops.geluInPlace(&y, approximation: .tanh)
        #expect(y == Ops.gelu(x, approximation: .tanh))
        y = x
        Ops.quickGELUInPlace(&y)
        #expect(y == Ops.quickGELU(x))
        y = x
        Ops.scaleInPlace(&y, by: 3)
        #expect(y == Ops.scale(x, by: 3))
    }

    @Test("sigmoid and logSigmoid stay finite at the extremes")
    func extremes() {
        let x = Tensor([-200, -90, 0, 90, 200], shape: [5])
        let s = Ops.sigmoid(x).scalars
        #expect(s[0] == 0 && s[1] >= 0 && s[1] < 1e-38 && s[2] == 0.5 && s[3] == 1 && s[4] == 1)
        let ls = Ops.logSigmoid(x).scalars
        #expect(ls.allSatisfy { $0.isFinite })
        #expect(ls[0] == -200 && ls[4] == 0)
    }
}
