import Foundation
import Tensor

extension CLIP {
    /// The weights of a Hugging Face checkpoint folder: `model.safetensors`, or shards listed in
    /// `model.safetensors.index.json`. Tensors are converted to Float32 as they are read (fp16 and bf16 included).
    public final class Checkpoint: @unchecked Sendable {
        public let directory: URL
        /// The weight files, in a stable order.
        public let files: [URL]
        private let shards: [String: SafeTensors]
        private let index: [String: String]

        public init(directory: URL) throws {
            self.directory = directory
            let single = directory.appendingPathComponent("model.safetensors")
            let indexURL = directory.appendingPathComponent("model.safetensors.index.json")
            var shards: [String: SafeTensors] = [:]
            var index: [String: String] = [:]
            do {
                if FileManager.default.fileExists(atPath: single.path) {
                    let file = try SafeTensors(path: single.path)
                    shards[single.lastPathComponent] = file
                    for name in file.names { index[name] = single.lastPathComponent }
                } else if let data = try? Data(contentsOf: indexURL) {
                    guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                          let map = object["weight_map"] as? [String: String]
                    else { throw CheckpointError("\(indexURL.path): no 'weight_map' object.") }
                    index = map
                    for file in Set(map.values) {
                        shards[file] = try SafeTensors(path: directory.appendingPathComponent(file).path)
                    }
                } else {
                    throw CheckpointError("\(directory.path): no model.safetensors or model.safetensors.index.json. Pass a Hugging Face CLIP checkpoint folder.")
                }
            } catch let error as SafeTensorsError {
                throw CheckpointError("\(error)")
            }
            self.shards = shards
            self.index = index
            files = shards.keys.sorted().map { directory.appendingPathComponent($0) }
        }

        public func contains(_ key: String) -> Bool { index[key] != nil }

        /// The tensor `key`, which must have `shape`; a missing or misshapen tensor is an error naming both.
        public func tensor(_ key: String, shape: [Int]) throws -> Tensor {
            guard let file = index[key], let shard = shards[file] else {
                throw CheckpointError("\(directory.path): the checkpoint has no tensor '\(key)' (expected shape \(shape)). Is it a CLIP checkpoint of the architecture its config.json describes?")
            }
            let path = directory.appendingPathComponent(file).path
            let tensor: Tensor
            do {
                // An integer tensor would convert without complaint and give every text the same garbage.
                let dtype = try shard.entry(key).dtype
                guard dtype.isFloatingPoint else {
                    throw CheckpointError("\(path): tensor '\(key)' is stored as \(dtype.rawValue), but a CLIP weight is a float tensor (F32, F16, BF16). Export the checkpoint again.")
                }
                tensor = try shard.tensor(key)
            } catch let error as SafeTensorsError { throw CheckpointError("\(error)") }
            guard tensor.shape == shape else {
                throw CheckpointError("\(path): tensor '\(key)' has shape \(tensor.shape), but config.json implies \(shape).")
            }
            if let index = Self.firstNonFinite(tensor) {
                throw CheckpointError("\(path): tensor '\(key)' holds NaN or infinite values (first at flat index \(index)). The checkpoint is damaged or diverged; use a good copy.")
            }
            return tensor
        }

        /// The flat index of the first NaN or infinity in `tensor`, or nil when every value is finite.
        static func firstNonFinite(_ tensor: Tensor) -> Int? {
            tensor.withUnsafeBufferPointer { values in values.firstIndex { !$0.isFinite } }
        }

        /// The first of `keys` that the checkpoint has (full `CLIPModel` and tower-only checkpoints name keys alike,
        /// but some exports drop the `text_model.` prefix).
        public func tensor(anyOf keys: [String], shape: [Int]) throws -> Tensor {
            for key in keys where contains(key) { return try tensor(key, shape: shape) }
            return try tensor(keys[0], shape: shape)
        }
    }
}
