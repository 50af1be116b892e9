import Foundation

extension SSPA {
    /// Every hyper-parameter, initial value and ablation switch of the SSPA model (SSPA-SPEC.md).
    ///
    /// The JSON keys are those of `scripts/sspa_reference.py`'s `Cfg` (snake case), so a reference fixture's config
    /// decodes directly; keys a JSON object leaves out take the spec's defaults. One code path serves every switch.
    public struct Config: Codable, Sendable, Hashable {
        /// How regions are pooled into a label score (SSPA-SPEC.md, soft aggregator; ablation `aggregator`).
        public enum Aggregator: String, Codable, Sendable, CaseIterable {
            /// Weight one for the first region of highest similarity.
            case max
            /// Weight 1/M for every region.
            case mean
            /// `softmax over m of (S / τ_a)`.
            case soft
        }

        // MARK: Ablation switches (SSPA-SPEC.md, "Ablation switches")

        /// `t^ka := 0`.
        public var noKAP = false
        /// `T^ca := 0`; the CAP context `U` and `W_f` are not used.
        public var noCAP = false
        /// `T^uf := norm(t^ka + T^ca)`; no quaternion parameters.
        public var noQSM = false
        /// `T^fn := T^uf`, `X^fn := X`; no GDMA parameters.
        public var noGDMA = false
        /// How regions are pooled.
        public var aggregator = Aggregator.soft
        /// The soft aggregator with the fixed `sharpTau` (only with `aggregator == .soft`).
        public var sharp = false
        /// No global branch: `L = λ·ASL(s^R)`, `p = σ(s^R)`.
        public var noGlobal = false

        // MARK: Sizes and initial values

        /// Context vectors per learnable prompt.
        public var nCtx = 4
        /// The text whose token embeddings initialise the context vectors (`nCtx` tokens).
        public var contextInitText = "a photo of a"
        /// Initial `τ_a` of the soft aggregator.
        public var tauInit: Float = 0.2
        /// The fixed `τ_a` of the `sharp` ablation (DualCoOp's).
        public var sharpTau: Float = 0.05
        /// Initial `κ_G` and `κ_R`.
        public var kappaInit: Float = 20
        /// Upper bound of the learned `κ_G` and `κ_R`: after each optimiser step `ℓ = ln κ` is clamped at
        /// `ln kappaMax` (CLIP and OpenCLIP clamp their logit scale at 100 the same way).
        public var kappaMax: Float = 100
        /// Initial `b_G` and `b_R`.
        public var biasInit: Float = -5
        /// Initial GDMA gate bias `β`.
        public var betaInit: Float = -2
        /// Standard deviation of the noise added to the identity in GDMA's `Wq`, `Wk`, `Wv`.
        public var qkvNoise: Float = 0.01

        // MARK: Loss

        /// ASL focusing exponent of positives `γ+`.
        public var gammaPos: Double = 0
        /// ASL focusing exponent of negatives `γ−`.
        public var gammaNeg: Double = 2
        /// ASL probability margin `m` of negatives.
        public var margin: Double = 0.05
        /// Lower clamp of probabilities before the log.
        public var clampMin: Double = 1e-8
        /// Weight `λ` of the region branch's loss.
        public var lambda: Double = 1
        /// `norm(v) = v / max(‖v‖, normEps)`.
        public var normEps: Float = 1e-6

        /// The spec's defaults.
        public init() {}

        enum CodingKeys: String, CodingKey {
            case noKAP = "no_kap", noCAP = "no_cap", noQSM = "no_qsm", noGDMA = "no_gdma", aggregator, sharp
            case noGlobal = "no_global", nCtx = "n_ctx", contextInitText = "context_init_text", tauInit = "tau_init"
            case sharpTau = "sharp_tau", kappaInit = "kappa_init", kappaMax = "kappa_max", biasInit = "bias_init", beta = "beta_init"
            case qkvNoise = "qkv_noise", gammaPos = "gamma_pos", gammaNeg = "gamma_neg", margin
            case clampMin = "clamp_min", lambda = "lam", normEps = "norm_eps"
        }

        /// Decodes a config; missing keys take the defaults.
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Config()
            noKAP = try c.decodeIfPresent(Bool.self, forKey: .noKAP) ?? d.noKAP
            noCAP = try c.decodeIfPresent(Bool.self, forKey: .noCAP) ?? d.noCAP
            noQSM = try c.decodeIfPresent(Bool.self, forKey: .noQSM) ?? d.noQSM
            noGDMA = try c.decodeIfPresent(Bool.self, forKey: .noGDMA) ?? d.noGDMA
            aggregator = try c.decodeIfPresent(Aggregator.self, forKey: .aggregator) ?? d.aggregator
            sharp = try c.decodeIfPresent(Bool.self, forKey: .sharp) ?? d.sharp
            noGlobal = try c.decodeIfPresent(Bool.self, forKey: .noGlobal) ?? d.noGlobal
            nCtx = try c.decodeIfPresent(Int.self, forKey: .nCtx) ?? d.nCtx
            contextInitText = try c.decodeIfPresent(String.self, forKey: .contextInitText) ?? d.contextInitText
            tauInit = try c.decodeIfPresent(Float.self, forKey: .tauInit) ?? d.tauInit
            sharpTau = try c.decodeIfPresent(Float.self, forKey: .sharpTau) ?? d.sharpTau
            kappaInit = try c.decodeIfPresent(Float.self, forKey: .kappaInit) ?? d.kappaInit
            kappaMax = try c.decodeIfPresent(Float.self, forKey: .kappaMax) ?? d.kappaMax
            biasInit = try c.decodeIfPresent(Float.self, forKey: .biasInit) ?? d.biasInit
            betaInit = try c.decodeIfPresent(Float.self, forKey: .beta) ?? d.betaInit
            qkvNoise = try c.decodeIfPresent(Float.self, forKey: .qkvNoise) ?? d.qkvNoise
            gammaPos = try c.decodeIfPresent(Double.self, forKey: .gammaPos) ?? d.gammaPos
            gammaNeg = try c.decodeIfPresent(Double.self, forKey: .gammaNeg) ?? d.gammaNeg
            margin = try c.decodeIfPresent(Double.self, forKey: .margin) ?? d.margin
            clampMin = try c.decodeIfPresent(Double.self, forKey: .clampMin) ?? d.clampMin
            lambda = try c.decodeIfPresent(Double.self, forKey: .lambda) ?? d.lambda
            normEps = try c.decodeIfPresent(Float.self, forKey: .normEps) ?? d.normEps
        }

        /// Encodes every field.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(noKAP, forKey: .noKAP)
            try c.encode(noCAP, forKey: .noCAP)
            try c.encode(noQSM, forKey: .noQSM)
            try c.encode(noGDMA, forKey: .noGDMA)
            try c.encode(aggregator, forKey: .aggregator)
            try c.encode(sharp, forKey: .sharp)
            try c.encode(noGlobal, forKey: .noGlobal)
            try c.encode(nCtx, forKey: .nCtx)
            try c.encode(contextInitText, forKey: .contextInitText)
            try c.encode(tauInit, forKey: .tauInit)
            try c.encode(sharpTau, forKey: .sharpTau)
            try c.encode(kappaInit, forKey: .kappaInit)
            try c.encode(kappaMax, forKey: .kappaMax)
            try c.encode(biasInit, forKey: .biasInit)
            try c.encode(betaInit, forKey: .beta)
            try c.encode(qkvNoise, forKey: .qkvNoise)
            try c.encode(gammaPos, forKey: .gammaPos)
            try c.encode(gammaNeg, forKey: .gammaNeg)
            try c.encode(margin, forKey: .margin)
            try c.encode(clampMin, forKey: .clampMin)
            try c.encode(lambda, forKey: .lambda)
            try c.encode(normEps, forKey: .normEps)
        }

        /// Throws if the switches contradict each other (`sharp` needs the soft aggregator).
        public func validate() throws {
            if sharp && aggregator != .soft {
                throw ConfigError("sharp is the soft aggregator with a fixed τ_a; it cannot be combined with aggregator=\(aggregator.rawValue)")
            }
            if nCtx < 1 { throw ConfigError("n_ctx must be at least 1, got \(nCtx)") }
            if !(kappaMax > 0) || !kappaMax.isFinite { throw ConfigError("kappa_max must be positive, got \(kappaMax)") }
        }

        /// The parameters that get AdamW's weight decay, by name: exactly the weight matrices SSPA-SPEC.md names
        /// (training defaults): `W_f` (DSF), the quaternion weights of both layers and `W_o` (QSM), and the GDMA
        /// projections, as `ParameterKey.role` says. Never the contexts, gates, scales, biases or `γ_q`. The PyTorch
        /// reference uses the same list (`WEIGHT_DECAYED` in scripts/sspa_reference.py; its fixtures record it and
        /// the parity test compares).
        // SSPA-SPEC.md, training defaults; scripts/sspa_reference.py, WEIGHT_DECAYED
        public static let weightDecayed: [String] = ParameterKey.allCases.filter(\.decays).map(\.rawValue)

        /// The learned logit scales `ℓ_G`, `ℓ_R` that are clamped at `ln kappaMax` after each step.
        public static let logitScales = ParameterKey.allCases.filter(\.isLogitScale).map(\.rawValue)

        /// Whether the soft aggregator's temperature is learned (`agg.log_tau` exists).
        public var learnsTemperature: Bool { aggregator == .soft && !sharp }

        /// The trainable tensors this config uses, by the reference's names, with their shapes, for joint width `d`
        /// and token-embedding width `contextWidth` (scalars have shape `[1]`), in table order.
        // scripts/sspa_reference.py, init_params (names and order)
        public func parameterShapes(d: Int, contextWidth: Int) -> [(name: String, shape: [Int])] {
            ParameterKey.used(by: self).map { ($0.rawValue, $0.shape(d: d, contextWidth: contextWidth, nCtx: nCtx)) }
        }
    }

    /// A configuration, parameter set or input that cannot be used, with a message saying what is wrong.
    public struct ConfigError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }
}
