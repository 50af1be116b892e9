import Foundation
import Tensor

extension SSPA {
    /// The trainable tensors of one SSPA model, by the names of `scripts/sspa_reference.py` (e.g. `dsf.W_f`,
    /// `qsm.layer1.W_r`, `gdma.v2s.w_gate`, `agg.log_tau`); scalars have shape `[1]`.
    ///
    /// Layouts: `dsf.W_f` and every GDMA matrix are applied row-wise (`x · W`); the quaternion matrices are stored
    /// `[out, in]` and applied as `W v = v · Wᵀ`; `qsm.W_o` is `[4d, d]`, applied to `[o_r; o_i; o_j; o_k]`.
    public struct Parameters: Sendable {
        /// The tensors by name.
        public var tensors: [String: Tensor]

        /// Wraps existing tensors (see `validate` for a shape check).
        public init(tensors: [String: Tensor]) {
            self.tensors = tensors
        }

        /// The tensor named `name`, if present.
        public subscript(name: String) -> Tensor? {
            get { tensors[name] }
            set { tensors[name] = newValue }
        }

        /// Names in a stable order (sorted).
        public var names: [String] { tensors.keys.sorted() }

        /// Initial values per the spec, drawn from a `SplitMix64` seeded with `seed`, in the order of
        /// `Config.parameterShapes`. `contextInit` `[nCtx, D]` holds the token embeddings of "a photo of a"
        /// (`PromptEncoder.contextEmbeddings`); `d` is the joint embedding width.
        // SSPA-SPEC.md, initialisations; scripts/sspa_reference.py, init_params
        public static func initial(config: Config, d: Int, contextInit: Tensor, seed: UInt64) -> Parameters {
            precondition(contextInit.rank == 2 && contextInit.shape[0] == config.nCtx,
                         "SSPA.Parameters.initial: contextInit must be [\(config.nCtx), D], got \(contextInit.shape)")
            var rng = SplitMix64(seed: seed)
            var identity = Tensor(zeros: [d, d])
            identity.withUnsafeMutableBufferPointer { p in for i in 0..<d { p[i * d + i] = 1 } }
            var out: [String: Tensor] = [:]
            for (name, shape) in config.parameterShapes(d: d, contextWidth: contextInit.shape[1]) {
                let value: Tensor
                switch name {
                case "prompt.cap_context", "prompt.global_context":
                    value = contextInit
                case "dsf.W_f":
                    value = identity
                case "qsm.W_o":
                    value = Tensor.randomNormal(shape, std: Float((2.0 / Double(5 * d)).squareRoot()), using: &rng)
                case "qsm.gamma":
                    value = Tensor(zeros: [1])
                case "agg.log_tau":
                    value = Tensor([Foundation.logf(config.tauInit)], shape: [1])
                case "global.log_kappa", "region.log_kappa":
                    value = Tensor([Foundation.logf(config.kappaInit)], shape: [1])
                case "global.bias", "region.bias":
                    value = Tensor([config.biasInit], shape: [1])
                default:
                    if name.hasPrefix("qsm.layer") {
                        // Glorot-scaled normal, std sqrt(2/(fan_in+fan_out))/2
                        value = Tensor.randomNormal(shape, std: Float((2.0 / Double(2 * d)).squareRoot() / 2), using: &rng)
                    } else if name.hasSuffix(".Wq") || name.hasSuffix(".Wk") || name.hasSuffix(".Wv") {
                        value = identity + Tensor.randomNormal(shape, std: config.qkvNoise, using: &rng)
                    } else if name.hasSuffix(".beta") {
                        value = Tensor([config.betaInit], shape: [1])
                    } else {
                        value = Tensor(zeros: shape)  // gdma.*.Wo, gdma.*.w_gate
                    }
                }
                out[name] = value
            }
            return Parameters(tensors: out)
        }

        /// Clamps `ℓ_G` and `ℓ_R` (`Config.logitScales`) at `ln kappaMax`, leaving smaller values alone.
        public mutating func clampLogitScales(kappaMax: Float) {
            let bound = Foundation.logf(kappaMax)
            for name in Config.logitScales {
                guard var t = tensors[name] else { continue }
                t.withUnsafeMutableBufferPointer { p in for i in p.indices where p[i] > bound { p[i] = bound } }
                tensors[name] = t
            }
        }

        /// Loads a parameter file; it must hold exactly the tensors `config` uses, with their shapes (tensors named
        /// `grad.*`, `input.*`, `out.*`, `inter.*` or `step.*`, as in the reference fixtures, are ignored).
        public init(contentsOf url: URL, config: Config) throws {
            let file = try SafeTensors(path: url.path)
            var out: [String: Tensor] = [:]
            for name in file.names where !name.hasPrefix("grad.") && !name.hasPrefix("input.") &&
                !name.hasPrefix("out.") && !name.hasPrefix("inter.") && !name.hasPrefix("step.") {
                out[name] = try file.tensor(name)
            }
            guard let w = out["region.bias"] ?? out["global.bias"], w.count == 1 else {
                throw ConfigError("\(url.path): no SSPA parameters (region.bias missing)")
            }
            let d = out["gdma.v2s.Wq"]?.shape[0] ?? out["dsf.W_f"]?.shape[0] ?? out["qsm.layer1.W_r"]?.shape[0] ?? 0
            let width = (out["prompt.cap_context"] ?? out["prompt.global_context"])?.shape[1] ?? 0
            self.init(tensors: out)
            try validate(config: config, d: d, contextWidth: width)
        }

        /// Writes every tensor (float32) plus string metadata.
        public func save(to url: URL, metadata: [String: String] = [:]) throws {
            try SafeTensors.write(tensors, metadata: metadata, to: url)
        }

        /// The safetensors bytes `save` writes.
        public func serialized(metadata: [String: String] = [:]) throws -> Data {
            var writer = SafeTensorsWriter(metadata: metadata)
            for (name, t) in tensors { writer.add(name, t) }
            return try writer.serialized()
        }

        /// Throws unless the tensors are exactly those `config` uses, with the right shapes.
        public func validate(config: Config, d: Int, contextWidth: Int) throws {
            let expected = config.parameterShapes(d: d, contextWidth: contextWidth)
            for (name, shape) in expected {
                guard let t = tensors[name] else { throw ConfigError("SSPA parameters: missing \(name)") }
                guard t.shape == shape else {
                    throw ConfigError("SSPA parameters: \(name) has shape \(t.shape), expected \(shape)")
                }
            }
            let extra = Set(tensors.keys).subtracting(expected.map(\.name))
            if !extra.isEmpty { throw ConfigError("SSPA parameters: unexpected \(extra.sorted().joined(separator: ", "))") }
        }
    }
}
