import CLIP
import Foundation
import Tensor

extension SSPA {
    /// The SSPA model of SSPA-SPEC.md on a `Tape`: the learnable prompts through the frozen text tower (once per
    /// call, for the whole batch), the global branch, DSF, QSM, GDMA, the aggregator, the ASL loss and `p`.
    ///
    /// Every ablation switch of `config` is honoured on this one code path. The batch is processed as a whole:
    /// `x0` `[B, d]`, `regions` `[B, M, d]` (raw CLIP features of any scale: both are L2-normalised where they enter,
    /// so the model does not depend on a checkpoint's feature norm), `labels` `[B, C]` in {1, 0, −1}.
    public final class Model: @unchecked Sendable {
        /// Hyper-parameters and switches.
        public let config: Config
        /// The frozen text tower with the label sequences.
        public let promptEncoder: PromptEncoder
        /// `T^ka` `[C, d]`: the frozen knowledge-aware prompt embeddings.
        public let knowledge: Tensor

        /// Joint embedding width `d`.
        public var width: Int { knowledge.shape[1] }
        /// Number of labels `C`.
        public var labelCount: Int { knowledge.shape[0] }

        /// A model for `config`, with the label prompts of `promptEncoder` and the knowledge embeddings `knowledge`.
        public init(config: Config, promptEncoder: PromptEncoder, knowledge: Tensor) throws {
            try config.validate()
            guard knowledge.rank == 2, knowledge.shape[0] == promptEncoder.labelCount,
                  knowledge.shape[1] == promptEncoder.textModel.config.projectionDim else {
                throw ConfigError("SSPA.Model: knowledge must be [\(promptEncoder.labelCount), \(promptEncoder.textModel.config.projectionDim)], got \(knowledge.shape)")
            }
            guard promptEncoder.nCtx == config.nCtx else {
                throw ConfigError("SSPA.Model: the prompt encoder has \(promptEncoder.nCtx) context slots, the config \(config.nCtx)")
            }
            self.config = config
            self.promptEncoder = promptEncoder
            self.knowledge = knowledge
        }

        /// The results of one forward pass.
        public struct Output {
            /// The loss `[1]` on the tape (nil without labels).
            public var loss: Variable?
            /// The loss in float64 (nil without labels).
            public var lossValue: Double?
            /// Global logits `s^G` `[B, C]` (nil with `noGlobal`).
            public var globalLogits: Variable?
            /// Region logits `s^R` `[B, C]`.
            public var regionLogits: Variable
            /// Prediction `p` `[B, C]`.
            public var probabilities: Tensor
            /// Prediction `p` `[B, C]` row-major, computed in float64 from the float32 logits: what metrics rank, so
            /// that saturated probabilities (σ(s) rounds to 1 in float32 for s ≳ 17) do not tie.
            public var scores: [Double]
            /// The ASL focusing weights the loss used (nil without labels).
            public var focusingWeights: FocusingWeights?
            /// V→S gates `g_t` `[B, C]` (nil with `noGDMA`).
            public var labelGates: Tensor?
            /// S→V gates `g_x` `[B, M]` (nil with `noGDMA`).
            public var regionGates: Tensor?
            /// Aggregation weights `ω` `[B, M, C]`.
            public var omega: Tensor
            /// Intermediate values by the reference's names: `T_cp`, `T_g` `[C, d]`; `T_ca`, `T_uf`, `T_fn`
            /// `[B, C, d]`; `X_fn` `[B, M, d]`; `S` `[B, M, C]` (those the switches compute).
            public var intermediates: [String: Tensor]
        }

        /// The ASL focusing weights of both branches, one per entry of `s^R` and `s^G` (constants of the backward
        /// pass). Passing them back into `forward` freezes them, for a finite-difference check of the gradient.
        public struct FocusingWeights: Sendable {
            public var region: [Double]
            public var global: [Double]?
        }

        /// Puts `parameters` on `tape`, as gradient-requiring leaves when `trainable`.
        public func variables(_ parameters: Parameters, on tape: Tape, trainable: Bool = true) -> Weights<Variable> {
            parameters.map { _, t in tape.variable(t, requiresGrad: trainable) }
        }

        /// The forward pass (and the loss when `labels` is given).
        // SSPA-SPEC.md (whole model); scripts/sspa_reference.py, forward
        public func forward(_ P: Weights<Variable>, x0 rawX0: Tensor, regions: Tensor, labels: Tensor?, on tape: Tape,
                            focusingWeights: FocusingWeights? = nil) -> Output {
            let d = width, c = labelCount
            precondition(regions.rank == 3 && regions.shape[2] == d, "SSPA.Model: regions must be [B, M, \(d)], got \(regions.shape)")
            let b = regions.shape[0], m = regions.shape[1]
            precondition(rawX0.shape == [b, d], "SSPA.Model: x0 must be [\(b), \(d)], got \(rawX0.shape)")
            if let labels { precondition(labels.shape == [b, c], "SSPA.Model: labels must be [\(b), \(c)], got \(labels.shape)") }
            precondition(P.fits(config), "SSPA.Model: the parameters' modules \(P.modules) are not those of the config")
            let eps = config.normEps
            // Feature scale: unit x0 and unit regions from here on (SSPA-SPEC.md, "Feature scale").
            let x0 = Ops.l2Normalize(rawX0, eps: eps)
            let X = tape.constant(Ops.l2Normalize(regions, eps: eps))
            var inter: [String: Tensor] = [:]

            // Prompts: CAP and global contexts through the frozen text tower in one pass.
            var contexts: [Variable] = []
            if let cap = P.cap { contexts.append(cap.context) }
            if let global = P.global { contexts.append(global.context) }
            let encoded = contexts.isEmpty ? [] : promptEncoder.encode(contexts)
            let tcp: Variable? = config.noCAP ? nil : encoded[0]
            let tg: Variable? = config.noGlobal ? nil : encoded[encoded.count - 1]

            // DSF
            var tca: Variable?
            if let tcp, let cap = P.cap {
                inter["T_cp"] = tcp.value
                tca = dsf(tcp, X, cap.dsf)
            }
            let tka: Variable? = config.noKAP ? nil : tape.constant(knowledge)

            // QSM
            var tuf: Variable
            if let qsm = P.qsm {
                // Both layers' outputs are the four parts side by side, [o_r; o_i; o_j; o_k] `[B, C, 4d]`: GELU is
                // per element, so it applies to the packed tensor as to each part, and W_o reads it as is.
                let x0q = tape.constant(x0.reshaped([b, 1, d]))
                let hidden = tape.gelu(quaternionLinear([nil, tka, tca, x0q], qsm.layer1), approximation: .exact)
                let synthesis = tape.matmul(quaternionLinear(packed: hidden, qsm.layer2), qsm.output)
                tuf = normalizedSum([tka, tca, tape.mul(qsm.gamma, synthesis)], on: tape)
            } else {
                tuf = normalizedSum([tka, tca], on: tape)
            }
            if tuf.shape != [b, c, d] { tuf = tape.add(tuf, tape.constant(Tensor(zeros: [b, c, d]))) }
            inter["T_ca"] = tca.map { $0.shape == [b, c, d] ? $0.value : Ops.add($0.value, Tensor(zeros: [b, c, d])) }
                ?? Tensor(zeros: [b, c, d])
            inter["T_uf"] = tuf.value

            // GDMA
            var tfn = tuf, xfn = X
            var labelGates: Tensor?, regionGates: Tensor?
            if let gdma = P.gdma {
                let v2s = gatedAttention(tuf, X, gdma.v2s)
                let s2v = gatedAttention(X, tuf, gdma.s2v)
                tfn = v2s.output
                xfn = s2v.output
                labelGates = v2s.gates.value.reshaped([b, c])
                regionGates = s2v.gates.value.reshaped([b, m])
            }
            inter["T_fn"] = tfn.value
            inter["X_fn"] = xfn.value

            // Aggregator, on S transposed: [B, C, M], pooled over the last axis.
            let st = tape.cosineSimilarity(tfn, xfn, eps: eps)
            let omegaT: Variable
            switch config.aggregator {
            case .soft:
                let logits = P.logTau.map { tape.div(st, tape.exp($0)) } ?? tape.scale(st, by: 1 / config.sharpTau)
                omegaT = tape.softmax(logits)
            case .max:
                var w = Tensor(zeros: [b, c, m])
                let best = Ops.argmax(st.value)
                w.withUnsafeMutableBufferPointer { ptr in for (row, j) in best.enumerated() { ptr[row * m + j] = 1 } }
                omegaT = tape.constant(w)
            case .mean:
                omegaT = tape.constant(Tensor(repeating: 1 / Float(m), shape: [b, c, m]))
            }
            let pooled = tape.sum(tape.mul(omegaT, st), axis: 2)
            let sR = tape.add(tape.mul(tape.exp(P.region.logKappa), pooled), P.region.bias)
            inter["S"] = Ops.transpose(st.value)

            // Global branch
            var sG: Variable?
            if let tg, let global = P.global {
                inter["T_g"] = tg.value
                let cosine = tape.cosineSimilarity(tape.constant(x0), tg, eps: eps)
                sG = tape.add(tape.mul(tape.exp(global.logKappa), cosine), global.bias)
            }

            // Prediction and loss
            var probabilities = Ops.sigmoid(sR.value)
            if let sG { probabilities = Ops.scale(Ops.add(probabilities, Ops.sigmoid(sG.value)), by: 0.5) }
            let scores = Metrics.probabilities(regionLogits: sR.value.scalars, globalLogits: sG?.value.scalars)
            var loss: Variable?, lossValue: Double?, weights: FocusingWeights?
            if let labels {
                (loss, lossValue, weights) = asl(sR: sR, sG: sG, labels: labels, frozen: focusingWeights)
            }
            return Output(loss: loss, lossValue: lossValue, globalLogits: sG, regionLogits: sR,
                          probabilities: probabilities, scores: scores, focusingWeights: weights,
                          labelGates: labelGates, regionGates: regionGates,
                          omega: Ops.transpose(omegaT.value), intermediates: inter)
        }

        /// Inference: the forward pass with `parameters` frozen and no labels (nothing is recorded for a backward
        /// pass). The one prediction path of evaluation, validation and `Predictor`.
        public func infer(_ parameters: Parameters, x0: Tensor, regions: Tensor) -> Output {
            let tape = Tape()
            return forward(variables(parameters, on: tape, trainable: false), x0: x0, regions: regions, labels: nil, on: tape)
        }

        /// One forward and backward pass: the output and `d loss / d θ` for every parameter (zeros where none flows).
        public func lossAndGradients(_ parameters: Parameters, x0: Tensor, regions: Tensor, labels: Tensor)
            -> (output: Output, gradients: Parameters) {
            let tape = Tape()
            let vars = variables(parameters, on: tape)
            let out = forward(vars, x0: x0, regions: regions, labels: labels, on: tape)
            guard let loss = out.loss else { preconditionFailure("SSPA.Model: no loss") }
            tape.backward(from: loss)
            return (out, vars.map { _, v in tape.gradient(of: v) ?? Tensor(zeros: v.shape) })
        }

        // MARK: Modules

        /// `T^ca = norm(T^cp + softmax_m((T^cp W_f) Xᵀ / sqrt(d)) X)`, `[B, C, d]`.
        // SSPA-SPEC.md, DSF
        func dsf(_ tcp: Variable, _ X: Variable, _ wf: Variable) -> Variable {
            let tape = tcp.tape
            let query = tape.matmul(tcp, wf)
            let scores = tape.scale(tape.matmul(query, X, transposeB: true), by: 1 / Float(width).squareRoot())
            let attended = tape.matmul(tape.softmax(scores), X)
            return tape.l2Normalize(tape.add(tcp, attended), eps: config.normEps)
        }

        /// The signed weight blocks of a quaternion linear layer as a real `[4d, 4d]` block matrix: block `(o, i)`
        /// (output part `o`, input part `i`, both in r, i, j, k order) is `±W_w`, so that `out_o = Σ_i (±W_w) q_i`
        /// spells out the Hamilton product `W ⊗ q`. Returns the four column blocks `[4d, d]`, one per input part.
        // SSPA-SPEC.md, QSM (the four out_* equations); scripts/sspa_reference.py, qlinear
        func quaternionBlocks(_ layer: Weights<Variable>.Quaternion) -> [Variable] {
            let weights = [layer.r, layer.i, layer.j, layer.k]
            // (weight, sign) of block (output o, input i), weights indexed r, i, j, k = 0…3.
            let blocks: [[(Int, Bool)]] = [
                [(0, true), (1, false), (2, false), (3, false)],  // out_r = W_r r − W_i i − W_j j − W_k k
                [(1, true), (0, true), (3, false), (2, true)],    // out_i = W_i r + W_r i − W_k j + W_j k
                [(2, true), (3, true), (0, true), (1, false)],    // out_j = W_j r + W_k i + W_r j − W_i k
                [(3, true), (2, false), (1, true), (0, true)],    // out_k = W_k r − W_j i + W_i j + W_r k
            ]
            let tape = weights[0].tape
            var negated: [Int: Variable] = [:]
            func signed(_ w: Int, _ positive: Bool) -> Variable {
                if positive { return weights[w] }
                if let n = negated[w] { return n }
                let n = tape.scale(weights[w], by: -1)
                negated[w] = n
                return n
            }
            return (0..<4).map { input in tape.concat((0..<4).map { out in signed(blocks[out][input].0, blocks[out][input].1) }, axis: 0) }
        }

        /// A quaternion linear layer on separate input parts (nil is a zero part, whose products are skipped):
        /// `Σ_i q_i · B_iᵀ` over the column blocks, broadcasting parts of different shapes (`[C, d]` knowledge,
        /// `[B, C, d]` context, `[B, 1, d]` image). Returns the packed output `[…, 4d]`.
        func quaternionLinear(_ q: [Variable?], _ layer: Weights<Variable>.Quaternion) -> Variable {
            let columns = quaternionBlocks(layer)
            var acc: Variable?
            for (i, part) in q.enumerated() {
                guard let part else { continue }
                let t = part.tape.matmul(part, columns[i], transposeB: true)
                acc = acc.map { $0 + t } ?? t
            }
            guard let acc else { preconditionFailure("SSPA.Model: a quaternion layer has no input part") }
            return acc
        }

        /// A quaternion linear layer on packed parts `[…, 4d]`: one product with the whole `[4d, 4d]` block matrix.
        func quaternionLinear(packed q: Variable, _ layer: Weights<Variable>.Quaternion) -> Variable {
            let tape = q.tape
            return tape.matmul(q, tape.concat(quaternionBlocks(layer), axis: 1), transposeB: true)
        }

        /// `norm(Qs + g ⊙ (Z Wo))` with `Z = softmax((Qs Wq)(KV Wk)ᵀ / sqrt(d)) (KV Wv)` and
        /// `g = σ([Qs; Z] w + β)`; returns the output and the gates `[B, n, 1]`.
        // SSPA-SPEC.md, GDMA; scripts/sspa_reference.py, gdma
        func gatedAttention(_ qs: Variable, _ kv: Variable, _ w: Weights<Variable>.GatedAttention)
            -> (output: Variable, gates: Variable) {
            let tape = qs.tape
            let d = width
            let z = tape.attention(query: tape.matmul(qs, w.query), key: tape.matmul(kv, w.key),
                                   value: tape.matmul(kv, w.value), heads: 1, scale: 1 / Float(d).squareRoot())
            let gateInput = tape.concat([qs, z], axis: 2)
            let gates = tape.sigmoid(tape.add(tape.matmul(gateInput, tape.reshape(w.gate, [2 * d, 1])), w.beta))
            let out = tape.l2Normalize(tape.add(qs, tape.mul(gates, tape.matmul(z, w.output))), eps: config.normEps)
            return (out, gates)
        }

        /// `norm(Σ terms)` over the non-nil terms (zeros when all are nil).
        func normalizedSum(_ terms: [Variable?], on tape: Tape) -> Variable {
            let present = terms.compactMap { $0 }
            guard var acc = present.first else { return tape.constant(Tensor(zeros: [1, labelCount, width])) }
            for t in present.dropFirst() { acc = acc + t }
            return acc.tape.l2Normalize(acc, eps: config.normEps)
        }

        /// `L = ASL(s^G, y) + λ·ASL(s^R, y)` as a tape node: the float64 value, and the gradient `dL/ds` (focusing
        /// weights constant) injected as `Σ s ⊙ (dL/ds) + (L − Σ s ⊙ (dL/ds))` with the bracket a constant.
        // SSPA-SPEC.md, Loss
        func asl(sR: Variable, sG: Variable?, labels: Tensor, frozen: FocusingWeights?) -> (Variable, Double, FocusingWeights) {
            let tape = sR.tape
            let regionWeights = frozen?.region ?? AsymmetricLoss.focusingWeights(logits: sR.value, labels: labels, config: config)
            let region = AsymmetricLoss.evaluate(logits: sR.value, labels: labels, config: config, weights: regionWeights)
            var value = config.lambda * region.loss
            var linear = tape.sum(tape.mul(sR, tape.constant(Ops.scale(region.gradient, by: Float(config.lambda)))))
            var globalWeights: [Double]?
            if let sG {
                let w = frozen?.global ?? AsymmetricLoss.focusingWeights(logits: sG.value, labels: labels, config: config)
                let global = AsymmetricLoss.evaluate(logits: sG.value, labels: labels, config: config, weights: w)
                value += global.loss
                linear = tape.add(linear, tape.sum(tape.mul(sG, tape.constant(global.gradient))))
                globalWeights = w
            }
            let offset = value - Double(linear.value.scalar)
            let loss = tape.add(tape.reshape(linear, [1]), tape.constant(Tensor([Float(offset)], shape: [1])))
            return (loss, value, FocusingWeights(region: regionWeights, global: globalWeights))
        }
    }
}
