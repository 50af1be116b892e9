import Foundation
import Tensor

extension SSPA {
    /// The asymmetric loss (Ridnik et al. 2021) with partial labels, and its exact gradient, in float64.
    ///
    /// With `p = σ(s)`, `p_m = max(p − m, 0)`:
    /// `loss = −Σ_known [ y·(1−p)^γ+ · log clamp(p) + (1−y)·p_m^γ− · log clamp(1 − p_m) ] / #known`, over every
    /// known `(b, c)` of the batch (`y = −1` is unknown and contributes nothing). The gradient flows through the
    /// focusing weights; where a clamp is active (or `p < m`) the clamped quantity passes no gradient, as in torch.
    public enum AsymmetricLoss {
        /// The loss value and `d loss / d s` (shape of `logits`) for labels in {1, 0, −1}.
        // SSPA-SPEC.md, ASL; scripts/sspa_reference.py, asl
        public static func evaluate(logits: Tensor, labels: Tensor, config: Config) -> (loss: Double, gradient: Tensor) {
            precondition(logits.shape == labels.shape, "ASL: logits \(logits.shape) and labels \(labels.shape) differ")
            let s = logits.scalars, y = labels.scalars
            let known = max(y.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) }, 1)
            let gp = config.gammaPos, gn = config.gammaNeg, m = config.margin, lo = config.clampMin
            var total = 0.0
            var grad = [Float](repeating: 0, count: s.count)
            for idx in s.indices where y[idx] >= 0 {
                let x = Double(s[idx])
                let p = 1 / (1 + Foundation.exp(-x))
                let dp = p * (1 - p)
                var l = 0.0, dl = 0.0  // term and its derivative with respect to s
                if y[idx] == 1 {
                    let lp = Foundation.log(max(p, lo))
                    let dlp = p >= lo ? dp / p : 0
                    let w = gp == 0 ? 1 : Foundation.pow(1 - p, gp)
                    let dw = gp == 0 ? 0 : -gp * Foundation.pow(1 - p, gp - 1) * dp
                    l = w * lp
                    dl = dw * lp + w * dlp
                } else if y[idx] == 0 {
                    let pm = max(p - m, 0)
                    let dpm = p - m >= 0 ? dp : 0
                    let q = 1 - pm
                    let lq = Foundation.log(max(q, lo))
                    let dlq = q >= lo ? -dpm / q : 0
                    let w = gn == 0 ? 1 : Foundation.pow(pm, gn)
                    let dw = gn == 0 ? 0 : gn * Foundation.pow(pm, gn - 1) * dpm
                    l = w * lq
                    dl = dw * lq + w * dlq
                }
                total += l
                grad[idx] = Float(-dl / Double(known))
            }
            return (-total / Double(known), Tensor(grad, shape: logits.shape))
        }
    }
}
