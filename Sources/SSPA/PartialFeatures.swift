import Foundation
import Tensor

extension SSPA {
    /// The resumable work folder of `sspa features` (`OUT.partial/`): finished batches, the inputs they were made
    /// from, and a marker that says the tool made the folder. A folder without the marker is never deleted, and a
    /// folder made from other inputs is never continued.
    public struct PartialFeatures: Sendable {
        /// The file whose presence (and content) says `sspa features` made the folder.
        public static let markerName = ".sspa-features-partial"
        public static let markerContent = "sspa-features-partial/1\n"

        /// What the finished batches were made from; a run continues them only when every field is equal.
        public struct Inputs: Codable, Equatable, Sendable {
            /// The manifest's resolved path and the SHA-256 of its bytes (labels, paths, order).
            public var manifest: String
            public var manifestSHA256: String
            public var labelSet: String
            /// The label set's raw names, in column order.
            public var labels: [String]
            public var partial: Bool
            public var regions: String
            /// The CLIP checkpoint identity of the vision tower.
            public var encoder: String
            public var batch: Int
            public var maxImagePixels: Int
            /// The image paths in manifest order, as resolved (of the shard's slice with `--shard`).
            public var images: [String]
            /// `--shard I/N` as resolved (`auto` replaced by the index), nil for the whole manifest.
            public var shard: String?

            public init(manifest: String, manifestSHA256: String, labelSet: String, labels: [String], partial: Bool,
                        regions: String, encoder: String, batch: Int, maxImagePixels: Int, images: [String], shard: String? = nil) {
                self.manifest = manifest
                self.manifestSHA256 = manifestSHA256
                self.labelSet = labelSet
                self.labels = labels
                self.partial = partial
                self.regions = regions
                self.encoder = encoder
                self.batch = batch
                self.maxImagePixels = maxImagePixels
                self.images = images
                self.shard = shard
            }

            /// SHA-256 of these inputs (sorted-key JSON): stored in a finished shard, so that running its command again
            /// recognises the work as done.
            public var sha256: String {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                return SHA256.hex((try? encoder.encode(self)) ?? Data())
            }

            enum CodingKeys: String, CodingKey {
                case manifest, manifestSHA256 = "manifest_sha256", labelSet = "label_set", labels, partial, regions
                case encoder, batch, maxImagePixels = "max_image_pixels", images, shard
            }

            /// What differs from `other`, in the words of the command's options.
            public func differences(from other: Inputs) -> [String] {
                var out: [String] = []
                if manifest != other.manifest { out.append("--manifest \(other.manifest) (now \(manifest))") }
                if manifestSHA256 != other.manifestSHA256 { out.append("the manifest's content changed (SHA-256 \(other.manifestSHA256.prefix(12)), now \(manifestSHA256.prefix(12)))") }
                if labelSet != other.labelSet { out.append("--label-set \(other.labelSet) (now \(labelSet))") }
                if labels != other.labels { out.append("the labels of label set '\(labelSet)' changed") }
                if partial != other.partial { out.append(other.partial ? "--partial (now without)" : "no --partial (now with)") }
                if regions != other.regions { out.append("--regions \(other.regions) (now \(regions))") }
                if encoder != other.encoder { out.append("the CLIP checkpoint \(other.encoder.prefix(12)) (now \(encoder.prefix(12)))") }
                if batch != other.batch { out.append("--batch \(other.batch) (now \(batch))") }
                if maxImagePixels != other.maxImagePixels { out.append("--max-image-pixels \(other.maxImagePixels) (now \(maxImagePixels))") }
                if shard != other.shard { out.append("--shard \(other.shard ?? "none") (now \(shard ?? "none"))") }
                if images != other.images && manifestSHA256 == other.manifestSHA256 && shard == other.shard { out.append("the image paths resolve differently") }
                return out
            }
        }

        /// How a run starts.
        public enum Start: Equatable, Sendable {
            /// No partial folder: it was created.
            case fresh
            /// The folder holds batches of the same inputs: continue them.
            case resumed
        }

        /// The folder cannot be used (someone else's folder, or batches of other inputs); the message names the
        /// folder and what to do. `FeatureExtractor` reports it as `ExtractionError.Kind.conflict`.
        public struct Conflict: Error, CustomStringConvertible, Sendable {
            public var message: String
            public var description: String { message }
        }

        public let folder: URL
        public var stateURL: URL { folder.appendingPathComponent("state.json") }

        public init(folder: URL) { self.folder = folder }

        /// Whether `folder` carries the tool's marker.
        public var isOurs: Bool {
            FileManager.default.contents(atPath: folder.appendingPathComponent(Self.markerName).path)
                .map { String(decoding: $0, as: UTF8.self) == Self.markerContent } ?? false
        }

        /// Continues the folder when it was made from `inputs`, creates it when absent, and otherwise refuses:
        /// a folder without the marker is someone else's (never deleted), a folder of other inputs is named with
        /// what differs. A marked folder whose state never got written (a crash while creating it) is replaced.
        public func open(for inputs: Inputs, command: String) throws -> Start {
            let fm = FileManager.default
            var isDirectory: ObjCBool = false
            if fm.fileExists(atPath: folder.path, isDirectory: &isDirectory) {
                guard isDirectory.boolValue, isOurs else {
                    throw Conflict(message: "\(folder.path) exists but was not made by `sspa features` (it has no \(Self.markerName) marker), so it is left alone; move or delete it yourself, or choose another --out")
                }
                if let data = fm.contents(atPath: stateURL.path), let saved = try? JSONDecoder().decode(Inputs.self, from: data) {
                    let differences = inputs.differences(from: saved)
                    if differences.isEmpty {
                        Self.removeTemporaries(in: folder, prefix: ".")
                        return .resumed
                    }
                    throw Conflict(message: "\(folder.path) holds batches made from other inputs: \(differences.joined(separator: "; ")). Its features would be stale, so it is not continued: run the original command to finish it, or delete it (rm -r \(folder.path)) to start again with \(command)")
                }
                try fm.removeItem(at: folder)
            }
            try create(inputs)
            return .fresh
        }

        /// Makes the folder whole under a temporary name (marker, then state) and renames it into place.
        func create(_ inputs: Inputs) throws {
            let staging = folder.deletingLastPathComponent()
                .appendingPathComponent(".\(folder.lastPathComponent).\(UUID().uuidString.prefix(8)).tmp")
            try AtomicFolder.create(folder, staging: staging, fill: { staging in
                try Data(Self.markerContent.utf8).write(to: staging.appendingPathComponent(Self.markerName))
                try JSONEncoder().encode(inputs).write(to: staging.appendingPathComponent("state.json"))
            }, renameFailure: { Conflict(message: "cannot create \(folder.path): \($0)") })
        }

        /// Removes hidden temporary files (`PREFIX….tmp`) that a killed run left in `folder`: files written
        /// through a temporary name, and half-made partial folders.
        public static func removeTemporaries(in folder: URL, prefix: String) {
            let fm = FileManager.default
            for entry in (try? fm.contentsOfDirectory(atPath: folder.path)) ?? [] where entry.hasPrefix(prefix) && entry.hasSuffix(".tmp") {
                try? fm.removeItem(at: folder.appendingPathComponent(entry))
            }
        }

        /// Removes what a killed run of the features file `output` left beside it: its temporary files and
        /// half-made partial folders (never anything else).
        public static func removeStaleTemporaries(beside output: URL) {
            removeTemporaries(in: output.deletingLastPathComponent(), prefix: ".\(output.lastPathComponent).")
        }

        /// Deletes the folder once the features file is in place, and only if it carries the marker.
        public func remove() {
            guard isOurs else { return }
            try? FileManager.default.removeItem(at: folder)
        }
    }
}
