import Foundation
import Tensor

extension CLIP {
    /// The vision tower's hyper-parameters, with Hugging Face's names.
    public struct VisionConfig: Codable, Sendable, Hashable {
        public var hiddenSize: Int
        public var intermediateSize: Int
        public var numHiddenLayers: Int
        public var numAttentionHeads: Int
        public var imageSize: Int
        public var patchSize: Int
        public var numChannels: Int
        public var hiddenAct: String
        /// The activation `hidden_act` names (the model refuses any other name when it loads).
        public var activation: Activation { Activation(rawValue: hiddenAct) ?? .geluPytorchTanh }
        public var layerNormEps: Float
        public var projectionDim: Int

        enum CodingKeys: String, CodingKey {
            case hiddenSize = "hidden_size", intermediateSize = "intermediate_size", numHiddenLayers = "num_hidden_layers"
            case numAttentionHeads = "num_attention_heads", imageSize = "image_size", patchSize = "patch_size"
            case numChannels = "num_channels", hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps"
            case projectionDim = "projection_dim"
        }

        /// Hugging Face's `CLIPVisionConfig` defaults fill keys a config leaves out.
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? 768
            intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? 3072
            numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? 12
            numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? 12
            imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? 224
            patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? 32
            numChannels = try c.decodeIfPresent(Int.self, forKey: .numChannels) ?? 3
            hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "quick_gelu"
            layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? 1e-5
            projectionDim = try c.decodeIfPresent(Int.self, forKey: .projectionDim) ?? 512
        }

        /// Patches per side.
        public var grid: Int { imageSize / patchSize }

        /// Throws, naming the `vision_config` key, unless every field can run: positive sizes within bounds no real
        /// CLIP approaches (so no product overflows), heads dividing the width, a patch no larger than the image,
        /// three channels (the preprocessing makes RGB) and a finite positive `layer_norm_eps`.
        public func validate(file: String) throws {
            func fail(_ key: String, _ value: Any, _ rule: String) -> CheckpointError {
                CheckpointError("\(file): vision_config.\(key) is \(value); it must be \(rule).")
            }
            let bounded: [(String, Int, ClosedRange<Int>)] = [
                ("hidden_size", hiddenSize, 1...65_536), ("intermediate_size", intermediateSize, 1...262_144),
                ("num_hidden_layers", numHiddenLayers, 1...1_000), ("num_attention_heads", numAttentionHeads, 1...4_096),
                ("image_size", imageSize, 1...16_384), ("patch_size", patchSize, 1...16_384),
                ("projection_dim", projectionDim, 1...65_536),
            ]
            for (key, value, range) in bounded where !range.contains(value) {
                throw fail(key, value, "from \(range.lowerBound) to \(range.upperBound)")
            }
            guard hiddenSize % numAttentionHeads == 0 else {
                throw fail("num_attention_heads", numAttentionHeads, "a divisor of hidden_size (\(hiddenSize))")
            }
            guard patchSize <= imageSize else { throw fail("patch_size", patchSize, "at most image_size (\(imageSize))") }
            guard grid * grid <= 1 << 20 else { throw fail("patch_size", patchSize, "large enough that (image_size / patch_size)² stays under 2²⁰ patches") }
            guard numChannels == 3 else { throw fail("num_channels", numChannels, "3 (images are decoded as RGB)") }
            guard layerNormEps.isFinite, layerNormEps > 0 else { throw fail("layer_norm_eps", layerNormEps, "a finite positive number") }
        }
    }

    /// Reads the vision config from `config.json`: `vision_config` of a `CLIPModel`, or a vision-only config.
    public static func loadVisionConfig(directory: URL) throws -> VisionConfig {
        let url = directory.appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: url), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CheckpointError("\(url.path): missing or not a JSON object. A CLIP checkpoint folder holds config.json and model.safetensors.")
        }
        do {
            var vision = (object["vision_config"] as? [String: Any]) ?? object
            if vision["projection_dim"] == nil, let projection = object["projection_dim"] { vision["projection_dim"] = projection }
            let config = try JSONDecoder().decode(VisionConfig.self, from: JSONSerialization.data(withJSONObject: vision))
            try config.validate(file: url.path)
            return config
        } catch let error as CheckpointError {
            throw error
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.dataCorrupted(context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw CheckpointError("\(url.path): vision_config.\(key) cannot be read: \(context.debugDescription)")
        } catch {
            throw CheckpointError("\(url.path): cannot read the vision config: \(error)")
        }
    }

    /// How region features are taken from the last block.
    public enum RegionMode: String, Sendable, CaseIterable {
        /// The patch tokens after the last block (through `post_layernorm` and `visual_projection`).
        case patch
        /// MaskCLIP's value path: the last block's value projection and output projection of each token's own
        /// (LayerNormed) input, with no attention mixing, residual or MLP; better localised.
        case value
    }

    /// CLIP's vision tower with its projection: patch embedding (a stride-`p` convolution run as one matmul over
    /// unfolded patches), class and position embeddings, `pre_layrnorm`, pre-LN blocks without a mask,
    /// `post_layernorm` and `visual_projection`.
    public final class VisionModel: @unchecked Sendable {
        public let config: VisionConfig
        let patchWeight: Tensor // [D, C·p·p]
        let classEmbedding: Tensor
        let positionEmbedding: Tensor
        let preNormWeight, preNormBias, postNormWeight, postNormBias: Tensor
        let layers: [TextModel.Layer]
        let projection: Tensor

        /// The outputs SSPA uses (SSPA-SPEC.md, "Inputs").
        public struct Output: Sendable {
            /// `[B, P]`: `visual_projection(post_layernorm(cls))`, the CLIP image embedding.
            public var x0: Tensor
            /// `[B, M, P]`: the patch tokens through `post_layernorm` and `visual_projection`.
            public var regions: Tensor
            /// `[B, 1+M, D]`: the last block's output (transformers' `last_hidden_state`, before `post_layernorm`).
            public var lastHiddenState: Tensor
        }

        public convenience init(directory: URL) throws {
            try self.init(config: CLIP.loadVisionConfig(directory: directory), checkpoint: Checkpoint(directory: directory))
        }

        // transformers CLIPVisionTransformer.__init__: key names and shapes
        public init(config: VisionConfig, checkpoint: Checkpoint) throws {
            guard Activation(rawValue: config.hiddenAct) != nil else {
                throw CheckpointError("\(checkpoint.directory.path)/config.json: vision hidden_act '\(config.hiddenAct)' is not supported.")
            }
            try config.validate(file: checkpoint.directory.appendingPathComponent("config.json").path)
            self.config = config
            let d = config.hiddenSize, f = config.intermediateSize, p = config.patchSize, c = config.numChannels
            // Weights enter here: a NaN or infinity is named now, not discovered as NaN features later.
            func finite(_ tensor: Tensor, _ key: String) throws -> Tensor {
                let bad = tensor.withUnsafeBufferPointer { p in p.firstIndex { !$0.isFinite }.map { (index: $0, nan: p[$0].isNaN) } }
                if let bad {
                    throw CheckpointError("\(checkpoint.directory.path): vision tensor '\(key)' holds \(bad.nan ? "NaN" : "an infinite value") (element \(bad.index)); the checkpoint is damaged.")
                }
                return tensor
            }
            func t(_ key: String, _ shape: [Int]) throws -> Tensor {
                try finite(checkpoint.tensor(anyOf: ["vision_model." + key, key], shape: shape), key)
            }
            patchWeight = try t("embeddings.patch_embedding.weight", [d, c, p, p]).reshaped([d, c * p * p])
            classEmbedding = try t("embeddings.class_embedding", [d])
            positionEmbedding = try t("embeddings.position_embedding.weight", [config.grid * config.grid + 1, d])
            preNormWeight = try t("pre_layrnorm.weight", [d])
            preNormBias = try t("pre_layrnorm.bias", [d])
            layers = try (0..<config.numHiddenLayers).map { i in
                let k = "encoder.layers.\(i)."
                return TextModel.Layer(
                    norm1Weight: try t(k + "layer_norm1.weight", [d]), norm1Bias: try t(k + "layer_norm1.bias", [d]),
                    qWeight: try t(k + "self_attn.q_proj.weight", [d, d]), qBias: try t(k + "self_attn.q_proj.bias", [d]),
                    kWeight: try t(k + "self_attn.k_proj.weight", [d, d]), kBias: try t(k + "self_attn.k_proj.bias", [d]),
                    vWeight: try t(k + "self_attn.v_proj.weight", [d, d]), vBias: try t(k + "self_attn.v_proj.bias", [d]),
                    outWeight: try t(k + "self_attn.out_proj.weight", [d, d]), outBias: try t(k + "self_attn.out_proj.bias", [d]),
                    norm2Weight: try t(k + "layer_norm2.weight", [d]), norm2Bias: try t(k + "layer_norm2.bias", [d]),
                    fc1Weight: try t(k + "mlp.fc1.weight", [f, d]), fc1Bias: try t(k + "mlp.fc1.bias", [f]),
                    fc2Weight: try t(k + "mlp.fc2.weight", [d, f]), fc2Bias: try t(k + "mlp.fc2.bias", [d]))
            }
            postNormWeight = try t("post_layernorm.weight", [d])
            postNormBias = try t("post_layernorm.bias", [d])
            projection = try finite(checkpoint.tensor("visual_projection.weight", shape: [config.projectionDim, d]), "visual_projection.weight")
        }

        /// Unfolds `[B, C, H, W]` pixels into `[B·M, C·p·p]` patch rows in the convolution weight's (c, y, x) order.
        func unfold(_ pixels: Tensor) -> Tensor {
            let b = pixels.shape[0], c = config.numChannels, s = config.imageSize, p = config.patchSize, g = config.grid
            return Tensor(unsafeUninitializedShape: [b * g * g, c * p * p]) { out in
                pixels.withUnsafeBufferPointer { src in
                    var o = 0
                    for n in 0..<b {
                        for gy in 0..<g {
                            for gx in 0..<g {
                                for ch in 0..<c {
                                    for y in 0..<p {
                                        let row = ((n * c + ch) * s + gy * p + y) * s + gx * p
                                        for x in 0..<p { out[o] = src[row + x]; o += 1 }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        /// Floats the largest activation of one forward pass (the MLP's `[rows, intermediate]`) may take: 5 M floats
        /// (20 MB), under glibc's 32 MB ceiling for reusing freed heap blocks. Bigger batches run in chunks of images
        /// (8 at ViT-B/16): a larger activation is mmapped afresh and page-faulted in at every layer, which was about
        /// 5 % of perf's samples for whole 32-image batches at one thread (scripts/bench_vision.sh). Images are
        /// independent all the way through, so chunking changes an image's outputs by float rounding at most.
        static let activationBudget = 5 << 20

        /// Images per forward chunk (at least 1); see `activationBudget`.
        var imagesPerChunk: Int {
            let tokens = config.grid * config.grid + 1
            let widest = max(config.intermediateSize, 3 * config.hiddenSize, 1)
            return max(1, Self.activationBudget / (tokens * widest))
        }

        /// Runs the tower on normalised pixels `[B, C, S, S]` (CLIPImageProcessor's `pixel_values`), in chunks of
        /// `imagesPerChunk` images whose outputs are concatenated.
        // transformers CLIPVisionTransformer.forward, CLIPVisionModelWithProjection
        public func encode(_ pixels: Tensor, regions mode: RegionMode = .patch) -> Output {
            let s = config.imageSize
            precondition(pixels.shape == [pixels.shape[0], config.numChannels, s, s], "CLIP.VisionModel: pixels must be [B, \(config.numChannels), \(s), \(s)], got \(pixels.shape)")
            return encode(pixels, regions: mode, imagesPerChunk: imagesPerChunk)
        }

        /// `encode` with an explicit chunk size (tests compare chunked and whole-batch outputs).
        func encode(_ pixels: Tensor, regions mode: RegionMode, imagesPerChunk chunk: Int) -> Output {
            let b = pixels.shape[0]
            guard b > chunk, chunk >= 1 else { return encodeChunk(pixels, regions: mode) }
            let parts = stride(from: 0, to: b, by: chunk).map { start in
                encodeChunk(Ops.slice(pixels, axis: 0, range: start..<min(b, start + chunk)), regions: mode)
            }
            return Output(x0: Ops.concat(parts.map(\.x0), axis: 0), regions: Ops.concat(parts.map(\.regions), axis: 0),
                          lastHiddenState: Ops.concat(parts.map(\.lastHiddenState), axis: 0))
        }

        /// One chunk of images through the tower.
        func encodeChunk(_ pixels: Tensor, regions mode: RegionMode) -> Output {
            let b = pixels.shape[0], d = config.hiddenSize, m = config.grid * config.grid, t = m + 1
            let patches = Ops.linear(unfold(pixels), weight: patchWeight, bias: nil) // [B·M, D]
            // [cls; patches] + positions
            var x = Tensor(unsafeUninitializedShape: [b, t, d]) { out in
                classEmbedding.withUnsafeBufferPointer { cls in
                    patches.withUnsafeBufferPointer { src in
                        for n in 0..<b {
                            for j in 0..<d { out[n * t * d + j] = cls[j] }
                            for i in 0..<(m * d) { out[n * t * d + d + i] = src[n * m * d + i] }
                        }
                    }
                }
            }
            Ops.addInPlace(&x, positionEmbedding)
            x = Ops.layerNorm(x.reshaped([b * t, d]), weight: preNormWeight, bias: preNormBias, eps: config.layerNormEps)
            var valueRegions: Tensor?
            for (index, layer) in layers.enumerated() {
                let h = Ops.layerNorm(x, weight: layer.norm1Weight, bias: layer.norm1Bias, eps: config.layerNormEps)
                let v = Ops.linear(h, weight: layer.vWeight, bias: layer.vBias)
                if mode == .value, index == layers.count - 1 {
                    valueRegions = Ops.linear(v, weight: layer.outWeight, bias: layer.outBias).reshaped([b, t, d])
                }
                let q = Ops.linear(h, weight: layer.qWeight, bias: layer.qBias).reshaped([b, t, d])
                let k = Ops.linear(h, weight: layer.kWeight, bias: layer.kBias).reshaped([b, t, d])
                let attended = Ops.attention(query: q, key: k, value: v.reshaped([b, t, d]), heads: config.numAttentionHeads)
                Ops.addInPlace(&x, Ops.linear(attended.reshaped([b * t, d]), weight: layer.outWeight, bias: layer.outBias))
                let h2 = Ops.layerNorm(x, weight: layer.norm2Weight, bias: layer.norm2Bias, eps: config.layerNormEps)
                var inner = Ops.linear(h2, weight: layer.fc1Weight, bias: layer.fc1Bias)
                config.activation.apply(&inner)
                Ops.addInPlace(&x, Ops.linear(inner, weight: layer.fc2Weight, bias: layer.fc2Bias))
            }
            let last = x.reshaped([b, t, d])
            let normed = Ops.layerNorm(x, weight: postNormWeight, bias: postNormBias, eps: config.layerNormEps).reshaped([b, t, d])
            let projectedAll = Ops.linear(normed.reshaped([b * t, d]), weight: projection, bias: nil).reshaped([b, t, config.projectionDim])
            let x0 = Ops.slice(projectedAll, axis: 1, range: 0..<1).reshaped([b, config.projectionDim])
            var regions = Ops.slice(projectedAll, axis: 1, range: 1..<t)
            if let valueRegions {
                let tokens = Ops.slice(valueRegions, axis: 1, range: 1..<t).reshaped([b * m, d])
                let n = Ops.layerNorm(tokens, weight: postNormWeight, bias: postNormBias, eps: config.layerNormEps)
                regions = Ops.linear(n, weight: projection, bias: nil).reshaped([b, m, config.projectionDim])
            }
            return Output(x0: x0, regions: regions, lastHiddenState: last)
        }
    }
}
