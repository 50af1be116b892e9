import Foundation

/// A tiny seeded random generator (Steele, Lea & Flood's SplitMix64), so that random tensors are identical on every
/// run and every platform.
///
/// `SystemRandomNumberGenerator` cannot be seeded, and reproducible initialisation and shuffling are requirements
/// (same seed, same weights bit for bit), so every random tensor in this project comes from one of these.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Starts the sequence at `seed`; equal seeds give equal sequences.
    public init(seed: UInt64) {
        state = seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform Double in [0, 1) from the top 53 bits; spelled out so results do not depend on the standard
    /// library's choice of algorithm for `Double.random(in:using:)`.
    public mutating func nextUnitDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A standard normal sample by the Box–Muller transform, computed in Double for a clean tail.
    public mutating func nextNormal() -> Double {
        let u1 = 1 - nextUnitDouble()  // (0, 1], so log never sees 0
        let u2 = nextUnitDouble()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

extension Tensor {
    /// Independent normal samples with the given mean and standard deviation, drawn from `generator` in row-major order.
    public static func randomNormal(
        _ shape: [Int], mean: Float = 0, std: Float = 1, using generator: inout SplitMix64
    ) -> Tensor {
        Tensor(unsafeUninitializedShape: shape) { out in
            for i in out.indices {
                out.initializeElement(at: i, to: mean + std * Float(generator.nextNormal()))
            }
        }
    }

    /// Independent uniform samples in [low, high), drawn from `generator` in row-major order.
    public static func randomUniform(
        _ shape: [Int], low: Float = 0, high: Float = 1, using generator: inout SplitMix64
    ) -> Tensor {
        Tensor(unsafeUninitializedShape: shape) { out in
            let width = Double(high) - Double(low)
            for i in out.indices {
                out.initializeElement(at: i, to: Float(Double(low) + width * generator.nextUnitDouble()))
            }
        }
    }

    /// Normal samples from a fresh generator seeded with `seed`.
    public static func randomNormal(_ shape: [Int], mean: Float = 0, std: Float = 1, seed: UInt64) -> Tensor {
        var g = SplitMix64(seed: seed)
        return randomNormal(shape, mean: mean, std: std, using: &g)
    }

    /// Uniform samples from a fresh generator seeded with `seed`.
    public static func randomUniform(_ shape: [Int], low: Float = 0, high: Float = 1, seed: UInt64) -> Tensor {
        var g = SplitMix64(seed: seed)
        return randomUniform(shape, low: low, high: high, using: &g)
    }
}
