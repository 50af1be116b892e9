import Foundation
import Tensor

extension SSPA {
    /// A features file: cached CLIP image features with their labels, the input of training and evaluation.
    ///
    /// On disk it is safetensors with
    /// - `x0` `[N, d]`: the projected class token per image (F32, F16 or BF16);
    /// - `X` `[N, M, d]`: the projected patch tokens per image (F32, F16 or BF16);
    /// - `labels` `[N, C]`: int8 (any integer type is accepted) in {1, 0, −1}, −1 meaning unknown;
    /// - metadata `labels` (JSON array of the label raw names, in column order), `encoder_sha256` (the CLIP
    ///   checkpoint's identity, `CLIP.Checkpoint.Identity.id`, as `TextEncoder.id`), `image_paths` (JSON array, N strings, may be empty) and
    ///   `region_mode` (`patch` or `value`, how `X` was made; absent when unknown).
    ///
    /// `load` validates everything and every error names the file.
    public struct Features: Sendable {
        /// `[N, d]`.
        public var x0: Tensor
        /// `[N, M, d]`.
        public var regions: Tensor
        /// `[N, C]`, values 1, 0 or −1 as floats.
        public var labels: Tensor
        /// Label raw names, one per column of `labels`.
        public var labelNames: [String]
        /// SHA-256 of the CLIP checkpoint that made the features.
        public var encoderSHA256: String
        /// Image paths, one per row (empty when unknown).
        public var imagePaths: [String]
        /// How the region features were made (`patch` or `value`, `sspa features --regions`); nil when unknown.
        public var regionMode: String?

        /// Number of images `N`.
        public var count: Int { x0.shape[0] }
        /// Joint width `d`.
        public var width: Int { x0.shape[1] }
        /// Regions per image `M`.
        public var regionCount: Int { regions.shape[1] }
        /// Labels `C`.
        public var labelCount: Int { labels.shape[1] }

        /// Checks shapes and values; `file` names the source in messages.
        public init(x0: Tensor, regions: Tensor, labels: Tensor, labelNames: [String], encoderSHA256: String,
                    imagePaths: [String] = [], regionMode: String? = nil, file: String = "<memory>") throws {
            func fail(_ message: String) -> FeaturesError { FeaturesError(file: file, message: message) }
            guard x0.rank == 2 else { throw fail("x0 must be [N, d], got shape \(x0.shape)") }
            let n = x0.shape[0], d = x0.shape[1]
            guard n > 0 else { throw fail("the dataset is empty (N = 0 images)") }
            guard d > 0 else { throw fail("x0 has width 0") }
            guard regions.rank == 3 else { throw fail("X must be [N, M, d], got shape \(regions.shape)") }
            guard regions.shape[0] == n, regions.shape[2] == d else {
                throw fail("X has shape \(regions.shape) but x0 is \(x0.shape): X must be [\(n), M, \(d)]")
            }
            guard regions.shape[1] > 0 else { throw fail("X has M = 0 regions per image") }
            guard labels.rank == 2, labels.shape[0] == n else {
                throw fail("labels must be [\(n), C] (one row per image of x0), got shape \(labels.shape)")
            }
            guard labels.shape[1] > 0 else { throw fail("labels has C = 0 columns") }
            guard labelNames.count == labels.shape[1] else {
                throw fail("the metadata lists \(labelNames.count) label names but labels has \(labels.shape[1]) columns")
            }
            if Set(labelNames).count != labelNames.count { throw fail("the metadata's label names repeat a name") }
            guard imagePaths.isEmpty || imagePaths.count == n else {
                throw fail("the metadata lists \(imagePaths.count) image paths for \(n) images")
            }
            for (name, t) in [("x0", x0), ("X", regions)] {
                if let bad = t.withUnsafeBufferPointer({ p in p.firstIndex { !$0.isFinite } }) {
                    let row = bad / (t.count / n)
                    let what = t.scalars[bad].isNaN ? "NaN" : "an infinite value"
                    let path = row < imagePaths.count ? " (\(imagePaths[row]))" : ""
                    throw fail("\(name) holds \(what) at image \(row)\(path)")
                }
            }
            if let bad = labels.withUnsafeBufferPointer({ p in p.firstIndex { $0 != 1 && $0 != 0 && $0 != -1 } }) {
                let c = labels.shape[1]
                throw fail("labels[\(bad / c), \(bad % c)] (\(labelNames[bad % c])) is \(labels.scalars[bad]); labels must be 1, 0 or -1")
            }
            self.x0 = x0
            self.regions = regions
            self.labels = labels
            self.labelNames = labelNames
            self.encoderSHA256 = encoderSHA256
            self.imagePaths = imagePaths
            self.regionMode = regionMode
        }

        /// The region modes a features file may record (`CLIP.RegionMode`'s raw values).
        public static let regionModes = ["patch", "value"]

        /// Reads and validates a features file.
        public init(contentsOf url: URL) throws {
            let path = url.path
            func fail(_ message: String) -> FeaturesError { FeaturesError(file: path, message: message) }
            let file: SafeTensors
            do { file = try SafeTensors(path: path) } catch { throw fail("cannot read: \(error)") }
            for name in ["x0", "X", "labels"] where !file.contains(name) {
                throw fail("no tensor '\(name)' (a features file holds x0 [N, d], X [N, M, d] and labels [N, C]; it has \(file.names.joined(separator: ", ")))")
            }
            let labelEntry = try file.entry("labels")
            guard !labelEntry.dtype.isFloatingPoint else {
                throw fail("labels is stored as \(labelEntry.dtype.rawValue); it must be an integer type (int8) in {1, 0, -1}")
            }
            let x0 = try file.tensor("x0"), regions = try file.tensor("X")
            let ints = try file.integers("labels")
            if let bad = ints.firstIndex(where: { $0 < -1 || $0 > 1 }), labelEntry.shape.count == 2, labelEntry.shape[1] > 0 {
                let c = labelEntry.shape[1]
                throw fail("labels[\(bad / c), \(bad % c)] is \(ints[bad]); labels must be 1, 0 or -1")
            }
            let labels = Tensor(ints.map { Float($0) }, shape: labelEntry.shape)
            func stringArray(_ key: String, required: Bool) throws -> [String] {
                guard let text = file.metadata[key] else {
                    if required { throw fail("the metadata has no '\(key)' (a JSON array of strings)") }
                    return []
                }
                guard let array = try? JSONDecoder().decode([String].self, from: Data(text.utf8)) else {
                    throw fail("the metadata '\(key)' is not a JSON array of strings")
                }
                return array
            }
            let names = try stringArray("labels", required: true)
            guard let encoder = file.metadata["encoder_sha256"], !encoder.isEmpty else {
                throw fail("the metadata has no 'encoder_sha256' (the CLIP checkpoint's identity)")
            }
            let paths = try stringArray("image_paths", required: false)
            let mode = file.metadata["region_mode"]
            if let mode, !Self.regionModes.contains(mode) {
                throw fail("the metadata 'region_mode' is '\(mode)'; it must be one of \(Self.regionModes.joined(separator: ", "))")
            }
            try self.init(x0: x0, regions: regions, labels: labels, labelNames: names, encoderSHA256: encoder,
                          imagePaths: paths, regionMode: mode, file: path)
        }

        /// Writes the file (`x0` and `X` as `dtype`, F32 or F16; labels as int8).
        public func write(to url: URL, dtype: SafeTensors.DType = .f32) throws {
            try serialized(dtype: dtype).write(to: url, options: .atomic)
        }

        /// The safetensors bytes `write` writes; `extra` adds metadata entries (e.g. what the file was made from).
        public func serialized(dtype: SafeTensors.DType = .f32, extra: [String: String] = [:]) throws -> Data {
            func json(_ strings: [String]) throws -> String { String(decoding: try JSONEncoder().encode(strings), as: UTF8.self) }
            var metadata = extra.merging(["labels": try json(labelNames), "encoder_sha256": encoderSHA256,
                                          "image_paths": try json(imagePaths)]) { $1 }
            if let regionMode { metadata["region_mode"] = regionMode }
            var writer = SafeTensorsWriter(metadata: metadata)
            writer.add("x0", x0, as: dtype)
            writer.add("X", regions, as: dtype)
            writer.add("labels", integers: labels.scalars.map { Int8($0) }, shape: labels.shape, as: .i8)
            return try writer.serialized()
        }

        /// Rows `indices` as a batch: `x0` `[B, d]`, `regions` `[B, M, d]`, `labels` `[B, C]`.
        public func batch(_ indices: [Int]) -> (x0: Tensor, regions: Tensor, labels: Tensor) {
            let m = regionCount, d = width
            let x = Ops.embedding(x0, ids: indices)
            let r = Ops.embedding(regions.reshaped([count, m * d]), ids: indices).reshaped([indices.count, m, d])
            let y = Ops.embedding(labels, ids: indices)
            return (x, r, y)
        }
    }

    /// A features file that cannot be used; the message names the file.
    public struct FeaturesError: Error, CustomStringConvertible, Sendable {
        public var file: String
        public var message: String
        public init(file: String, message: String) {
            self.file = file
            self.message = message
        }
        public var description: String { "\(file): \(message)" }
    }
}
