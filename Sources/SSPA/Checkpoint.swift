import Foundation
import Tensor

extension SSPA {
    /// A training run's folder:
    /// - `config.json`: the `Manifest` (the model `Config`, the `TrainingOptions`, the label set with its labels,
    ///   the knowledge encoder hash and run id, the CLIP folder used for the prompts, and the sizes);
    /// - `model.safetensors`: the parameters (float32, names of `Config.parameterShapes`);
    /// - `knowledge.safetensors`: `T^ka` `[C, d]` as trained with, so evaluation needs no knowledge.db;
    /// - `optimizer.safetensors`: AdamW moments and step (for `--resume`);
    /// - `training-state.json`: `TrainingState` (epoch, batch within epoch, step, seed, shuffle seed, history).
    ///
    /// Files are written to temporary names and renamed, so an interrupted save leaves the previous checkpoint.
    public enum Checkpoint {
        public static let format = "sspa-checkpoint/1"

        /// What `config.json` holds.
        public struct Manifest: Codable, Sendable, Hashable {
            public var format = Checkpoint.format
            public var model: Config
            public var training: TrainingOptions
            public var labelSet: String
            /// Raw label names, in column order.
            public var labels: [String]
            /// Display names used in the prompts, in column order.
            public var displayNames: [String]
            public var knowledgeEncoderSHA256: String
            public var knowledgeRunID: Int64
            /// The CLIP checkpoint folder of the prompt text tower.
            public var clipDirectory: String
            /// Joint width `d`.
            public var width: Int
            /// Token-embedding width `D` of the context vectors.
            public var contextWidth: Int
            /// How the training features' regions were made (`patch` or `value`); nil when they did not say.
            public var regionMode: String?

            public init(model: Config, training: TrainingOptions, labelSet: String, labels: [String], displayNames: [String],
                        knowledgeEncoderSHA256: String, knowledgeRunID: Int64, clipDirectory: String, width: Int, contextWidth: Int,
                        regionMode: String? = nil) {
                self.model = model
                self.training = training
                self.labelSet = labelSet
                self.labels = labels
                self.displayNames = displayNames
                self.knowledgeEncoderSHA256 = knowledgeEncoderSHA256
                self.knowledgeRunID = knowledgeRunID
                self.clipDirectory = clipDirectory
                self.width = width
                self.contextWidth = contextWidth
                self.regionMode = regionMode
            }

            enum CodingKeys: String, CodingKey {
                case format, model, training, labelSet = "label_set", labels, displayNames = "display_names"
                case knowledgeEncoderSHA256 = "knowledge_encoder_sha256", knowledgeRunID = "knowledge_run_id"
                case clipDirectory = "clip_directory", width = "d", contextWidth = "context_width"
                case regionMode = "region_mode"
            }
        }

        /// Everything a checkpoint folder holds.
        public struct Contents: Sendable {
            public var manifest: Manifest
            public var parameters: Parameters
            public var knowledge: Tensor
            public var optimizer: AdamW?
            public var state: TrainingState?

            public init(manifest: Manifest, parameters: Parameters, knowledge: Tensor, optimizer: AdamW? = nil,
                        state: TrainingState? = nil) {
                self.manifest = manifest
                self.parameters = parameters
                self.knowledge = knowledge
                self.optimizer = optimizer
                self.state = state
            }
        }

        /// Writes `contents` into `directory` (created if needed).
        public static func save(_ contents: Contents, to directory: URL) throws {
            let fm = FileManager.default
            try fm.createDirectory(at: directory, withIntermediateDirectories: true)
            let token = UUID().uuidString.prefix(8)
            var staged: [(URL, URL)] = []
            func stage(_ name: String, _ write: (URL) throws -> Void) throws {
                let final = directory.appendingPathComponent(name)
                let temp = directory.appendingPathComponent(".\(name).\(token).tmp")
                try write(temp)
                staged.append((temp, final))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let m = contents.manifest
            try stage("config.json") { try encoder.encode(m).write(to: $0) }
            try stage("model.safetensors") {
                try contents.parameters.save(to: $0, metadata: ["format": format, "label_set": m.labelSet,
                                                                "knowledge_encoder_sha256": m.knowledgeEncoderSHA256])
            }
            try stage("knowledge.safetensors") {
                try SafeTensors.write(["knowledge": contents.knowledge], metadata: [
                    "label_set": m.labelSet, "encoder_sha256": m.knowledgeEncoderSHA256, "run_id": String(m.knowledgeRunID),
                ], to: $0)
            }
            if let optimizer = contents.optimizer { try stage("optimizer.safetensors") { try optimizer.save(to: $0) } }
            if let state = contents.state { try stage("training-state.json") { try encoder.encode(state).write(to: $0) } }
            for (temp, final) in staged where rename(temp.path, final.path) != 0 {
                let reason = String(cString: strerror(errno))
                try? fm.removeItem(at: temp)
                throw CheckpointError(directory: directory.path, message: "cannot write \(final.lastPathComponent): \(reason)")
            }
        }

        /// Reads a checkpoint folder and checks that its parts agree.
        public static func load(from directory: URL) throws -> Contents {
            let path = directory.path
            func fail(_ message: String) -> CheckpointError { CheckpointError(directory: path, message: message) }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw fail("no such checkpoint folder")
            }
            let configURL = directory.appendingPathComponent("config.json")
            guard let data = FileManager.default.contents(atPath: configURL.path) else { throw fail("config.json is missing") }
            let manifest: Manifest
            do { manifest = try JSONDecoder().decode(Manifest.self, from: data) } catch {
                throw fail("config.json is not an SSPA checkpoint manifest (\(error))")
            }
            guard manifest.format == format else { throw fail("config.json has format \(manifest.format), expected \(format)") }
            guard manifest.labels.count == manifest.displayNames.count, !manifest.labels.isEmpty else {
                throw fail("config.json lists \(manifest.labels.count) labels and \(manifest.displayNames.count) display names")
            }
            let parameters: Parameters
            do {
                parameters = try Parameters(contentsOf: directory.appendingPathComponent("model.safetensors"), config: manifest.model)
                try parameters.validate(config: manifest.model, d: manifest.width, contextWidth: manifest.contextWidth)
            } catch {
                throw fail("model.safetensors does not fit config.json (a checkpoint from another config?): \(error)")
            }
            let knowledge: Tensor
            do { knowledge = try SafeTensors(path: directory.appendingPathComponent("knowledge.safetensors").path).tensor("knowledge") } catch {
                throw fail("knowledge.safetensors: \(error)")
            }
            guard knowledge.shape == [manifest.labels.count, manifest.width] else {
                throw fail("knowledge.safetensors is \(knowledge.shape), config.json says [\(manifest.labels.count), \(manifest.width)]")
            }
            let optimizerURL = directory.appendingPathComponent("optimizer.safetensors")
            let optimizer = FileManager.default.fileExists(atPath: optimizerURL.path) ? try AdamW(contentsOf: optimizerURL) : nil
            var state: TrainingState?
            if let data = FileManager.default.contents(atPath: directory.appendingPathComponent("training-state.json").path) {
                do { state = try JSONDecoder().decode(TrainingState.self, from: data) } catch {
                    throw fail("training-state.json is unreadable: \(error)")
                }
            }
            return Contents(manifest: manifest, parameters: parameters, knowledge: knowledge, optimizer: optimizer, state: state)
        }
    }

    /// A checkpoint folder that cannot be used; the message names the folder.
    public struct CheckpointError: Error, CustomStringConvertible, Sendable {
        public var directory: String
        public var message: String
        public init(directory: String, message: String) {
            self.directory = directory
            self.message = message
        }
        public var description: String { "\(directory): \(message)" }
    }
}
