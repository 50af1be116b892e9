import Foundation
import Tensor

extension SSPA {
    /// A training run's folder:
    /// - `config.json`: the `Manifest` (the model `Config`, the `TrainingOptions`, the label set with its labels,
    ///   the knowledge encoder hash and run id, the CLIP folder used for the prompts, and the sizes);
    /// - `checkpoint.json`: which step folder is current, with the SHA-256 of each of its files (written last);
    /// - `step-NNNNNN-TOKEN/`: one saved step, made whole in a hidden folder and renamed into place:
    ///   - `model.safetensors`: the parameters (float32, keys of `ParameterKey`);
    ///   - `knowledge.safetensors`: `T^ka` `[C, d]` as trained with, so evaluation needs no knowledge.db;
    ///   - `optimizer.safetensors`: AdamW moments and step (for `--resume`);
    ///   - `training-state.json`: `TrainingState` (epoch, batch within epoch, step, seed, shuffle seed, history).
    ///
    /// A save is one unit: the step folder is complete before `checkpoint.json` names it, and the previous step's
    /// folder is removed only after, so a crash at any point leaves the previous checkpoint or the new one, never a
    /// mix. Loading checks every file it reads against `checkpoint.json`. Folders written before this layout (the
    /// four files beside `config.json`) are still read.
    ///
    /// `format` names what the weights mean. Version 2 is the spec revision of issue 11: features L2-normalised
    /// where they enter the model, ASL summed per image with constant focusing weights, `κ_G`, `κ_R` clamped at 100.
    /// Weights trained under version 1 were fitted to raw feature norms and another loss, so they are refused with
    /// a message saying to train again, never silently reused (`formatHistory`).
    public enum Checkpoint {
        public static let format = "sspa-checkpoint/2"
        /// Earlier formats, with what changed since and what to do about it.
        public static let formatHistory = [
            "sspa-checkpoint/1": "it was trained before the SSPA-SPEC revision of issue 11 (image features are now L2-normalised where they enter the model, the ASL loss is summed per image with constant focusing weights, and κ_G, κ_R are clamped at 100), so its weights no longer fit the model. Retrain it with `sspa train` into a new --out (features files need no re-extraction).",
        ]
        /// The pointer file's format.
        public static let pointerFormat = "sspa-checkpoint-step/1"

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

        /// What `checkpoint.json` holds: the current step folder and the SHA-256 of each of its files.
        public struct Pointer: Codable, Sendable, Hashable {
            public var format = Checkpoint.pointerFormat
            public var folder: String
            public var step: Int
            public var sha256: [String: String]
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

        /// How a checkpoint writes files: `write` puts whole files in place atomically (the command's writer,
        /// which names a full disk).
        public struct FileIO: Sendable {
            public var write: @Sendable (Data, URL) throws -> Void
            public init(write: @escaping @Sendable (Data, URL) throws -> Void) {
                self.write = write
            }
        }

        /// The file names of one step folder.
        static let stepFiles = ["model.safetensors", "knowledge.safetensors", "optimizer.safetensors", "training-state.json"]

        /// Writes `contents` into `directory` (created if needed) as one unit; refuses non-finite values, naming
        /// the tensor, so a diverged run never replaces its last finite checkpoint.
        public static func save(_ contents: Contents, to directory: URL, io: FileIO) throws {
            let fm = FileManager.default
            func fail(_ message: String) -> CheckpointError { CheckpointError(directory: directory.path, message: message) }
            try Finite.check(contents.parameters.tensors, what: "parameter") { fail("not saved: \($0); the last finite checkpoint is kept") }
            try Finite.check(["knowledge": contents.knowledge], what: "tensor") { fail("not saved: \($0)") }
            if let optimizer = contents.optimizer {
                let second = (optimizer.secondMoments?.tensors ?? [:]).map { ("v." + $0.key, $0.value) }
                try Finite.check((optimizer.firstMoments?.tensors ?? [:]).merging(second) { a, _ in a },
                                 what: "optimizer moment") { fail("not saved: \($0); the last finite checkpoint is kept") }
            }
            try fm.createDirectory(at: directory, withIntermediateDirectories: true)
            removeStaleTemporaries(in: directory)

            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let m = contents.manifest
            var files: [(String, Data)] = []
            files.append(("model.safetensors", try contents.parameters.serialized(metadata: [
                "format": format, "label_set": m.labelSet, "knowledge_encoder_sha256": m.knowledgeEncoderSHA256,
            ])))
            var knowledge = SafeTensorsWriter(metadata: ["label_set": m.labelSet, "encoder_sha256": m.knowledgeEncoderSHA256,
                                                         "run_id": String(m.knowledgeRunID)])
            knowledge.add("knowledge", contents.knowledge)
            files.append(("knowledge.safetensors", try knowledge.serialized()))
            if let optimizer = contents.optimizer { files.append(("optimizer.safetensors", try optimizer.serialized())) }
            if let state = contents.state { files.append(("training-state.json", try encoder.encode(state))) }

            // The step folder is made whole under a hidden name, then renamed into place.
            let step = contents.state?.step ?? 0
            let token = UUID().uuidString.prefix(8).lowercased()
            let name = String(format: "step-%06ld-", step) + token
            let final = directory.appendingPathComponent(name)
            var hashes: [String: String] = [:]
            try AtomicFolder.create(final, staging: directory.appendingPathComponent(".\(name).tmp"), fill: { staging in
                for (file, data) in files {
                    try io.write(data, staging.appendingPathComponent(file))
                    hashes[file] = SHA256.hex(data)
                }
            }, renameFailure: { fail("cannot put the step folder \(name) in place: \($0)") })
            do {
                try io.write(try encoder.encode(m), directory.appendingPathComponent("config.json"))
                let pointer = Pointer(folder: name, step: step, sha256: hashes)
                try io.write(try encoder.encode(pointer), directory.appendingPathComponent("checkpoint.json"))
            } catch {
                try? fm.removeItem(at: final)
                throw error
            }
            // Only now is the previous step (and any file of the old flat layout) no longer needed.
            for entry in (try? fm.contentsOfDirectory(atPath: directory.path)) ?? []
            where (entry.hasPrefix("step-") && entry != name) || stepFiles.contains(entry) {
                try? fm.removeItem(at: directory.appendingPathComponent(entry))
            }
        }

        /// The epochs a checkpoint folder was trained for, for display only (nil when it does not say).
        public static func trainedEpochs(in directory: URL) -> Int? {
            var folder = directory
            if let data = FileManager.default.contents(atPath: directory.appendingPathComponent("checkpoint.json").path),
               let pointer = try? JSONDecoder().decode(Pointer.self, from: data), !pointer.folder.contains("/") {
                folder = directory.appendingPathComponent(pointer.folder)
            }
            guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent("training-state.json").path) else { return nil }
            return (try? JSONDecoder().decode(TrainingState.self, from: data))?.epoch
        }

        /// Removes what an interrupted save left behind: hidden staging folders and temporary files.
        public static func removeStaleTemporaries(in directory: URL) {
            let fm = FileManager.default
            for entry in (try? fm.contentsOfDirectory(atPath: directory.path)) ?? [] where entry.hasPrefix(".") && entry.hasSuffix(".tmp") {
                try? fm.removeItem(at: directory.appendingPathComponent(entry))
            }
        }

        /// Reads a checkpoint folder and checks that its parts agree, that each file is the one `checkpoint.json`
        /// names (by SHA-256) and that every value is finite. The optimizer state and training state are read only
        /// `forTraining` (`evaluate` and `predict` never touch them).
        public static func load(from directory: URL, forTraining: Bool = false) throws -> Contents {
            let path = directory.path
            let fm = FileManager.default
            func fail(_ message: String) -> CheckpointError { CheckpointError(directory: path, message: message) }
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw fail("no such checkpoint folder")
            }
            let configURL = directory.appendingPathComponent("config.json")
            guard let data = fm.contents(atPath: configURL.path) else { throw fail("config.json is missing") }
            let manifest: Manifest
            do { manifest = try JSONDecoder().decode(Manifest.self, from: data) } catch {
                throw fail("config.json is not an SSPA checkpoint manifest (\(error))")
            }
            if let why = formatHistory[manifest.format] { throw fail("config.json has format \(manifest.format): \(why)") }
            guard manifest.format == format else {
                throw fail("config.json has format \(manifest.format), expected \(format) (written by a newer sspa? upgrade it)")
            }
            guard manifest.labels.count == manifest.displayNames.count, !manifest.labels.isEmpty else {
                throw fail("config.json lists \(manifest.labels.count) labels and \(manifest.displayNames.count) display names")
            }

            // The step folder checkpoint.json names, with each file checked against its hash.
            var folder = directory
            var hashes: [String: String]?
            if let data = fm.contents(atPath: directory.appendingPathComponent("checkpoint.json").path) {
                let pointer: Pointer
                do { pointer = try JSONDecoder().decode(Pointer.self, from: data) } catch {
                    throw fail("checkpoint.json is unreadable (\(error)); the checkpoint is damaged. Train again into a new --out.")
                }
                guard pointer.format == pointerFormat, !pointer.folder.contains("/"), pointer.folder.hasPrefix("step-") else {
                    throw fail("checkpoint.json is not an SSPA checkpoint pointer")
                }
                folder = directory.appendingPathComponent(pointer.folder)
                hashes = pointer.sha256
            }
            func read(_ name: String, required: Bool = true) throws -> Data? {
                let url = folder.appendingPathComponent(name)
                let shown = hashes == nil ? name : "\(folder.lastPathComponent)/\(name)"
                guard let data = fm.contents(atPath: url.path) else {
                    if !required && hashes?[name] == nil { return nil }
                    throw fail("\(shown) is missing; the checkpoint is incomplete. Train again into a new --out.")
                }
                if let hashes {
                    guard let expected = hashes[name] else { throw fail("\(shown) is not listed in checkpoint.json") }
                    let actual = SHA256.hex(data)
                    guard actual == expected else {
                        throw fail("\(shown) does not match checkpoint.json (SHA-256 \(actual.prefix(12)), expected \(expected.prefix(12))); the checkpoint is damaged or was changed by hand. Train again into a new --out.")
                    }
                }
                return data
            }
            func file(_ name: String) -> String { folder.appendingPathComponent(name).path }

            let parameters: Parameters
            _ = try read("model.safetensors")
            do {
                parameters = try Parameters(contentsOf: URL(fileURLWithPath: file("model.safetensors")), config: manifest.model)
                try parameters.validate(config: manifest.model, d: manifest.width, contextWidth: manifest.contextWidth)
            } catch {
                throw fail("model.safetensors does not fit config.json (a checkpoint from another config?): \(error)")
            }
            try Finite.check(parameters.tensors, what: "parameter") { fail("model.safetensors: \($0); the checkpoint is unusable (a diverged run?). Train again, with a lower --lr.") }
            _ = try read("knowledge.safetensors")
            let knowledge: Tensor
            do { knowledge = try SafeTensors(path: file("knowledge.safetensors")).tensor("knowledge") } catch {
                throw fail("knowledge.safetensors: \(error)")
            }
            guard knowledge.shape == [manifest.labels.count, manifest.width] else {
                throw fail("knowledge.safetensors is \(knowledge.shape), config.json says [\(manifest.labels.count), \(manifest.width)]")
            }
            try Finite.check(rows: knowledge, names: manifest.labels) { fail("knowledge.safetensors: \($0)") }
            guard forTraining else { return Contents(manifest: manifest, parameters: parameters, knowledge: knowledge) }

            var optimizer: AdamW?
            if try read("optimizer.safetensors", required: false) != nil {
                do { optimizer = try AdamW(contentsOf: URL(fileURLWithPath: file("optimizer.safetensors"))) } catch {
                    throw fail("optimizer.safetensors is unreadable: \(error)")
                }
            }
            var state: TrainingState?
            if let data = try read("training-state.json", required: false) {
                do { state = try JSONDecoder().decode(TrainingState.self, from: data) } catch {
                    throw fail("training-state.json is unreadable: \(error)")
                }
            }
            if let optimizer, let state, optimizer.step != state.step {
                throw fail("optimizer.safetensors is at step \(optimizer.step) but training-state.json at step \(state.step); the checkpoint is inconsistent. Train again into a new --out.")
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
