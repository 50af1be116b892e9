import Foundation
import Tensor

extension SSPA {
    /// AdamW (Loshchilov & Hutter): Adam moments with decoupled weight decay, `θ ← θ − lr·(m̂/(√v̂ + ε) + wd·θ)`.
    ///
    /// Weight decay goes only to the weight matrices `ParameterKey.decays` names (`Config.weightDecayed`): the CAP
    /// and global context vectors, every scalar (scales `log_kappa`, `log_tau`, `qsm.gamma`, biases `bias`, `beta`)
    /// and the gate vectors `w_gate` get none. The state (moments, one per parameter, and the step) is saved beside a
    /// checkpoint for `--resume`.
    public struct AdamW: Sendable {
        public var beta1: Float = 0.9
        public var beta2: Float = 0.999
        public var epsilon: Float = 1e-8
        public var weightDecay: Float
        /// Updates done so far (bias correction uses `step`).
        public var step = 0
        /// First moments, one per parameter (nil before the first update).
        public var firstMoments: Parameters?
        /// Second moments, one per parameter (nil before the first update).
        public var secondMoments: Parameters?

        public init(weightDecay: Float = 1e-4) {
            self.weightDecay = weightDecay
        }

        /// Whether the parameter named `name` gets weight decay (`ParameterKey.decays`).
        public static func decays(_ name: String) -> Bool { ParameterKey(rawValue: name)?.decays ?? false }

        /// One update of every parameter, at learning rate `lr`; `gradients` has the parameters' modules.
        public mutating func update(_ parameters: inout Parameters, gradients: Parameters, lr: Float) {
            precondition(gradients.modules == parameters.modules, "AdamW: the gradients are of other modules than the parameters")
            step += 1
            let c1 = 1 - Foundation.pow(beta1, Float(step)), c2 = 1 - Foundation.pow(beta2, Float(step))
            let (b1, b2, eps) = (beta1, beta2, epsilon)
            var first = firstMoments ?? parameters.map { Tensor(zeros: $1.shape) }
            var second = secondMoments ?? parameters.map { Tensor(zeros: $1.shape) }
            precondition(first.modules == parameters.modules && second.modules == parameters.modules,
                         "AdamW: the moments are of other modules than the parameters")
            for key in parameters.keys {
                let g = gradients[key]!
                var theta = parameters[key]!
                precondition(g.shape == theta.shape, "AdamW: gradient of \(key.rawValue) is \(g.shape), parameter \(theta.shape)")
                var m = first[key]!
                var v = second[key]!
                let decay = key.decays ? weightDecay : 0
                g.withUnsafeBufferPointer { gp in
                    m.withUnsafeMutableBufferPointer { mp in
                        v.withUnsafeMutableBufferPointer { vp in
                            theta.withUnsafeMutableBufferPointer { tp in
                                for i in 0..<tp.count {
                                    mp[i] = b1 * mp[i] + (1 - b1) * gp[i]
                                    vp[i] = b2 * vp[i] + (1 - b2) * gp[i] * gp[i]
                                    let mhat = mp[i] / c1, vhat = vp[i] / c2
                                    tp[i] -= lr * (mhat / (vhat.squareRoot() + eps) + decay * tp[i])
                                }
                            }
                        }
                    }
                }
                first[key] = m
                second[key] = v
                parameters[key] = theta
            }
            firstMoments = first
            secondMoments = second
        }

        /// Scales `gradients` so that their global L2 norm is at most `maxNorm`; returns the norm before.
        @discardableResult
        public static func clipGradientNorm(_ gradients: inout Parameters, maxNorm: Float) -> Float {
            var byName = gradients.tensors
            let norm = clipGradientNorm(&byName, maxNorm: maxNorm)
            gradients.tensors = byName
            return norm
        }

        /// Scales `gradients` in place so that their global L2 norm is at most `maxNorm`; returns the norm before.
        @discardableResult
        public static func clipGradientNorm(_ gradients: inout [String: Tensor], maxNorm: Float) -> Float {
            var total = 0.0
            for name in gradients.keys.sorted() {
                total += gradients[name]!.withUnsafeBufferPointer { p in p.reduce(0.0) { $0 + Double($1) * Double($1) } }
            }
            let norm = Float(total.squareRoot())
            if norm.isFinite, norm > maxNorm {
                let s = maxNorm / (norm + 1e-6)
                for name in gradients.keys.sorted() { gradients[name] = Ops.scale(gradients[name]!, by: s) }
            }
            return norm
        }

        /// The state as tensors (`m.NAME`, `v.NAME`) plus the step in the metadata.
        public func save(to url: URL) throws {
            try serialized().write(to: url, options: .atomic)
        }

        /// The safetensors bytes `save` writes.
        public func serialized() throws -> Data {
            var writer = SafeTensorsWriter(metadata: ["step": String(step), "beta1": "\(beta1)", "beta2": "\(beta2)",
                                                      "epsilon": "\(epsilon)", "weight_decay": "\(weightDecay)"])
            for (name, t) in firstMoments?.tensors ?? [:] { writer.add("m.\(name)", t) }
            for (name, t) in secondMoments?.tensors ?? [:] { writer.add("v.\(name)", t) }
            return try writer.serialized()
        }

        /// Reads a state written by `save`.
        public init(contentsOf url: URL) throws {
            let file = try SafeTensors(path: url.path)
            guard let step = file.metadata["step"].flatMap(Int.init), let wd = file.metadata["weight_decay"].flatMap(Float.init) else {
                throw ConfigError("\(url.path): not an optimizer state (no step / weight_decay metadata)")
            }
            self.init(weightDecay: wd)
            self.step = step
            if let b = file.metadata["beta1"].flatMap(Float.init) { beta1 = b }
            if let b = file.metadata["beta2"].flatMap(Float.init) { beta2 = b }
            if let e = file.metadata["epsilon"].flatMap(Float.init) { epsilon = e }
            var first: [String: Tensor] = [:], second: [String: Tensor] = [:]
            for name in file.names {
                if name.hasPrefix("m.") { first[String(name.dropFirst(2))] = try file.tensor(name) }
                if name.hasPrefix("v.") { second[String(name.dropFirst(2))] = try file.tensor(name) }
            }
            if !first.isEmpty { firstMoments = try Parameters(tensors: first) }
            if !second.isEmpty { secondMoments = try Parameters(tensors: second) }
        }
    }
}
