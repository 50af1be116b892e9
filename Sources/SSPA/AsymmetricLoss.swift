import Foundation
import Tensor

extension SSPA {
    /// The asymmetric loss (Ridnik et al. 2021) with partial labels, and its gradient, in float64.
    ///
    /// With `p = σ(s)`, `p_m = max(p − m, 0)`, per image `b`:
    /// `ℓ_b = −Σ_{c known} [ y·w⁺ · log clamp(p) + (1−y)·w⁻ · log clamp(1 − p_m) ]`, `w⁺ = (1−p)^γ+`, `w⁻ = p_m^γ−`,
    /// and the batch loss is the mean of `ℓ_b` over the images with at least one known label (`y = −1` is unknown and
    /// contributes nothing). The focusing weights are constants of the backward pass, as in the ASL authors' code;
    /// a weight whose base is 0 is 0 (so no `0^(γ−1)·0 = NaN`). Where a clamp is active (or `p < m`) the clamped
    /// quantity passes no gradient, as in torch.
    public enum AsymmetricLoss {
        /// The focusing weights of every entry of `logits` `[…, C]`: `(1−p)^γ+` for positives, `p_m^γ−` for
        /// negatives, 0 for unknown entries; 1 when the exponent is 0, and 0 when the base is 0.
        public static func focusingWeights(logits: Tensor, labels: Tensor, config: Config) -> [Double] {
            precondition(logits.shape == labels.shape, "ASL: logits \(logits.shape) and labels \(labels.shape) differ")
            let s = logits.scalars, y = labels.scalars
            return s.indices.map { idx in
                let p = 1 / (1 + Foundation.exp(-Double(s[idx])))
                switch y[idx] {
                case 1: return weight(1 - p, config.gammaPos)
                case 0: return weight(max(p - config.margin, 0), config.gammaNeg)
                default: return 0
                }
            }
        }

        /// `base^γ` as a constant: 1 for `γ = 0`, 0 for a base of 0.
        static func weight(_ base: Double, _ gamma: Double) -> Double {
            if gamma == 0 { return 1 }
            return base > 0 ? Foundation.pow(base, gamma) : 0
        }

        /// The loss value and `d loss / d s` (shape of `logits`, `[…, C]`) for labels in {1, 0, −1}, with the focusing
        /// weights held constant. `weights` replaces them (the finite-difference test freezes them at a point).
        // SSPA-SPEC.md, ASL; scripts/sspa_reference.py, asl
        public static func evaluate(logits: Tensor, labels: Tensor, config: Config, weights: [Double]? = nil)
            -> (loss: Double, gradient: Tensor) {
            precondition(logits.shape == labels.shape, "ASL: logits \(logits.shape) and labels \(labels.shape) differ")
            let w = weights ?? focusingWeights(logits: logits, labels: labels, config: config)
            precondition(w.count == logits.count, "ASL: \(w.count) weights for \(logits.count) logits")
            let s = logits.scalars, y = labels.scalars
            let c = max(logits.shape.last ?? 1, 1), rows = s.count / c
            var images = 0
            for b in 0..<rows where (0..<c).contains(where: { y[b * c + $0] >= 0 }) { images += 1 }
            let scale = 1 / Double(max(images, 1))
            let m = config.margin, lo = config.clampMin
            var total = 0.0
            var grad = [Float](repeating: 0, count: s.count)
            for idx in s.indices where y[idx] >= 0 {
                let p = 1 / (1 + Foundation.exp(-Double(s[idx])))
                var l = 0.0, dl = 0.0  // term and its derivative with respect to s (weight constant)
                if y[idx] == 1 {
                    l = w[idx] * Foundation.log(max(p, lo))
                    dl = p >= lo ? w[idx] * (1 - p) : 0
                } else {
                    let pm = max(p - m, 0)
                    let dpm = p - m >= 0 ? p * (1 - p) : 0
                    let q = 1 - pm
                    l = w[idx] * Foundation.log(max(q, lo))
                    dl = q >= lo ? -w[idx] * dpm / q : 0
                }
                total += l
                grad[idx] = Float(-dl * scale)
            }
            return (-total * scale, Tensor(grad, shape: logits.shape))
        }
    }
}
