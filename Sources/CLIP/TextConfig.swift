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

        /// The activations the towers implement.
        public static let supportedActivations = Activation.names

        /// The activation `hidden_act` names (after `validate`, always one of `supportedActivations`).
        public var activation: Activation { Activation(rawValue: hiddenAct) ?? .geluPytorchTanh }

        /// Refuses a config no CLIP text tower has, naming the key (`prefix` + its Hugging Face name), so that nothing
        /// degenerate reaches a trap or yields silent garbage.
        public func validate(file: String, prefix: String = "") throws {
            func fail(_ key: CodingKeys, _ message: String) -> CheckpointError {
                CheckpointError("\(file): \(prefix)\(key.rawValue) \(message). Fix config.json (a CLIP checkpoint's, as transformers writes it).")
            }
            let limit = 1 << 20
            let sizes: [(CodingKeys, Int, Int)] = [
                (.hiddenSize, hiddenSize, 1), (.intermediateSize, intermediateSize, 1), (.numHiddenLayers, numHiddenLayers, 1),
                (.numAttentionHeads, numAttentionHeads, 1), (.maxPositionEmbeddings, maxPositionEmbeddings, 2),
                (.vocabSize, vocabSize, 1), (.projectionDim, projectionDim, 1),
            ]
            for (key, value, minimum) in sizes {
                guard value >= minimum else { throw fail(key, "is \(value); it must be at least \(minimum)") }
                guard value <= limit else { throw fail(key, "is \(value); more than \(limit) is no CLIP model") }
            }
            guard hiddenSize % numAttentionHeads == 0 else {
                throw fail(.hiddenSize, "(\(hiddenSize)) is not a multiple of \(prefix)num_attention_heads (\(numAttentionHeads))")
            }
            guard layerNormEps.isFinite, layerNormEps > 0 else {
                throw fail(.layerNormEps, "is \(layerNormEps); it must be a small positive number such as 1e-5")
            }
            guard (0..<vocabSize).contains(eosTokenID) else {
                throw fail(.eosTokenID, "is \(eosTokenID), outside the vocabulary (vocab_size \(vocabSize))")
            }
            guard Self.supportedActivations.contains(hiddenAct) else {
                throw fail(.hiddenAct, "'\(hiddenAct)' is not supported (\(Self.supportedActivations.joined(separator: ", ")) are)")
            }
        }
    }

    /// Reads the text config from a checkpoint's `config.json`: a full `CLIPModel` config (`text_config` plus a
    /// top-level `projection_dim`) or a `CLIPTextModelWithProjection` config (the text config itself), and validates
    /// every field.
    ///
    /// For a `CLIPModel` the top-level `projection_dim` is the width the model uses: transformers 5 writes the
    /// sub-config's default (512) into `text_config` next to the model's real value, so the top level wins.
    public static func loadTextConfig(directory: URL) throws -> TextConfig {
        let url = directory.appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: url) else {
            throw CheckpointError("\(url.path): missing. A CLIP checkpoint folder holds config.json, model.safetensors, vocab.json and merges.txt.")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CheckpointError("\(url.path): not a JSON object.")
        }
        var fields = object
        var prefix = ""
        if let nested = object["text_config"] {
            guard var text = nested as? [String: Any] else { throw CheckpointError("\(url.path): text_config is not an object.") }
            if let projection = object["projection_dim"] { text["projection_dim"] = projection }
            fields = text
            prefix = "text_config."
        }
        let config: TextConfig
        do {
            config = try JSONDecoder().decode(TextConfig.self, from: JSONSerialization.data(withJSONObject: fields))
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.dataCorrupted(context) {
            let key = context.codingPath.last?.stringValue ?? "a field"
            let shown = key == "projection_dim" && object["text_config"] != nil ? key : prefix + key
            throw CheckpointError("\(url.path): \(shown) has the wrong type (\(context.debugDescription)). Fix config.json.")
        } catch {
            throw CheckpointError("\(url.path): cannot read the text config: \(error)")
        }
        try config.validate(file: url.path, prefix: prefix)
        return config
    }
}

/// A checkpoint that cannot be used, with a message naming the file, the key and what is wrong.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
