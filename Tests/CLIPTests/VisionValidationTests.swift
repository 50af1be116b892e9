import Foundation
import Testing
import Tensor
@testable import CLIP

/// Issue 10 D11 and C7 for the vision tower: every `vision_config` field is checked at load, naming the key, so no
/// config reaches a trap; a non-finite weight is named when the checkpoint is read.
@Suite("CLIP vision config and weights validation")
struct VisionValidationTests {
    static let tiny = TokenizerFixtures.directory.appendingPathComponent("checkpoints/tiny-quickgelu")

    /// A copy of the tiny checkpoint folder with `edit` applied to its `vision_config`.
    static func copy(editing edit: (inout [String: Any]) -> Void) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for file in ["model.safetensors", "vocab.json", "merges.txt"] {
            try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(file), withDestinationURL: tiny.appendingPathComponent(file))
        }
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: tiny.appendingPathComponent("config.json"))) as! [String: Any]
        var vision = config["vision_config"] as! [String: Any]
        edit(&vision)
        config["vision_config"] = vision
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        return dir
    }

    @Test(arguments: [
        ("num_attention_heads", 0, "from 1 to"), ("num_attention_heads", 3, "a divisor of hidden_size (16)"),
        ("num_hidden_layers", -1, "from 1 to"), ("num_hidden_layers", 0, "from 1 to"), ("patch_size", 0, "from 1 to"),
        ("patch_size", 33, "at most image_size (32)"), ("image_size", -3, "from 1 to"), ("hidden_size", 0, "from 1 to"),
        ("intermediate_size", 1 << 40, "from 1 to"), ("projection_dim", 0, "from 1 to"), ("num_channels", 1, "3"),
    ] as [(String, Int, String)])
    func brokenFieldsAreNamed(key: String, value: Int, rule: String) throws {
        let dir = try Self.copy { $0[key] = value }
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect { _ = try CLIP.VisionModel(directory: dir) } throws: { error in
            "\(error)".contains("vision_config.\(key) is \(value); it must be \(rule)")
        }
    }

    @Test func negativeOrNonNumericValuesAreNamed() throws {
        let eps = try Self.copy { $0["layer_norm_eps"] = -1 }
        let text = try Self.copy { $0["hidden_size"] = "wide" }
        defer { for dir in [eps, text] { try? FileManager.default.removeItem(at: dir) } }
        #expect { _ = try CLIP.VisionModel(directory: eps) } throws: { "\($0)".contains("vision_config.layer_norm_eps is -1.0; it must be a finite positive number") }
        #expect { _ = try CLIP.VisionModel(directory: text) } throws: { "\($0)".contains("vision_config.hidden_size cannot be read") }
    }

    @Test func aNonFiniteWeightIsNamedAtLoad() throws {
        let dir = try Self.copy { _ in }
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try SafeTensors(path: Self.tiny.appendingPathComponent("model.safetensors").path)
        var tensors: [String: Tensor] = [:]
        for name in source.names { tensors[name] = try source.tensor(name) }
        let key = "vision_model.encoder.layers.1.mlp.fc1.weight"
        tensors[key]!.withUnsafeMutableBufferPointer { $0[5] = .nan }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model.safetensors"))
        try SafeTensors.write(tensors, to: dir.appendingPathComponent("model.safetensors"))
        #expect { _ = try CLIP.VisionModel(directory: dir) } throws: {
            // The checkpoint reader names the tensor first (both towers load through it).
            "\($0)".contains("encoder.layers.1.mlp.fc1.weight' holds NaN") && "\($0)".contains("5")
        }
    }
}
