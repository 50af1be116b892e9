import Foundation
import Tensor

extension SSPA {
    /// The learnable tensors of one model, one typed struct per module (SSPA-SPEC.md), generic over what each slot
    /// holds: `Tensor` for the parameters, their gradients and AdamW's moments (`Parameters`), `Variable` on a tape.
    /// A module absent under the config's switches is nil. Checkpoint keys come from `ParameterKey`, the one table of
    /// names; iterating yields `(name, value)` in that table's order.
    ///
    /// Layouts: `dsf` (`W_f`) and every GDMA matrix are applied row-wise (`x · W`); the quaternion matrices are stored
    /// `[out, in]` and applied as `W v = v · Wᵀ`; `qsm.output` (`W_o`) is `[4d, d]`, applied to `[o_r; o_i; o_j; o_k]`.
    public struct Weights<Value> {
        /// The CAP context `U` and DSF's `W_f`.
        public struct CAP {
            public var context: Value
            public var dsf: Value
        }

        /// The global branch: its context and score scale `ℓ_G` and bias `b_G`.
        public struct Global {
            public var context: Value
            public var logKappa: Value
            public var bias: Value
        }

        /// The four weights of a quaternion linear layer.
        public struct Quaternion {
            public var r, i, j, k: Value
        }

        /// QSM: two quaternion layers, the output `W_o` and the gate `γ_q`.
        public struct QSM {
            public var layer1: Quaternion
            public var layer2: Quaternion
            public var output: Value
            public var gamma: Value
        }

        /// One gated attention of GDMA: `Wq`, `Wk`, `Wv`, `Wo`, the gate vector `w` and bias `β`.
        public struct GatedAttention {
            public var query, key, value, output: Value
            public var gate: Value
            public var beta: Value
        }

        /// GDMA: visual-to-semantic and semantic-to-visual attention.
        public struct GDMA {
            public var v2s: GatedAttention
            public var s2v: GatedAttention
        }

        /// A score's scale `ℓ` and bias `b`.
        public struct Scorer {
            public var logKappa: Value
            public var bias: Value
        }

        public var cap: CAP?
        public var global: Global?
        public var qsm: QSM?
        public var gdma: GDMA?
        /// `ln τ_a` of the soft aggregator.
        public var logTau: Value?
        public var region: Scorer

        /// Builds every module `modules` holds, each tensor from `value` in table order.
        public init(modules: Set<ParameterKey.Module>, _ value: (ParameterKey) throws -> Value) rethrows {
            func has(_ module: ParameterKey.Module) -> Bool { modules.contains(module) }
            cap = has(.cap) ? CAP(context: try value(.capContext), dsf: try value(.dsfWeight)) : nil
            global = has(.global) ? Global(context: try value(.globalContext), logKappa: try value(.globalLogKappa), bias: try value(.globalBias)) : nil
            qsm = has(.qsm)
                ? QSM(layer1: Quaternion(r: try value(.qsm1R), i: try value(.qsm1I), j: try value(.qsm1J), k: try value(.qsm1K)),
                      layer2: Quaternion(r: try value(.qsm2R), i: try value(.qsm2I), j: try value(.qsm2J), k: try value(.qsm2K)),
                      output: try value(.qsmOutput), gamma: try value(.qsmGamma))
                : nil
            gdma = has(.gdma)
                ? GDMA(v2s: GatedAttention(query: try value(.v2sQuery), key: try value(.v2sKey), value: try value(.v2sValue),
                                           output: try value(.v2sOutput), gate: try value(.v2sGate), beta: try value(.v2sBeta)),
                       s2v: GatedAttention(query: try value(.s2vQuery), key: try value(.s2vKey), value: try value(.s2vValue),
                                           output: try value(.s2vOutput), gate: try value(.s2vGate), beta: try value(.s2vBeta)))
                : nil
            logTau = has(.temperature) ? try value(.logTau) : nil
            region = Scorer(logKappa: try value(.regionLogKappa), bias: try value(.regionBias))
        }

        /// Builds the modules `config` uses.
        public init(config: Config, _ value: (ParameterKey) throws -> Value) rethrows {
            try self.init(modules: Set(ParameterKey.Module.allCases.filter { $0.isUsed(by: config) }), value)
        }

        /// The modules present.
        public var modules: Set<ParameterKey.Module> {
            var out: Set<ParameterKey.Module> = [.region]
            if cap != nil { out.insert(.cap) }
            if global != nil { out.insert(.global) }
            if qsm != nil { out.insert(.qsm) }
            if gdma != nil { out.insert(.gdma) }
            if logTau != nil { out.insert(.temperature) }
            return out
        }

        /// Whether these are the modules `config` uses.
        public func fits(_ config: Config) -> Bool {
            modules == Set(ParameterKey.Module.allCases.filter { $0.isUsed(by: config) })
        }

        /// The keys present, in table order.
        public var keys: [ParameterKey] {
            let present = modules
            return ParameterKey.allCases.filter { present.contains($0.module) }
        }

        /// The same modules with every value transformed.
        public func map<T>(_ transform: (ParameterKey, Value) throws -> T) rethrows -> Weights<T> {
            try Weights<T>(modules: modules) { key in try transform(key, self[key]!) }
        }

        /// The tensor of `key`; nil when its module is absent. Setting needs the module present.
        public subscript(key: ParameterKey) -> Value? {
            get {
                switch key {
                case .capContext: cap?.context
                case .dsfWeight: cap?.dsf
                case .globalContext: global?.context
                case .globalLogKappa: global?.logKappa
                case .globalBias: global?.bias
                case .qsm1R: qsm?.layer1.r
                case .qsm1I: qsm?.layer1.i
                case .qsm1J: qsm?.layer1.j
                case .qsm1K: qsm?.layer1.k
                case .qsm2R: qsm?.layer2.r
                case .qsm2I: qsm?.layer2.i
                case .qsm2J: qsm?.layer2.j
                case .qsm2K: qsm?.layer2.k
                case .qsmOutput: qsm?.output
                case .qsmGamma: qsm?.gamma
                case .v2sQuery: gdma?.v2s.query
                case .v2sKey: gdma?.v2s.key
                case .v2sValue: gdma?.v2s.value
                case .v2sOutput: gdma?.v2s.output
                case .v2sGate: gdma?.v2s.gate
                case .v2sBeta: gdma?.v2s.beta
                case .s2vQuery: gdma?.s2v.query
                case .s2vKey: gdma?.s2v.key
                case .s2vValue: gdma?.s2v.value
                case .s2vOutput: gdma?.s2v.output
                case .s2vGate: gdma?.s2v.gate
                case .s2vBeta: gdma?.s2v.beta
                case .logTau: logTau
                case .regionLogKappa: region.logKappa
                case .regionBias: region.bias
                }
            }
            set {
                guard let v = newValue, modules.contains(key.module) else {
                    preconditionFailure("SSPA.Weights: cannot set \(key.rawValue) to \(newValue == nil ? "nil" : "a value"): its module is \(modules.contains(key.module) ? "present" : "absent")")
                }
                switch key {
                case .capContext: cap!.context = v
                case .dsfWeight: cap!.dsf = v
                case .globalContext: global!.context = v
                case .globalLogKappa: global!.logKappa = v
                case .globalBias: global!.bias = v
                case .qsm1R: qsm!.layer1.r = v
                case .qsm1I: qsm!.layer1.i = v
                case .qsm1J: qsm!.layer1.j = v
                case .qsm1K: qsm!.layer1.k = v
                case .qsm2R: qsm!.layer2.r = v
                case .qsm2I: qsm!.layer2.i = v
                case .qsm2J: qsm!.layer2.j = v
                case .qsm2K: qsm!.layer2.k = v
                case .qsmOutput: qsm!.output = v
                case .qsmGamma: qsm!.gamma = v
                case .v2sQuery: gdma!.v2s.query = v
                case .v2sKey: gdma!.v2s.key = v
                case .v2sValue: gdma!.v2s.value = v
                case .v2sOutput: gdma!.v2s.output = v
                case .v2sGate: gdma!.v2s.gate = v
                case .v2sBeta: gdma!.v2s.beta = v
                case .s2vQuery: gdma!.s2v.query = v
                case .s2vKey: gdma!.s2v.key = v
                case .s2vValue: gdma!.s2v.value = v
                case .s2vOutput: gdma!.s2v.output = v
                case .s2vGate: gdma!.s2v.gate = v
                case .s2vBeta: gdma!.s2v.beta = v
                case .logTau: logTau = v
                case .regionLogKappa: region.logKappa = v
                case .regionBias: region.bias = v
                }
            }
        }

        /// The tensor with checkpoint key `name`; nil when the name is unknown or its module absent.
        public subscript(name: String) -> Value? {
            get { ParameterKey(rawValue: name).flatMap { self[$0] } }
            set {
                guard let key = ParameterKey(rawValue: name) else { preconditionFailure("SSPA.Weights: no parameter named \(name)") }
                self[key] = newValue
            }
        }

        /// The checkpoint keys present, sorted by name.
        public var names: [String] { keys.map(\.rawValue).sorted() }
    }
}

extension SSPA.Weights: Sequence {
    /// `(name, value)` in table order.
    public func makeIterator() -> IndexingIterator<[(name: String, value: Value)]> {
        keys.map { (name: $0.rawValue, value: self[$0]!) }.makeIterator()
    }
}

extension SSPA.Weights: Sendable where Value: Sendable {}
extension SSPA.Weights.CAP: Sendable where Value: Sendable {}
extension SSPA.Weights.Global: Sendable where Value: Sendable {}
extension SSPA.Weights.Quaternion: Sendable where Value: Sendable {}
extension SSPA.Weights.QSM: Sendable where Value: Sendable {}
extension SSPA.Weights.GatedAttention: Sendable where Value: Sendable {}
extension SSPA.Weights.GDMA: Sendable where Value: Sendable {}
extension SSPA.Weights.Scorer: Sendable where Value: Sendable {}
