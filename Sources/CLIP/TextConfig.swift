import Foundation

extension CLIP {
    /// The text tower's hyper-parameters, with Hugging Face's names.
    public struct TextConfig: Codable, Sendable, Hashable {
        public var hiddenSize: Int
        public var intermediateSize: Int
        public var numHiddenLayers: Int
        public var numAttentionHeads: Int
        public var maxPositionEmbeddings: Int
        public var vocabSize: Int
        public var hiddenAct: String
        public var layerNormEps: Float
        public var eosTokenID: Int
        /// Width of the joint embedding (`text_projection`'s output).
        public var projectionDim: Int

        enum CodingKeys: String, CodingKey {
            case hiddenSize = "hidden_size"
            case intermediateSize = "intermediate_size"
            case numHiddenLayers = "num_hidden_layers"
            case numAttentionHeads = "num_attention_heads"
            case maxPositionEmbeddings = "max_position_embeddings"
            case vocabSize = "vocab_size"
            case hiddenAct = "hidden_act"
            case layerNormEps = "layer_norm_eps"
            case eosTokenID = "eos_token_id"
            case projectionDim = "projection_dim"
        }

        public init(hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
                    maxPositionEmbeddings: Int = 77, vocabSize: Int = 49408, hiddenAct: String = "quick_gelu",
                    layerNormEps: Float = 1e-5, eosTokenID: Int = 49407, projectionDim: Int) {
            self.hiddenSize = hiddenSize
            self.intermediateSize = intermediateSize
            self.numHiddenLayers = numHiddenLayers
            self.numAttentionHeads = numAttentionHeads
            self.maxPositionEmbeddings = maxPositionEmbeddings
            self.vocabSize = vocabSize
            self.hiddenAct = hiddenAct
            self.layerNormEps = layerNormEps
            self.eosTokenID = eosTokenID
            self.projectionDim = projectionDim
        }

        /// Hugging Face's defaults fill keys a config leaves out (as `CLIPTextConfig` does).
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? 512
            intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? 2048
            numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? 12
            numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? 8
            maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 77
            vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? 49408
            hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "quick_gelu"
            layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? 1e-5
            eosTokenID = try c.decodeIfPresent(Int.self, forKey: .eosTokenID) ?? 49407
            projectionDim = try c.decodeIfPresent(Int.self, forKey: .projectionDim) ?? 512
        }

        public var headDim: Int { hiddenSize / numAttentionHeads }
    }

    /// Reads the text config from a checkpoint's `config.json`: a full `CLIPModel` config (`text_config` plus a
    /// top-level `projection_dim`) or a `CLIPTextModelWithProjection` config (the text config itself).
    public static func loadTextConfig(directory: URL) throws -> TextConfig {
        let url = directory.appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: url) else {
            throw CheckpointError("\(url.path): missing. A CLIP checkpoint folder holds config.json, model.safetensors, vocab.json and merges.txt.")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CheckpointError("\(url.path): not a JSON object.")
        }
        do {
            if let text = object["text_config"] as? [String: Any] {
                var merged = text
                if merged["projection_dim"] == nil, let projection = object["projection_dim"] { merged["projection_dim"] = projection }
                return try JSONDecoder().decode(TextConfig.self, from: JSONSerialization.data(withJSONObject: merged))
            }
            return try JSONDecoder().decode(TextConfig.self, from: data)
        } catch {
            throw CheckpointError("\(url.path): cannot read the text config: \(error)")
        }
    }
}

/// A checkpoint that cannot be used, with a message naming the file, the key and what is wrong.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
