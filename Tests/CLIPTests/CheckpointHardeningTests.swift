import Foundation
import Testing
import Tensor
@testable import CLIP

/// Checkpoints that are broken, degenerate or written by another transformers version (issue 10 C5, C7, C8, C10,
/// D11): each is refused with a message naming the key or tensor, or read as the model means it.
@Suite("CLIP checkpoint hardening")
struct CheckpointHardeningTests {
    static let fixture = TokenizerFixtures.directory.appendingPathComponent("checkpoints/tiny-quickgelu")

    /// A scratch copy of the fp32 fixture checkpoint.
    func copy() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clip-hard-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: Self.fixture, to: dir)
        return dir
    }

    func editConfig(_ dir: URL, _ edit: (inout [String: Any]) -> Void) throws {
        let url = dir.appendingPathComponent("config.json")
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&object)
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: url)
    }

    func editTextConfig(_ dir: URL, _ key: String, _ value: Any) throws {
        try editConfig(dir) { object in
            var text = object["text_config"] as? [String: Any] ?? [:]
            text[key] = value
            object["text_config"] = text
        }
    }

    /// Byte offset of `tensor`'s data in model.safetensors, and the header's text.
    func locate(_ dir: URL, _ tensor: String) throws -> (offset: Int, header: String) {
        let data = try Data(contentsOf: dir.appendingPathComponent("model.safetensors"))
        let length = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = String(decoding: data[8..<(8 + length)], as: UTF8.self)
        let entry = try SafeTensors(path: dir.appendingPathComponent("model.safetensors").path).entry(tensor)
        return (8 + length + entry.offsets.lowerBound, header)
    }

    func patch(_ dir: URL, at offset: Int, _ bytes: [UInt8]) throws {
        let url = dir.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: url)
        data.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
        try data.write(to: url)
    }

    func loadError(_ dir: URL) -> String? {
        do {
            _ = try CLIP.TextModel(directory: dir)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test("C5: the identity covers weights, config, vocabulary and merges, and nothing else")
    func identityCoversEveryFileThatChangesAnEmbedding() throws {
        let dir = try copy()
        defer { try? FileManager.default.removeItem(at: dir) }
        let original = try CLIP.Checkpoint.identity(directory: dir)
        #expect(Set(original.files.keys) == ["model.safetensors", "config.json", "vocab.json", "merges.txt"])
        #expect(original.id != (try SHA256.hex(fileAt: dir.appendingPathComponent("model.safetensors").path)),
                "the id must not be the weights' hash alone")
        // Where it was written from changes no output.
        try editConfig(dir) { $0["transformers_version"] = "9.9.9"; $0["_name_or_path"] = "/elsewhere" }
        #expect(try CLIP.Checkpoint.identity(directory: dir).id == original.id)
        var seen: Set<String> = [original.id]
        try editTextConfig(dir, "layer_norm_eps", 1e-6)
        #expect(seen.insert(try CLIP.Checkpoint.identity(directory: dir).id).inserted, "config.json")
        let merges = dir.appendingPathComponent("merges.txt")
        try (String(contentsOf: merges, encoding: .utf8) + "\n").write(to: merges, atomically: true, encoding: .utf8)
        #expect(seen.insert(try CLIP.Checkpoint.identity(directory: dir).id).inserted, "merges.txt")
        let vocab = dir.appendingPathComponent("vocab.json")
        try (String(contentsOf: vocab, encoding: .utf8) + " ").write(to: vocab, atomically: true, encoding: .utf8)
        #expect(seen.insert(try CLIP.Checkpoint.identity(directory: dir).id).inserted, "vocab.json")
        let (offset, _) = try locate(dir, "text_projection.weight")
        try patch(dir, at: offset, [0, 0, 0, 0])
        #expect(seen.insert(try CLIP.Checkpoint.identity(directory: dir).id).inserted, "model.safetensors")
    }

    @Test("the identity covers preprocessor_config.json when present, by content, and is the same from every path")
    func identityCoversImagePreprocessing() throws {
        let dir = try copy()
        defer { try? FileManager.default.removeItem(at: dir) }
        let without = try CLIP.Checkpoint.identity(directory: dir)
        #expect(without.files[CLIP.Checkpoint.preprocessorConfigName] == nil)
        let url = dir.appendingPathComponent(CLIP.Checkpoint.preprocessorConfigName)
        try Data(#"{"crop_size": 32, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}"#.utf8).write(to: url)
        let with = try CLIP.Checkpoint.identity(directory: dir)
        #expect(with.files[CLIP.Checkpoint.preprocessorConfigName] != nil)
        #expect(with.id != without.id, "another preprocessing makes other image features")
        // Key order and provenance keys change no output, so they change no id.
        try Data(#"{"image_std": [0.25, 0.25, 0.25], "crop_size": 32, "image_mean": [0.5, 0.5, 0.5], "transformers_version": "9"}"#.utf8).write(to: url)
        #expect(try CLIP.Checkpoint.identity(directory: dir).id == with.id)
        try Data(#"{"crop_size": 32, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}"#.utf8).write(to: url)
        #expect(try CLIP.Checkpoint.identity(directory: dir).id != with.id)
        // The loaded checkpoint says the same as the folder.
        #expect(try CLIP.Checkpoint(directory: dir).identity() == (try CLIP.Checkpoint.identity(directory: dir)))
        try Data("{not json".utf8).write(to: url)
        #expect(throws: CheckpointError.self) { try CLIP.Checkpoint.identity(directory: dir) }
    }

    @Test("D11/C8: degenerate text configs are refused naming the key", arguments: [
        ("num_hidden_layers", 0, "text_config.num_hidden_layers is 0"),
        ("num_hidden_layers", -1, "text_config.num_hidden_layers is -1"),
        ("num_attention_heads", 0, "text_config.num_attention_heads is 0"),
        ("num_attention_heads", 3, "not a multiple of text_config.num_attention_heads"),
        ("eos_token_id", 49408, "text_config.eos_token_id is 49408, outside the vocabulary"),
        ("eos_token_id", -5, "text_config.eos_token_id is -5"),
        ("max_position_embeddings", 1, "text_config.max_position_embeddings is 1"),
        ("hidden_size", 1 << 40, "text_config.hidden_size is"),
        ("hidden_act", "swish", "text_config.hidden_act 'swish' is not supported"),
    ] as [(String, any Sendable, String)])
    func degenerateConfigsAreRefused(key: String, value: any Sendable, expected: String) throws {
        let dir = try copy()
        defer { try? FileManager.default.removeItem(at: dir) }
        try editTextConfig(dir, key, value)
        let message = try #require(loadError(dir), "\(key) = \(value) loaded")
        #expect(message.contains(expected), "\(message)")
        #expect(message.contains("config.json"))
    }

    @Test("C8/C7: a negative or zero layer_norm_eps is refused, not turned into NaN vectors")
    func layerNormEpsMustBePositive() throws {
        for value in [-1.0, 0.0] {
            let dir = try copy()
            defer { try? FileManager.default.removeItem(at: dir) }
            try editTextConfig(dir, "layer_norm_eps", value)
            let message = try #require(loadError(dir))
            #expect(message.contains("text_config.layer_norm_eps is"), "\(message)")
        }
    }

    @Test("C8: a config value of the wrong type names its key")
    func wrongTypeNamesTheKey() throws {
        let dir = try copy()
        defer { try? FileManager.default.removeItem(at: dir) }
        try editTextConfig(dir, "num_hidden_layers", "two")
        let message = try #require(loadError(dir))
        #expect(message.contains("text_config.num_hidden_layers has the wrong type"), "\(message)")
    }

    @Test("C10: a CLIPModel follows the top-level projection_dim over text_config's default")
    func topLevelProjectionDimWins() throws {
        let dir = try copy()
        defer { try? FileManager.default.removeItem(at: dir) }
        // What transformers 5 writes: the sub-config's default next to the model's real value.
        try editTextConfig(dir, "projection_dim", 512)
        let model = try CLIP.TextModel(directory: dir)
        #expect(model.config.projectionDim == 16)
        // A top level that disagrees with the weights is refused against their shapes.
        try editConfig(dir) { $0["projection_dim"] = 24 }
        let message = try #require(loadError(dir))
        #expect(message.contains("text_projection.weight") && message.contains("[16, 16]") && message.contains("[24, 16]"), "\(message)")
    }

    @Test("C7: a NaN or infinite weight is refused naming the tensor")
    func nonFiniteWeightsAreNamed() throws {
        for bits: UInt32 in [0x7FC0_0000, 0x7F80_0000] {
            let dir = try copy()
            defer { try? FileManager.default.removeItem(at: dir) }
            let (offset, _) = try locate(dir, "text_model.encoder.layers.1.mlp.fc2.bias")
            try patch(dir, at: offset + 4, withUnsafeBytes(of: bits.littleEndian, Array.init))
            let message = try #require(loadError(dir))
            #expect(message.contains("tensor 'text_model.encoder.layers.1.mlp.fc2.bias' holds NaN or infinite values (first at flat index 1)"), "\(message)")
        }
    }

    @Test("C8: an integer tensor where a float weight belongs is refused")
    func integerWeightsAreRefused() throws {
        let dir = try copy()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: url)
        let (_, header) = try locate(dir, "text_model.final_layer_norm.weight")
        // Same byte length, so the offsets stay right: F32 → I32 for one tensor.
        let range = try #require(header.range(of: #""text_model.final_layer_norm.weight":{"dtype":"F32""#))
        let start = 8 + header.utf8.distance(from: header.startIndex, to: range.upperBound) - 4
        data.replaceSubrange(start..<(start + 3), with: Array("I32".utf8))
        try data.write(to: url)
        let message = try #require(loadError(dir))
        #expect(message.contains("tensor 'text_model.final_layer_norm.weight' is stored as I32"), "\(message)")
    }

    @Test("C8: a safetensors header that names a tensor twice is refused")
    func repeatedTensorNamesAreRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-dup-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: dir) }
        let header = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}, "x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"\u0077":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        var data = Data(withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian, Array.init))
        data += Data(header.utf8) + Data(count: 8)
        try data.write(to: dir)
        #expect {
            try SafeTensors(path: dir.path)
        } throws: { error in
            "\(error)".contains("'w'") && "\(error)".contains("more than once")
        }
        // A well-formed header with nested objects and strings holding quotes and braces still loads.
        let fine = #"{"__metadata__":{"a":"{\"}\"","b":"]"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        var good = Data(withUnsafeBytes(of: UInt64(fine.utf8.count).littleEndian, Array.init))
        good += Data(fine.utf8) + Data(count: 8)
        try good.write(to: dir)
        #expect(try SafeTensors(path: dir.path).names.sorted() == ["w", "x"])
    }

    @Test("C8: an empty merges.txt is refused")
    func emptyMergesAreRefused() throws {
        let dir = try copy()
        defer { try? FileManager.default.removeItem(at: dir) }
        for text in ["", "#version: 0.2\n"] {
            try text.write(to: dir.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
            #expect {
                try CLIP.Tokenizer(directory: dir)
            } throws: { error in
                "\(error)".contains("merges.txt: no merges")
            }
        }
    }
}

@Suite("CLIP hidden_act")
struct ActivationTests {
    @Test func everySupportedNameIsOneActivation() {
        #expect(CLIP.TextConfig.supportedActivations == ["quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh"])
        let x = Tensor([-2, -0.5, 0, 0.5, 2], shape: [5])
        for name in CLIP.TextConfig.supportedActivations {
            let activation = try! #require(CLIP.Activation(rawValue: name))
            var inPlace = x
            activation.apply(&inPlace)
            let tape = Tape()
            let onTape = activation.apply(tape.constant(x)).value
            #expect(inPlace == onTape, "\(name): the tower and the tape differ")
            let expected = switch name {
            case "quick_gelu": Ops.quickGELU(x)
            case "gelu": Ops.gelu(x, approximation: .exact)
            default: Ops.gelu(x, approximation: .tanh)
            }
            #expect(inPlace == expected, "\(name)")
        }
    }
}
