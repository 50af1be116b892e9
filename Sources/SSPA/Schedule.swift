import Foundation

extension SSPA {
    /// The learning rate per step: linear warm-up from `peak / warmupSteps` to `peak` over `warmupSteps`, then cosine
    /// decay to `minimum` at `totalSteps` (SSPA-SPEC.md, training defaults: warm-up for 1 epoch).
    public struct LearningRateSchedule: Sendable, Codable, Hashable {
        public var peak: Float
        public var warmupSteps: Int
        public var totalSteps: Int
        public var minimum: Float

        public init(peak: Float, warmupSteps: Int, totalSteps: Int, minimum: Float = 0) {
            self.peak = peak
            self.warmupSteps = max(0, warmupSteps)
            self.totalSteps = max(1, totalSteps)
            self.minimum = minimum
        }

        /// The rate of update number `step` (0-based).
        public func rate(at step: Int) -> Float {
            if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
            let span = max(totalSteps - warmupSteps, 1)
            let progress = min(max(Double(step - warmupSteps) / Double(span), 0), 1)
            return minimum + (peak - minimum) * Float(0.5 * (1 + cos(Double.pi * progress)))
        }
    }
}
