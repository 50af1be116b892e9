import Foundation

extension SSPA {
    /// The checkpoint key of every learnable tensor (the names of `scripts/sspa_reference.py`), in the reference's
    /// order, which is also the order initial values are drawn in: the one table of key names. Each key says, in
    /// `role`, its module, its shape, its initial value and whether AdamW decays it.
    public enum ParameterKey: String, CaseIterable, Sendable, Hashable {
        case capContext = "prompt.cap_context"
        case dsfWeight = "dsf.W_f"
        case globalContext = "prompt.global_context"
        case qsm1R = "qsm.layer1.W_r", qsm1I = "qsm.layer1.W_i", qsm1J = "qsm.layer1.W_j", qsm1K = "qsm.layer1.W_k"
        case qsm2R = "qsm.layer2.W_r", qsm2I = "qsm.layer2.W_i", qsm2J = "qsm.layer2.W_j", qsm2K = "qsm.layer2.W_k"
        case qsmOutput = "qsm.W_o"
        case qsmGamma = "qsm.gamma"
        case v2sQuery = "gdma.v2s.Wq", v2sKey = "gdma.v2s.Wk", v2sValue = "gdma.v2s.Wv", v2sOutput = "gdma.v2s.Wo"
        case v2sGate = "gdma.v2s.w_gate", v2sBeta = "gdma.v2s.beta"
        case s2vQuery = "gdma.s2v.Wq", s2vKey = "gdma.s2v.Wk", s2vValue = "gdma.s2v.Wv", s2vOutput = "gdma.s2v.Wo"
        case s2vGate = "gdma.s2v.w_gate", s2vBeta = "gdma.s2v.beta"
        case logTau = "agg.log_tau"
        case globalLogKappa = "global.log_kappa", globalBias = "global.bias"
        case regionLogKappa = "region.log_kappa", regionBias = "region.bias"

        /// The part of the model a tensor belongs to; a config's switches say which parts exist.
        public enum Module: Sendable, Hashable, CaseIterable {
            /// The CAP context `U` and DSF's `W_f` (absent with no-cap).
            case cap
            /// The global context and the global score's `ℓ_G`, `b_G` (absent with no-global).
            case global
            /// QSM's quaternion layers, `W_o` and `γ_q` (absent with no-qsm).
            case qsm
            /// GDMA's two gated attentions (absent with no-gdma).
            case gdma
            /// The soft aggregator's learned `τ_a` (only with the soft aggregator, not sharp).
            case temperature
            /// The region score's `ℓ_R`, `b_R` (always).
            case region

            /// Whether `config` uses this module's tensors.
            public func isUsed(by config: Config) -> Bool {
                switch self {
                case .cap: !config.noCAP
                case .global: !config.noGlobal
                case .qsm: !config.noQSM
                case .gdma: !config.noGDMA
                case .temperature: config.learnsTemperature
                case .region: true
                }
            }
        }

        /// A tensor's shape, in the model's sizes.
        public enum Shape: Sendable, Hashable {
            /// `[nCtx, D]`: context vectors in token-embedding width.
            case context
            /// `[d, d]`.
            case square
            /// `[4d, d]`: QSM's `W_o` on the four packed parts.
            case packed
            /// `[2d]`: a GDMA gate vector.
            case gate
            /// `[1]`.
            case scalar
        }

        /// How a tensor starts (SSPA-SPEC.md, initialisations).
        public enum Initial: Sendable, Hashable {
            /// The token embeddings of `Config.contextInitText`.
            case contextText
            /// The identity matrix.
            case identity
            /// Identity plus normal noise of std `Config.qkvNoise` (GDMA's `Wq`, `Wk`, `Wv`).
            case identityPlusNoise
            /// Glorot-scaled normal, std `sqrt(2 / (d + d)) / 2` (the quaternion weights).
            case quaternion
            /// Normal with std `sqrt(2 / 5d)` (QSM's `W_o`).
            case packedNormal
            case zeros
            /// `ln Config.tauInit`.
            case logTau
            /// `ln Config.kappaInit`.
            case logKappa
            /// `Config.biasInit`.
            case bias
            /// `Config.betaInit`.
            case beta
        }

        /// Module, shape, initial value and weight decay of the key: decay goes to exactly the weight matrices the
        /// spec names (W_f, the quaternion weights, W_o, the GDMA projections), never to contexts, gates, scales or
        /// biases.
        // SSPA-SPEC.md, initialisations and training defaults; scripts/sspa_reference.py, init_params, WEIGHT_DECAYED
        public var role: (module: Module, shape: Shape, initial: Initial, decays: Bool) {
            switch self {
            case .capContext: (.cap, .context, .contextText, false)
            case .dsfWeight: (.cap, .square, .identity, true)
            case .globalContext: (.global, .context, .contextText, false)
            case .qsm1R, .qsm1I, .qsm1J, .qsm1K, .qsm2R, .qsm2I, .qsm2J, .qsm2K: (.qsm, .square, .quaternion, true)
            case .qsmOutput: (.qsm, .packed, .packedNormal, true)
            case .qsmGamma: (.qsm, .scalar, .zeros, false)
            case .v2sQuery, .v2sKey, .v2sValue, .s2vQuery, .s2vKey, .s2vValue: (.gdma, .square, .identityPlusNoise, true)
            case .v2sOutput, .s2vOutput: (.gdma, .square, .zeros, true)
            case .v2sGate, .s2vGate: (.gdma, .gate, .zeros, false)
            case .v2sBeta, .s2vBeta: (.gdma, .scalar, .beta, false)
            case .logTau: (.temperature, .scalar, .logTau, false)
            case .globalLogKappa: (.global, .scalar, .logKappa, false)
            case .globalBias: (.global, .scalar, .bias, false)
            case .regionLogKappa: (.region, .scalar, .logKappa, false)
            case .regionBias: (.region, .scalar, .bias, false)
            }
        }

        public var module: Module { role.module }
        /// Whether AdamW decays this tensor.
        public var decays: Bool { role.decays }
        /// Whether the key is a learned logit scale `ℓ_G`, `ℓ_R`, clamped at `ln κ_max` after each step.
        public var isLogitScale: Bool { self == .globalLogKappa || self == .regionLogKappa }

        /// The shape for joint width `d`, token-embedding width `contextWidth` and `nCtx` context vectors.
        public func shape(d: Int, contextWidth: Int, nCtx: Int) -> [Int] {
            switch role.shape {
            case .context: [nCtx, contextWidth]
            case .square: [d, d]
            case .packed: [4 * d, d]
            case .gate: [2 * d]
            case .scalar: [1]
            }
        }

        /// The keys `config` uses, in table order.
        public static func used(by config: Config) -> [ParameterKey] {
            allCases.filter { $0.module.isUsed(by: config) }
        }
    }
}
