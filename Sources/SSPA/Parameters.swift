import Foundation
import Tensor

extension SSPA {
    /// The trainable tensors of one SSPA model (also the shape of its gradients and of AdamW's moments), by module;
    /// scalars have shape `[1]`. Saved under the checkpoint keys of `ParameterKey`.
    public typealias Parameters = Weights<Tensor>
}

extension SSPA.Weights where Value == Tensor {
    /// Names of tensors that reference fixture files hold beside the parameters (`grad.*`, `input.*`, …): skipped
    /// when a parameter file is read.
    static var fixturePrefixes: [String] { ["grad.", "input.", "out.", "inter.", "step."] }

    /// The tensors by checkpoint key. Setting writes every tensor given (each key's module must be present).
    public var tensors: [String: Tensor] {
        get { Dictionary(uniqueKeysWithValues: map { ($0.name, $0.value) }) }
        set { for (name, tensor) in newValue { self[name] = tensor } }
    }

    /// Parameters from tensors by checkpoint key: a module is present when any of its keys is, and then all of them
    /// must be; the region score always is. Unknown names are an error.
    public init(tensors: [String: Tensor]) throws {
        var byKey: [SSPA.ParameterKey: Tensor] = [:]
        var unknown: [String] = []
        for (name, tensor) in tensors {
            if let key = SSPA.ParameterKey(rawValue: name) { byKey[key] = tensor } else { unknown.append(name) }
        }
        if !unknown.isEmpty { throw SSPA.ConfigError("SSPA parameters: unexpected \(unknown.sorted().joined(separator: ", "))") }
        let modules = Set(byKey.keys.map(\.module) + [.region])
        try self.init(modules: modules) { key in
            guard let tensor = byKey[key] else { throw SSPA.ConfigError("SSPA parameters: missing \(key.rawValue)") }
            return tensor
        }
    }

    /// Initial values per the spec, drawn from a `SplitMix64` seeded with `seed` in table order (`ParameterKey`).
    /// `contextInit` `[nCtx, D]` holds the token embeddings of "a photo of a" (`PromptEncoder.contextEmbeddings`);
    /// `d` is the joint embedding width.
    // SSPA-SPEC.md, initialisations; scripts/sspa_reference.py, init_params
    public static func initial(config: SSPA.Config, d: Int, contextInit: Tensor, seed: UInt64) -> SSPA.Parameters {
        precondition(contextInit.rank == 2 && contextInit.shape[0] == config.nCtx,
                     "SSPA.Parameters.initial: contextInit must be [\(config.nCtx), D], got \(contextInit.shape)")
        var rng = SplitMix64(seed: seed)
        var identity = Tensor(zeros: [d, d])
        identity.withUnsafeMutableBufferPointer { p in for i in 0..<d { p[i * d + i] = 1 } }
        // Drawn in table order first, so the random streams do not depend on how the modules are built.
        var values: [SSPA.ParameterKey: Tensor] = [:]
        for key in SSPA.ParameterKey.used(by: config) {
            let shape = key.shape(d: d, contextWidth: contextInit.shape[1], nCtx: config.nCtx)
            switch key.role.initial {
            case .contextText: values[key] = contextInit
            case .identity: values[key] = identity
            case .identityPlusNoise: values[key] = identity + Tensor.randomNormal(shape, std: config.qkvNoise, using: &rng)
            case .quaternion: values[key] = Tensor.randomNormal(shape, std: Float((2.0 / Double(2 * d)).squareRoot() / 2), using: &rng)
            case .packedNormal: values[key] = Tensor.randomNormal(shape, std: Float((2.0 / Double(5 * d)).squareRoot()), using: &rng)
            case .zeros: values[key] = Tensor(zeros: shape)
            case .logTau: values[key] = Tensor([Foundation.logf(config.tauInit)], shape: [1])
            case .logKappa: values[key] = Tensor([Foundation.logf(config.kappaInit)], shape: [1])
            case .bias: values[key] = Tensor([config.biasInit], shape: [1])
            case .beta: values[key] = Tensor([config.betaInit], shape: [1])
            }
        }
        return SSPA.Parameters(config: config) { values[$0]! }
    }

    /// Clamps `ℓ_G` and `ℓ_R` at `ln kappaMax`, leaving smaller values alone.
    public mutating func clampLogitScales(kappaMax: Float) {
        let bound = Foundation.logf(kappaMax)
        for key in keys where key.isLogitScale {
            self[key]!.withUnsafeMutableBufferPointer { p in for i in p.indices where p[i] > bound { p[i] = bound } }
        }
    }

    /// Loads a parameter file; it must hold exactly the tensors `config` uses, with their shapes (the other tensors
    /// of the reference fixtures, `fixturePrefixes`, are ignored).
    public init(contentsOf url: URL, config: SSPA.Config) throws {
        let file = try SafeTensors(path: url.path)
        var out: [String: Tensor] = [:]
        for name in file.names where !Self.fixturePrefixes.contains(where: name.hasPrefix) {
            out[name] = try file.tensor(name)
        }
        guard let w = out[SSPA.ParameterKey.regionBias.rawValue], w.count == 1 else {
            throw SSPA.ConfigError("\(url.path): no SSPA parameters (region.bias missing)")
        }
        let d = (out[SSPA.ParameterKey.v2sQuery.rawValue] ?? out[SSPA.ParameterKey.dsfWeight.rawValue] ?? out[SSPA.ParameterKey.qsm1R.rawValue])?.shape[0] ?? 0
        let width = (out[SSPA.ParameterKey.capContext.rawValue] ?? out[SSPA.ParameterKey.globalContext.rawValue])?.shape[1] ?? 0
        let expected = Set(SSPA.ParameterKey.used(by: config).map(\.rawValue))
        if let missing = SSPA.ParameterKey.used(by: config).first(where: { out[$0.rawValue] == nil }) {
            throw SSPA.ConfigError("SSPA parameters: missing \(missing.rawValue)")
        }
        let extra = Set(out.keys).subtracting(expected)
        if !extra.isEmpty { throw SSPA.ConfigError("SSPA parameters: unexpected \(extra.sorted().joined(separator: ", "))") }
        try self.init(tensors: out)
        try validate(config: config, d: d, contextWidth: width)
    }

    /// Writes every tensor (float32) plus string metadata.
    public func save(to url: URL, metadata: [String: String] = [:]) throws {
        try SafeTensors.write(tensors, metadata: metadata, to: url)
    }

    /// The safetensors bytes `save` writes.
    public func serialized(metadata: [String: String] = [:]) throws -> Data {
        var writer = SafeTensorsWriter(metadata: metadata)
        for (name, t) in self { writer.add(name, t) }
        return try writer.serialized()
    }

    /// Throws unless the tensors are exactly those `config` uses, with the right shapes.
    public func validate(config: SSPA.Config, d: Int, contextWidth: Int) throws {
        for key in SSPA.ParameterKey.used(by: config) {
            let shape = key.shape(d: d, contextWidth: contextWidth, nCtx: config.nCtx)
            guard let t = self[key] else { throw SSPA.ConfigError("SSPA parameters: missing \(key.rawValue)") }
            guard t.shape == shape else {
                throw SSPA.ConfigError("SSPA parameters: \(key.rawValue) has shape \(t.shape), expected \(shape)")
            }
        }
        let extra = keys.filter { !$0.module.isUsed(by: config) }
        if !extra.isEmpty { throw SSPA.ConfigError("SSPA parameters: unexpected \(extra.map(\.rawValue).sorted().joined(separator: ", "))") }
    }
}
