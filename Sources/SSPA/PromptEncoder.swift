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
        /// Token plus position embeddings of the shared prefix `[SOT] u_1…u_n`, `[n + 1, D]`, with zeros (plus
        /// position embeddings) at the context slots.
        let prefixEmbeddings: Tensor
        /// Token plus position embeddings of every label's own tokens (positions `n + 1 ..< L`), `[C·(L − n − 1), D]`.
        let suffixEmbeddings: Tensor

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
            let prefix = nCtx + 1
            self.prefixEmbeddings = Ops.slice(Ops.slice(base, axis: 0, range: 0..<1).reshaped([length, width]),
                                              axis: 0, range: 0..<prefix)
            self.suffixEmbeddings = Ops.slice(base, axis: 1, range: prefix..<length)
                .reshaped([padded.count * (length - prefix), width])
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
        ///
        /// Two exact savings over running every padded sequence through every layer, both from the causal mask:
        /// - The prefix `[SOT] u_1…u_n` is the same for every label of a prompt and sees nothing after it, so its
        ///   hidden states are computed once per prompt; each label runs only its own tokens, attending to the
        ///   shared prefix's keys and values (`queryOffset`). With names of a few tokens this halves the tower.
        /// - Only the pooled state leaves the tower, so the last layer runs its query, output projection and MLP on
        ///   the pooled row alone (its keys and values still cover the whole sequence, masked after the pool index).
        // scripts/sspa_reference.py, TextTower.__call__ and encode_hidden; transformers CLIPTextTransformer.forward
        public func encode(_ contexts: [Variable]) -> [Variable] {
            precondition(!contexts.isEmpty, "PromptEncoder.encode: no contexts")
            let tape = contexts[0].tape
            let width = textModel.config.hiddenSize, c = labelCount, length = sequenceLength, n = contexts.count
            for context in contexts {
                precondition(context.shape == [nCtx, width], "PromptEncoder: context must be [\(nCtx), \(width)], got \(context.shape)")
            }
            let prefix = nCtx + 1, suffix = length - prefix, rows = n * c
            let heads = textModel.config.numAttentionHeads, eps = textModel.config.layerNormEps

            // Prefix rows [n·prefix, D]: SOT then the context vectors, a gather from [ctx_1; …; ctx_n; 0], plus the
            // SOT embedding and position embeddings.
            let table = tape.concat(contexts + [tape.constant(Tensor(zeros: [1, width]))], axis: 0)
            var slots: [Int32] = []
            slots.reserveCapacity(n * prefix)
            for p in 0..<n {
                slots.append(Int32(n * nCtx))
                for t in 0..<nCtx { slots.append(Int32(p * nCtx + t)) }
            }
            var xPre = tape.add(tape.reshape(tape.embedding(table, ids: slots), [n, prefix, width]),
                                tape.constant(prefixEmbeddings))
            xPre = tape.reshape(xPre, [n * prefix, width])
            // Label rows [n·C·suffix, D]: fixed tokens, so a constant until the first attention mixes in the prefix.
            var xSuf = tape.constant(n == 1 ? suffixEmbeddings : Ops.concat(Array(repeating: suffixEmbeddings, count: n), axis: 0))
            // Row r = p·C + c of the label stream sees prompt p's prefix: its keys and values, tiled per label, then
            // its own (`wholeSequence` builds `[rows, L, D]` from the two streams' keys or values).
            var tile: [Int32] = []
            tile.reserveCapacity(rows * prefix)
            for r in 0..<rows { for t in 0..<prefix { tile.append(Int32((r / c) * prefix + t)) } }
            func wholeSequence(_ pre: Variable, _ suf: Variable) -> Variable {
                tape.concat([tape.reshape(tape.embedding(pre, ids: tile), [rows, prefix, width]),
                             tape.reshape(suf, [rows, suffix, width])], axis: 1)
            }
            func constant(_ t: Tensor) -> Variable { tape.constant(t) }
            /// The residual attention output projection and the MLP block.
            func finishBlock(_ x: Variable, _ attended: Variable, _ layer: CLIP.TextModel.Layer) -> Variable {
                let x = tape.add(x, tape.linear(tape.reshape(attended, [x.shape[0], width]),
                                                weight: constant(layer.outWeight), bias: constant(layer.outBias)))
                let h = tape.layerNorm(x, weight: constant(layer.norm2Weight), bias: constant(layer.norm2Bias), eps: eps)
                let inner = activate(tape.linear(h, weight: constant(layer.fc1Weight), bias: constant(layer.fc1Bias)))
                return tape.add(x, tape.linear(inner, weight: constant(layer.fc2Weight), bias: constant(layer.fc2Bias)))
            }

            // Rows of the label stream holding the pooled (EOT) states.
            let poolRows = (0..<rows).map { r in r * suffix + poolIndices[r % c] - prefix }
            var final: Variable?
            for (index, layer) in textModel.layers.enumerated() {
                let hPre = tape.layerNorm(xPre, weight: constant(layer.norm1Weight), bias: constant(layer.norm1Bias), eps: eps)
                let hSuf = tape.layerNorm(xSuf, weight: constant(layer.norm1Weight), bias: constant(layer.norm1Bias), eps: eps)
                func project(_ h: Variable, _ w: Tensor, _ b: Tensor) -> Variable {
                    tape.linear(h, weight: constant(w), bias: constant(b))
                }
                let kPre = project(hPre, layer.kWeight, layer.kBias), vPre = project(hPre, layer.vWeight, layer.vBias)
                let keys = wholeSequence(kPre, project(hSuf, layer.kWeight, layer.kBias))
                let values = wholeSequence(vPre, project(hSuf, layer.vWeight, layer.vBias))
                if index < textModel.layers.count - 1 {
                    // The prefix attends to itself; each label's tokens to the prefix and to themselves.
                    let attPre = tape.attention(query: tape.reshape(project(hPre, layer.qWeight, layer.qBias), [n, prefix, width]),
                                                key: tape.reshape(kPre, [n, prefix, width]),
                                                value: tape.reshape(vPre, [n, prefix, width]), heads: heads, causal: true)
                    let attSuf = tape.attention(query: tape.reshape(project(hSuf, layer.qWeight, layer.qBias), [rows, suffix, width]),
                                                key: keys, value: values, heads: heads, causal: true, queryOffset: prefix)
                    xPre = finishBlock(xPre, attPre, layer)
                    xSuf = finishBlock(xSuf, attSuf, layer)
                } else {
                    // Last layer: only the pooled rows go on; the keys after each pool index are masked.
                    var mask: [Bool] = []
                    mask.reserveCapacity(rows * length)
                    for r in 0..<rows { for t in 0..<length { mask.append(t > poolIndices[r % c]) } }
                    let query = project(tape.embedding(hSuf, ids: poolRows), layer.qWeight, layer.qBias)
                    let attended = tape.attention(query: tape.reshape(query, [rows, 1, width]), key: keys, value: values,
                                                  heads: heads, keyPaddingMask: mask)
                    final = finishBlock(tape.embedding(xSuf, ids: poolRows), attended, layer)
                }
            }
            // The final LayerNorm is row-wise, so normalising only the pooled rows is exact.
            let pooled = tape.layerNorm(final ?? tape.embedding(xSuf, ids: poolRows),
                                        weight: constant(textModel.finalNormWeight),
                                        bias: constant(textModel.finalNormBias), eps: eps)
            let projected = tape.linear(pooled, weight: constant(textModel.projection))
            if n == 1 { return [projected] }
            return (0..<n).map { tape.slice(projected, axis: 0, range: ($0 * c)..<(($0 + 1) * c)) }
        }

        /// The tower's MLP activation (`hidden_act`) on the tape.
        // CLIP.TextModel.activate
        func activate(_ x: Variable) -> Variable {
            textModel.config.activation.apply(x)
        }
    }
}
