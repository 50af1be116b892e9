import Foundation
import Tensor

extension CLIP.Checkpoint {
    /// Which checkpoint made an embedding or a feature: one SHA-256 over every file that changes an output (the
    /// weight files, config.json's model content, vocab.json and merges.txt for text, preprocessor_config.json's
    /// content for images when the folder has one), so fixing any of them gives a new identity and nothing made with
    /// the broken file is reused. Computed from the folder alone, without loading a tower, so the image path and the
    /// text path agree on it.
    public struct Identity: Sendable, Hashable {
        /// What `id` hashes; stored next to it so a reader knows how it was made.
        public static let scheme = "clip-checkpoint/3"
        /// The hex SHA-256 that names the checkpoint.
        public var id: String
        /// Each file that went into `id`, by name, with its SHA-256 (config.json: of its canonical model content).
        public var files: [String: String]
    }

    /// Keys of config.json that describe where or by what a file was written, not the model, so they change no output.
    static let provenanceKeys: Set<String> = ["_name_or_path", "transformers_version", "_commit_hash", "torch_dtype", "dtype"]

    /// The identity of the checkpoint folder `directory`: streams the weight files in constant memory.
    public static func identity(directory: URL) throws -> Identity {
        var files: [String: String] = [:]
        for file in try weightFiles(directory: directory) {
            files[file.lastPathComponent] = try hashFile(file)
        }
        let configURL = directory.appendingPathComponent("config.json")
        guard let configData = try? Data(contentsOf: configURL),
              let config = try? JSONSerialization.jsonObject(with: configData) else {
            throw CheckpointError("\(configURL.path): missing or not JSON. A CLIP checkpoint folder holds config.json, model.safetensors, vocab.json and merges.txt.")
        }
        files["config.json"] = try canonicalHash(config)
        // The image preprocessing (resize, crop, mean and std) changes every image feature; CLIP's defaults apply
        // without the file.
        let preprocessorURL = directory.appendingPathComponent(preprocessorConfigName)
        if let data = FileManager.default.contents(atPath: preprocessorURL.path) {
            guard let preprocessor = try? JSONSerialization.jsonObject(with: data) else {
                throw CheckpointError("\(preprocessorURL.path): not JSON. Fix or remove it (without it CLIP's preprocessing defaults apply).")
            }
            files[preprocessorConfigName] = try canonicalHash(preprocessor)
        }
        for name in ["vocab.json", "merges.txt"] {
            let url = directory.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw CheckpointError("\(url.path): missing. A CLIP checkpoint folder holds config.json, model.safetensors, vocab.json and merges.txt.")
            }
            files[name] = try hashFile(url)
        }
        let preimage = ([Identity.scheme] + files.keys.sorted().map { "\($0) \(files[$0]!)" }).joined(separator: "\n")
        return Identity(id: SHA256.hex(preimage), files: files)
    }

    /// The image preprocessing file of a Hugging Face checkpoint folder.
    public static let preprocessorConfigName = "preprocessor_config.json"

    /// SHA-256 of a JSON value's model content: provenance keys dropped, keys sorted.
    static func canonicalHash(_ value: Any) throws -> String {
        SHA256.hex(try JSONSerialization.data(withJSONObject: stripProvenance(value), options: [.sortedKeys, .withoutEscapingSlashes]))
    }

    /// The identity of this checkpoint's folder.
    public func identity() throws -> Identity { try Self.identity(directory: directory) }

    /// `model.safetensors`, or the shards `model.safetensors.index.json` names, in name order.
    static func weightFiles(directory: URL) throws -> [URL] {
        let single = directory.appendingPathComponent("model.safetensors")
        if FileManager.default.fileExists(atPath: single.path) { return [single] }
        let indexURL = directory.appendingPathComponent("model.safetensors.index.json")
        guard let data = try? Data(contentsOf: indexURL) else {
            throw CheckpointError("\(directory.path): no model.safetensors or model.safetensors.index.json. Pass a Hugging Face CLIP checkpoint folder.")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let map = object["weight_map"] as? [String: String] else {
            throw CheckpointError("\(indexURL.path): no 'weight_map' object.")
        }
        return Set(map.values).sorted().map { directory.appendingPathComponent($0) }
    }

    static func hashFile(_ url: URL) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { throw CheckpointError("\(url.path): cannot read.") }
        defer { try? handle.close() }
        var hasher = SHA256()
        do {
            while let chunk = try handle.read(upToCount: 1 << 22), !chunk.isEmpty { hasher.update(chunk) }
        } catch {
            throw CheckpointError("\(url.path): cannot read (\(error.localizedDescription)).")
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    static func stripProvenance(_ value: Any) -> Any {
        if let object = value as? [String: Any] {
            return object.filter { !provenanceKeys.contains($0.key) }.mapValues(stripProvenance)
        }
        if let array = value as? [Any] { return array.map(stripProvenance) }
        return value
    }
}
