import CLIP
import Foundation
import Tensor

extension SSPA {
    /// The frozen CLIP text tower on a `Tape`, fed with learnable context vectors: `E_t(U, c)` for every label `c`.
    ///
    /// Each label's sequence is `[SOT] u1..u_n <tokens of display name> . [EOT]`, padded with EOT to the longest
    /// label, never to 77; context vectors replace the token embeddings at positions 1…n (position embeddings are
    /// added to them as to tokens); pooling is at the first EOT after the name, found from lengths. Every CLIP weight
    /// is a tape constant, so gradients flow only into the context vectors. The output is `text_projection` of the
    /// pooled state, not normalised.
    public final class PromptEncoder: @unchecked Sendable {
        /// The frozen text tower whose weights are read.
        public let textModel: CLIP.TextModel
        /// Context vectors per prompt.
        public let nCtx: Int
        /// Token ids per label, `-1` at the context slots, padded with EOT to a common length.
        public let sequences: [[Int32]]
        /// Pooling index per label (the EOT after the name).
        public let poolIndices: [Int]
        /// Token plus position embeddings `[C, L, D]`, with zeros (plus position embeddings) at the context slots.
        let baseEmbeddings: Tensor

        /// Labels number `C`.
        public var labelCount: Int { sequences.count }
        /// Padded sequence length `L`.
        public var sequenceLength: Int { sequences.first?.count ?? 0 }

        /// Builds the sequences of `nameTokenIDs` (each label's display-name tokens without start/end tokens) and
        /// `dotTokenIDs` (the tokens of "."), as `scripts/sspa_reference.py`'s `TextTower.layout`.
        // scripts/sspa_reference.py, TextTower.layout
        public init(textModel: CLIP.TextModel, nameTokenIDs: [[Int32]], dotTokenIDs: [Int32], nCtx: Int,
                    startTokenID: Int32 = 49406) throws {
            guard !nameTokenIDs.isEmpty else { throw ConfigError("PromptEncoder: no labels") }
            guard nCtx >= 1 else { throw ConfigError("PromptEncoder: n_ctx must be at least 1") }
            let eos = Int32(textModel.config.eosTokenID)
            let raw = nameTokenIDs.map { [startTokenID] + Array(repeating: Int32(-1), count: nCtx) + $0 + dotTokenIDs + [eos] }
            let length = raw.map(\.count).max() ?? 0
            guard length <= textModel.config.maxPositionEmbeddings else {
                throw ConfigError("PromptEncoder: a label's prompt has \(length) tokens, the text model has \(textModel.config.maxPositionEmbeddings) positions")
            }
            let padded = raw.map { $0 + Array(repeating: eos, count: length - $0.count) }
            let width = textModel.config.hiddenSize
            let ids = padded.flatMap { $0.map { max($0, 0) } }
            var base = Ops.embedding(textModel.tokenEmbedding, ids: ids, idsShape: [padded.count, length])
            base.withUnsafeMutableBufferPointer { p in
                for (c, sequence) in padded.enumerated() {
                    for (t, id) in sequence.enumerated() where id < 0 {
                        let start = (c * length + t) * width
                        for j in 0..<width { p[start + j] = 0 }
                    }
                }
            }
            Ops.addInPlace(&base, Ops.slice(textModel.positionEmbedding, axis: 0, range: 0..<length))
            self.textModel = textModel
            self.nCtx = nCtx
            self.sequences = padded
            self.poolIndices = raw.map { $0.count - 1 }
            self.baseEmbeddings = base
        }

        /// The prompts of `displayNames`, tokenized by `tokenizer` (the name's tokens, then those of ".").
        public convenience init(textModel: CLIP.TextModel, tokenizer: CLIP.Tokenizer, displayNames: [String],
                                nCtx: Int) throws {
            try self.init(textModel: textModel, nameTokenIDs: tokenizer.encode(displayNames),
                          dotTokenIDs: tokenizer.encode("."), nCtx: nCtx, startTokenID: tokenizer.startOfTextID)
        }

        /// The token embeddings `[n, D]` of `text` (e.g. "a photo of a"), the initial context vectors; throws unless
        /// the text has exactly `nCtx` tokens.
        public func contextEmbeddings(text: String, tokenizer: CLIP.Tokenizer) throws -> Tensor {
            let ids = tokenizer.encode(text)
            guard ids.count == nCtx else {
                throw ConfigError("PromptEncoder: \"\(text)\" has \(ids.count) tokens, n_ctx is \(nCtx)")
            }
            return contextEmbeddings(ids: ids)
        }

        /// The token embeddings `[n, D]` of `ids` (e.g. those of "a photo of a"), the initial context vectors.
        public func contextEmbeddings(ids: [Int32]) -> Tensor {
            Ops.embedding(textModel.tokenEmbedding, ids: ids)
        }

        /// `E_t(context, c)` for every label, `[C, d]`; `context` is `[nCtx, D]`.
        public func encode(_ context: Variable) -> Variable {
            encode([context])[0]
        }

        /// `E_t` of several prompts in one pass through the tower (the CAP and global prompts of a step share their
        /// matrix products); returns one `[C, d]` per context, in order.
        // scripts/sspa_reference.py, TextTower.__call__ and encode_hidden; transformers CLIPTextTransformer.forward
        public func encode(_ contexts: [Variable]) -> [Variable] {
            precondition(!contexts.isEmpty, "PromptEncoder.encode: no contexts")
            let tape = contexts[0].tape
            let width = textModel.config.hiddenSize, c = labelCount, length = sequenceLength, n = contexts.count
            for context in contexts {
                precondition(context.shape == [nCtx, width], "PromptEncoder: context must be [\(nCtx), \(width)], got \(context.shape)")
            }
            // Context vectors scattered into their slots: a gather from [ctx_1; …; ctx_n; 0].
            let table = tape.concat(contexts + [tape.constant(Tensor(zeros: [1, width]))], axis: 0)
            let zeroRow = n * nCtx
            var slots: [Int32] = []
            slots.reserveCapacity(n * c * length)
            for p in 0..<n {
                for _ in 0..<c {
                    for t in 0..<length {
                        slots.append(t >= 1 && t <= nCtx ? Int32(p * nCtx + t - 1) : Int32(zeroRow))
                    }
                }
            }
            let placed = tape.embedding(table, ids: slots, idsShape: [n * c, length])
            let base = n == 1 ? baseEmbeddings : Ops.concat(Array(repeating: baseEmbeddings, count: n), axis: 0)
            let rows = n * c
            var x = tape.reshape(tape.add(placed, tape.constant(base)), [rows * length, width])
            let eps = textModel.config.layerNormEps
            for layer in textModel.layers {
                let h = tape.layerNorm(x, weight: tape.constant(layer.norm1Weight), bias: tape.constant(layer.norm1Bias), eps: eps)
                let q = tape.linear(h, weight: tape.constant(layer.qWeight), bias: tape.constant(layer.qBias))
                let k = tape.linear(h, weight: tape.constant(layer.kWeight), bias: tape.constant(layer.kBias))
                let v = tape.linear(h, weight: tape.constant(layer.vWeight), bias: tape.constant(layer.vBias))
                let attended = tape.attention(query: tape.reshape(q, [rows, length, width]),
                                              key: tape.reshape(k, [rows, length, width]),
                                              value: tape.reshape(v, [rows, length, width]),
                                              heads: textModel.config.numAttentionHeads, causal: true)
                x = tape.add(x, tape.linear(tape.reshape(attended, [rows * length, width]),
                                            weight: tape.constant(layer.outWeight), bias: tape.constant(layer.outBias)))
                let h2 = tape.layerNorm(x, weight: tape.constant(layer.norm2Weight), bias: tape.constant(layer.norm2Bias), eps: eps)
                let inner = activate(tape.linear(h2, weight: tape.constant(layer.fc1Weight), bias: tape.constant(layer.fc1Bias)))
                x = tape.add(x, tape.linear(inner, weight: tape.constant(layer.fc2Weight), bias: tape.constant(layer.fc2Bias)))
            }
            // The final LayerNorm is row-wise, so pooling first and normalising only the pooled rows is exact.
            var pool: [Int] = []
            pool.reserveCapacity(rows)
            for r in 0..<rows { pool.append(r * length + poolIndices[r % c]) }
            let pooled = tape.layerNorm(tape.embedding(x, ids: pool), weight: tape.constant(textModel.finalNormWeight),
                                        bias: tape.constant(textModel.finalNormBias), eps: eps)
            let projected = tape.linear(pooled, weight: tape.constant(textModel.projection))
            if n == 1 { return [projected] }
            return (0..<n).map { tape.slice(projected, axis: 0, range: ($0 * c)..<(($0 + 1) * c)) }
        }

        /// The tower's MLP activation (`hidden_act`) on the tape.
        // CLIP.TextModel.activate
        func activate(_ x: Variable) -> Variable {
            switch textModel.config.hiddenAct {
            case "quick_gelu": return x.tape.quickGELU(x)
            case "gelu": return x.tape.gelu(x, approximation: .exact)
            default: return x.tape.gelu(x, approximation: .tanh)
            }
        }
    }
}
