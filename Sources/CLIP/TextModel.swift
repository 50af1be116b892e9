import Foundation
import Tensor

extension CLIP {
    /// CLIP's text tower with its projection, on the CPU: token and position embeddings, pre-LayerNorm transformer
    /// blocks with a causal mask, a final LayerNorm, pooling at the end-of-text token, and `text_projection`.
    ///
    /// Sequences are never padded to 77: a batch is padded to its longest sequence, which is exact because the causal
    /// mask keeps every real position from seeing the padding after it.
    public final class TextModel: @unchecked Sendable {
        /// One transformer block's weights, with transformers' layouts (linear weights `[out, in]`).
        public struct Layer: Sendable {
            public var norm1Weight, norm1Bias: Tensor
            public var qWeight, qBias, kWeight, kBias, vWeight, vBias, outWeight, outBias: Tensor
            public var norm2Weight, norm2Bias: Tensor
            public var fc1Weight, fc1Bias, fc2Weight, fc2Bias: Tensor
        }

        public let config: TextConfig
        public let tokenEmbedding: Tensor
        public let positionEmbedding: Tensor
        public let layers: [Layer]
        public let finalNormWeight, finalNormBias: Tensor
        /// `text_projection.weight`, `[projection_dim, hidden_size]`.
        public let projection: Tensor

        /// The output of a batch.
        public struct Output: Sendable {
            /// `[B, D]`: the final-LayerNorm state at each sequence's end-of-text token.
            public var pooled: Tensor
            /// `[B, P]`: `pooled` through `text_projection` (not normalised), the CLIP text embedding.
            public var embeddings: Tensor
        }

        /// Loads the text tower from a Hugging Face checkpoint folder (`CLIPModel` or `CLIPTextModelWithProjection`).
        public convenience init(directory: URL) throws {
            try self.init(config: CLIP.loadTextConfig(directory: directory), checkpoint: Checkpoint(directory: directory))
        }

        // transformers CLIPTextTransformer.__init__: key names and shapes
        public init(config: TextConfig, checkpoint: Checkpoint) throws {
            try config.validate(file: checkpoint.directory.appendingPathComponent("config.json").path)
            self.config = config
            let d = config.hiddenSize, f = config.intermediateSize
            func t(_ key: String, _ shape: [Int]) throws -> Tensor {
                try checkpoint.tensor(anyOf: ["text_model." + key, key], shape: shape)
            }
            tokenEmbedding = try t("embeddings.token_embedding.weight", [config.vocabSize, d])
            positionEmbedding = try t("embeddings.position_embedding.weight", [config.maxPositionEmbeddings, d])
            layers = try (0..<config.numHiddenLayers).map { i in
                let p = "encoder.layers.\(i)."
                return Layer(
                    norm1Weight: try t(p + "layer_norm1.weight", [d]), norm1Bias: try t(p + "layer_norm1.bias", [d]),
                    qWeight: try t(p + "self_attn.q_proj.weight", [d, d]), qBias: try t(p + "self_attn.q_proj.bias", [d]),
                    kWeight: try t(p + "self_attn.k_proj.weight", [d, d]), kBias: try t(p + "self_attn.k_proj.bias", [d]),
                    vWeight: try t(p + "self_attn.v_proj.weight", [d, d]), vBias: try t(p + "self_attn.v_proj.bias", [d]),
                    outWeight: try t(p + "self_attn.out_proj.weight", [d, d]), outBias: try t(p + "self_attn.out_proj.bias", [d]),
                    norm2Weight: try t(p + "layer_norm2.weight", [d]), norm2Bias: try t(p + "layer_norm2.bias", [d]),
                    fc1Weight: try t(p + "mlp.fc1.weight", [f, d]), fc1Bias: try t(p + "mlp.fc1.bias", [f]),
                    fc2Weight: try t(p + "mlp.fc2.weight", [d, f]), fc2Bias: try t(p + "mlp.fc2.bias", [d]))
            }
            finalNormWeight = try t("final_layer_norm.weight", [d])
            finalNormBias = try t("final_layer_norm.bias", [d])
            projection = try checkpoint.tensor("text_projection.weight", shape: [config.projectionDim, d])
        }

        /// Token embeddings `[B, T, D]` of id sequences, right-padded with the end-of-text id to the longest.
        public func embed(_ sequences: [[Int32]]) -> Tensor {
            let length = sequences.map(\.count).max() ?? 0
            var ids: [Int32] = []
            ids.reserveCapacity(sequences.count * length)
            for sequence in sequences {
                ids += sequence
                ids += repeatElement(Int32(config.eosTokenID), count: length - sequence.count)
            }
            return Ops.embedding(tokenEmbedding, ids: ids, idsShape: [sequences.count, length])
        }

        /// Encodes token id sequences (each with its start and end tokens, at most `max_position_embeddings` long).
        /// Pooling is at each sequence's first end-of-text token, as transformers does for `eos_token_id` 49407.
        public func encode(_ sequences: [[Int32]]) -> Output {
            precondition(!sequences.isEmpty, "CLIP.TextModel.encode: no sequences")
            let eos = Int32(config.eosTokenID)
            let positions = sequences.map { $0.firstIndex(of: eos) ?? ($0.count - 1) }
            return forward(embeddings: embed(sequences), poolAt: positions)
        }

        /// Encodes sequences of length-sorted buckets of at most `batchSize`, returning rows in input order.
        /// Bucketing by length keeps padding, and so wasted work, small.
        public func encode(_ sequences: [[Int32]], batchSize: Int) -> Output {
            let order = sequences.indices.sorted { sequences[$0].count < sequences[$1].count }
            var pooled = Tensor(zeros: [sequences.count, config.hiddenSize])
            var embeddings = Tensor(zeros: [sequences.count, config.projectionDim])
            var start = 0
            while start < order.count {
                let chunk = Array(order[start..<(start + min(max(batchSize, 1), order.count - start))])
                let out = encode(chunk.map { sequences[$0] })
                out.pooled.withUnsafeBufferPointer { src in
                    pooled.withUnsafeMutableBufferPointer { dst in
                        for (row, index) in chunk.enumerated() {
                            for j in 0..<config.hiddenSize { dst[index * config.hiddenSize + j] = src[row * config.hiddenSize + j] }
                        }
                    }
                }
                out.embeddings.withUnsafeBufferPointer { src in
                    embeddings.withUnsafeMutableBufferPointer { dst in
                        for (row, index) in chunk.enumerated() {
                            for j in 0..<config.projectionDim { dst[index * config.projectionDim + j] = src[row * config.projectionDim + j] }
                        }
                    }
                }
                start += chunk.count
            }
            return Output(pooled: pooled, embeddings: embeddings)
        }

        /// The forward pass from token embeddings `[B, T, D]`, pooled at `poolAt[b]`. This is the entry point for
        /// learnable prompts, whose context vectors replace word embeddings.
        // transformers CLIPTextTransformer.forward
        public func forward(embeddings: Tensor, poolAt positions: [Int]) -> Output {
            let hidden = hiddenStates(embeddings: embeddings)
            let b = embeddings.shape[0], t = embeddings.shape[1], d = config.hiddenSize
            precondition(positions.count == b && positions.allSatisfy { $0 >= 0 && $0 < t }, "CLIP.TextModel.forward: bad pooling positions")
            var pooled = Tensor(zeros: [b, d])
            hidden.withUnsafeBufferPointer { src in
                pooled.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<b {
                        let from = (i * t + positions[i]) * d
                        for j in 0..<d { dst[i * d + j] = src[from + j] }
                    }
                }
            }
            return Output(pooled: pooled, embeddings: Ops.linear(pooled, weight: projection, bias: nil))
        }

        /// The final-LayerNorm hidden states `[B, T, D]` (transformers' `last_hidden_state`).
        public func hiddenStates(embeddings: Tensor) -> Tensor {
            precondition(embeddings.rank == 3 && embeddings.shape[2] == config.hiddenSize, "CLIP.TextModel: embeddings must be [B, T, \(config.hiddenSize)]")
            let b = embeddings.shape[0], t = embeddings.shape[1], d = config.hiddenSize
            precondition(t <= config.maxPositionEmbeddings, "CLIP.TextModel: \(t) tokens, but the model has \(config.maxPositionEmbeddings) positions")
            var x = embeddings
            Ops.addInPlace(&x, Ops.slice(positionEmbedding, axis: 0, range: 0..<t))
            x = x.reshaped([b * t, d])
            for layer in layers {
                // Pre-LN self-attention with a causal mask.
                let h = Ops.layerNorm(x, weight: layer.norm1Weight, bias: layer.norm1Bias, eps: config.layerNormEps)
                let q = Ops.linear(h, weight: layer.qWeight, bias: layer.qBias).reshaped([b, t, d])
                let k = Ops.linear(h, weight: layer.kWeight, bias: layer.kBias).reshaped([b, t, d])
                let v = Ops.linear(h, weight: layer.vWeight, bias: layer.vBias).reshaped([b, t, d])
                let attended = Ops.attention(query: q, key: k, value: v, heads: config.numAttentionHeads, causal: true)
                Ops.addInPlace(&x, Ops.linear(attended.reshaped([b * t, d]), weight: layer.outWeight, bias: layer.outBias))
                // Pre-LN MLP.
                let h2 = Ops.layerNorm(x, weight: layer.norm2Weight, bias: layer.norm2Bias, eps: config.layerNormEps)
                var inner = Ops.linear(h2, weight: layer.fc1Weight, bias: layer.fc1Bias)
                activate(&inner)
                Ops.addInPlace(&x, Ops.linear(inner, weight: layer.fc2Weight, bias: layer.fc2Bias))
            }
            return Ops.layerNorm(x, weight: finalNormWeight, bias: finalNormBias, eps: config.layerNormEps).reshaped([b, t, d])
        }

        func activate(_ x: inout Tensor) {
            config.activation.apply(&x)
        }
    }
}
