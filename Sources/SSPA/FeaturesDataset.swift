import Foundation
import Tensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension SSPA {
    /// Features streamed from disk: one features file, several, or a folder of shards, read as one dataset whose
    /// rows are the files' rows in order (a folder's files in shard or name order).
    ///
    /// Opening reads each file's header and checks its labels (in chunks); no image data is read until a batch asks
    /// for it, and then only that batch's rows, with `pread` into a buffer of the batch's size. Nothing is mapped,
    /// so resident memory does not grow with the number of images: the page cache holds the file, not the process.
    /// The files must agree on the labels, the encoder, `d`, `M` and the region mode; the error names the file that
    /// differs from the others.
    public final class FeaturesDataset: FeaturesSource, @unchecked Sendable {
        /// One file of the dataset.
        public struct File: Sendable {
            public let path: String
            /// Images in the file.
            public let count: Int
            /// The dataset row of the file's first image.
            public let start: Int
            public let labelNames: [String]
            public let encoderSHA256: String
            public let regionMode: String?
            public let width: Int
            public let regionCount: Int
            /// True when some label of some image is known (0 or 1).
            public let hasKnownLabel: Bool
            let x0: Slot, regions: Slot, labels: Slot
        }

        /// Where one tensor's rows sit in a file.
        struct Slot: Sendable {
            /// Absolute byte offset of row 0.
            let offset: Int
            let dtype: SafeTensors.DType
            /// Values per row.
            let width: Int
            var rowBytes: Int { width * dtype.size }
        }

        public let files: [File]
        public let count: Int
        public let width: Int
        public let regionCount: Int
        public let labelCount: Int
        public let labelNames: [String]
        public let encoderSHA256: String
        public let regionMode: String?
        /// True when some label of some image is known; training needs at least one.
        public let hasKnownLabel: Bool
        /// The dataset as messages name it: the file, or the files given (a folder counts as one).
        public let name: String

        /// Opens `paths` (features files or folders of them) as one dataset, in the order given.
        public init(paths: [String]) throws {
            precondition(!paths.isEmpty, "FeaturesDataset: no paths")
            let list = try Self.files(paths)
            var files: [File] = []
            var start = 0
            for path in list {
                let file = try Self.open(path, start: start)
                files.append(file)
                start += file.count
            }
            try Self.checkAgreement(files)
            let first = files[0]
            self.files = files
            count = start
            width = first.width
            regionCount = first.regionCount
            labelCount = first.labelNames.count
            labelNames = first.labelNames
            encoderSHA256 = first.encoderSHA256
            regionMode = first.regionMode
            hasKnownLabel = files.contains { $0.hasKnownLabel }
            name = paths.count == 1 && list.count == 1 ? paths[0]
                : paths.joined(separator: ", ") + (list.count > paths.count ? " (\(list.count) files)" : "")
        }

        /// Convenience for one file or folder.
        public convenience init(path: String) throws {
            try self.init(paths: [path])
        }

        // MARK: Reading

        public func batch(_ indices: [Int]) throws -> (x0: Tensor, regions: Tensor, labels: Tensor) {
            let b = indices.count, d = width, m = regionCount, c = labelCount
            var x0 = [Float](repeating: 0, count: b * d)
            var regions = [Float](repeating: 0, count: b * m * d)
            var labels = [Float](repeating: 0, count: b * c)
            // In file order, runs of consecutive rows read with one pread per tensor.
            let sorted = indices.indices.sorted { indices[$0] < indices[$1] }
            var descriptors: [Int: Descriptor] = [:]
            var i = 0
            while i < sorted.count {
                let row = indices[sorted[i]]
                precondition(row >= 0 && row < count, "FeaturesDataset: row \(row) outside 0..<\(count)")
                let f = fileNumber(of: row)
                let file = files[f]
                var j = i + 1
                while j < sorted.count, indices[sorted[j]] == indices[sorted[j - 1]] + 1, indices[sorted[j]] < file.start + file.count {
                    j += 1
                }
                let descriptor: Descriptor
                if let open = descriptors[f] { descriptor = open } else {
                    descriptor = try Descriptor(path: file.path)
                    descriptors[f] = descriptor
                }
                let local = row - file.start, run = Array(sorted[i..<j])
                try read(file.x0, rows: local, positions: run, from: descriptor, file: file, into: &x0, name: "x0")
                try read(file.regions, rows: local, positions: run, from: descriptor, file: file, into: &regions, name: "X")
                try read(file.labels, rows: local, positions: run, from: descriptor, file: file, into: &labels, name: nil)
                i = j
            }
            return (Tensor(x0, shape: [b, d]), Tensor(regions, shape: [b, m, d]), Tensor(labels, shape: [b, c]))
        }

        public func allLabels() throws -> Tensor {
            var out: [Float] = []
            out.reserveCapacity(count * labelCount)
            for file in files {
                let descriptor = try Descriptor(path: file.path)
                try Self.forEachLabelChunk(file.labels, rows: file.count, descriptor: descriptor, path: file.path) { _, values in
                    out += values.map(Float.init)
                }
            }
            return Tensor(out, shape: [count, labelCount])
        }

        /// The file holding dataset row `row`.
        func fileNumber(of row: Int) -> Int {
            var lo = 0, hi = files.count - 1
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if files[mid].start <= row { lo = mid } else { hi = mid - 1 }
            }
            return lo
        }

        /// Reads rows `first..<first + positions.count` of `slot` and puts row `k` at batch position `positions[k]`
        /// of `out`; image data (`name` non-nil) must be finite.
        private func read(_ slot: Slot, rows first: Int, positions: [Int], from descriptor: Descriptor, file: File,
                          into out: inout [Float], name: String?) throws {
            let n = positions.count, w = slot.width
            let bytes = UnsafeMutableRawPointer.allocate(byteCount: max(n * slot.rowBytes, 1), alignment: 16)
            defer { bytes.deallocate() }
            try descriptor.read(into: bytes, count: n * slot.rowBytes, at: slot.offset + first * slot.rowBytes)
            try out.withUnsafeMutableBufferPointer { out in
                for (k, position) in positions.enumerated() {
                    let target = out.baseAddress! + position * w
                    let raw = UnsafeRawPointer(bytes + k * slot.rowBytes)
                    // As `SafeTensors.tensor` decodes, so the streamed and in-memory paths give the same bits.
                    SafeTensors.convert(raw, dtype: slot.dtype, count: w, into: target)
                    if let name, let bad = (0..<w).first(where: { !target[$0].isFinite }) {
                        let row = first + k
                        let what = target[bad].isNaN ? "NaN" : "an infinite value"
                        let path = Self.imagePath(file.path, row: row).map { " (\($0))" } ?? ""
                        throw FeaturesError(file: file.path, message: "\(name) holds \(what) at image \(row)\(path)")
                    }
                }
            }
        }

        // MARK: Opening

        /// The features files `paths` name, a folder standing for its `*.safetensors` files: shards
        /// (`shard-IIIII-of-NNNNN.safetensors`, all N of them present) in shard order, other files in name order.
        public static func files(_ paths: [String]) throws -> [String] {
            let fm = FileManager.default
            var out: [String] = []
            for path in paths {
                var isDirectory: ObjCBool = false
                guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
                    throw FeaturesError(file: path, message: "no such features file or folder")
                }
                out += isDirectory.boolValue ? try folderFiles(path) : [path]
            }
            var seen: [String: String] = [:]
            for path in out {
                let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
                if let earlier = seen[resolved] {
                    throw FeaturesError(file: path, message: "is given twice (also as \(earlier)); its images would count twice")
                }
                seen[resolved] = path
            }
            return out
        }

        static func folderFiles(_ folder: String) throws -> [String] {
            let fm = FileManager.default
            let all: [String]
            do { all = try fm.contentsOfDirectory(atPath: folder) } catch {
                throw FeaturesError(file: folder, message: "cannot list the folder: \((error as NSError).localizedFailureReason ?? "\(error)")")
            }
            let names = all.filter { name in
                var isDirectory: ObjCBool = false
                return !name.hasPrefix(".") && name.hasSuffix(".safetensors")
                    && fm.fileExists(atPath: folder + "/" + name, isDirectory: &isDirectory) && !isDirectory.boolValue
            }.sorted()
            let unfinished = all.filter { $0.hasSuffix(".safetensors.partial") }.sorted()
            let stillRunning = unfinished.isEmpty ? "" : "; still being extracted: \(unfinished.prefix(5).joined(separator: ", "))"
            guard !names.isEmpty else {
                throw FeaturesError(file: folder, message: "holds no features files (*.safetensors)\(stillRunning)")
            }
            let shards = names.compactMap { name in Shard(fileName: name).map { (name, $0) } }
            guard !shards.isEmpty else { return names.map { folder + "/" + $0 } }
            if shards.count != names.count {
                let other = names.filter { Shard(fileName: $0) == nil }
                throw FeaturesError(file: folder, message: "mixes shard files (\(shards[0].0)) with other features files (\(other.prefix(3).joined(separator: ", "))); keep one dataset per folder")
            }
            let total = shards[0].1.count
            if let odd = shards.first(where: { $0.1.count != total }) {
                throw FeaturesError(file: folder, message: "holds shards of different splits (\(shards[0].0) and \(odd.0)); keep one split per folder")
            }
            let present = Set(shards.map(\.1.index))
            let missing = (1...total).filter { !present.contains($0) }
            if !missing.isEmpty {
                let list = missing.prefix(5).map { Shard(index: $0, count: total).fileName }.joined(separator: ", ")
                throw FeaturesError(file: folder, message: "is missing \(missing.count) of its \(total) shards (\(list)\(missing.count > 5 ? ", …" : ""))\(stillRunning); extract them with `sspa features --shard I/\(total)`")
            }
            return shards.sorted { $0.1.index < $1.1.index }.map { folder + "/" + $0.0 }
        }

        /// Reads one file's header and checks its labels; `start` is the dataset row of its first image.
        static func open(_ path: String, start: Int) throws -> File {
            func fail(_ message: String) -> FeaturesError { FeaturesError(file: path, message: message) }
            let header: SafeTensors
            do { header = try SafeTensors(path: path) } catch { throw fail("cannot read: \(error)") }
            for name in ["x0", "X", "labels"] where !header.contains(name) {
                throw fail("no tensor '\(name)' (a features file holds x0 [N, d], X [N, M, d] and labels [N, C]; it has \(header.names.joined(separator: ", ")))")
            }
            let x0 = try header.entry("x0"), regions = try header.entry("X"), labels = try header.entry("labels")
            for entry in [x0, regions] where !entry.dtype.isFloatingPoint {
                throw fail("\(entry.name) is stored as \(entry.dtype.rawValue); features must be F32, F16 or BF16")
            }
            guard !labels.dtype.isFloatingPoint else {
                throw fail("labels is stored as \(labels.dtype.rawValue); it must be an integer type (int8) in {1, 0, -1}")
            }
            guard x0.shape.count == 2 else { throw fail("x0 must be [N, d], got shape \(x0.shape)") }
            let n = x0.shape[0], d = x0.shape[1]
            guard n > 0 else { throw fail("the dataset is empty (N = 0 images)") }
            guard d > 0 else { throw fail("x0 has width 0") }
            guard regions.shape.count == 3 else { throw fail("X must be [N, M, d], got shape \(regions.shape)") }
            guard regions.shape[0] == n, regions.shape[2] == d else {
                throw fail("X has shape \(regions.shape) but x0 is \(x0.shape): X must be [\(n), M, \(d)]")
            }
            let m = regions.shape[1]
            guard m > 0 else { throw fail("X has M = 0 regions per image") }
            guard labels.shape.count == 2, labels.shape[0] == n else {
                throw fail("labels must be [\(n), C] (one row per image of x0), got shape \(labels.shape)")
            }
            let c = labels.shape[1]
            guard c > 0 else { throw fail("labels has C = 0 columns") }
            func stringArray(_ key: String, required: Bool) throws -> [String]? {
                guard let text = header.metadata[key] else {
                    if required { throw fail("the metadata has no '\(key)' (a JSON array of strings)") }
                    return nil
                }
                guard let array = try? JSONDecoder().decode([String].self, from: Data(text.utf8)) else {
                    throw fail("the metadata '\(key)' is not a JSON array of strings")
                }
                return array
            }
            let names = try stringArray("labels", required: true)!
            guard names.count == c else {
                throw fail("the metadata lists \(names.count) label names but labels has \(c) columns")
            }
            if Set(names).count != names.count { throw fail("the metadata's label names repeat a name") }
            guard let encoder = header.metadata["encoder_sha256"], !encoder.isEmpty else {
                throw fail("the metadata has no 'encoder_sha256' (the CLIP checkpoint's identity)")
            }
            if let paths = try stringArray("image_paths", required: false), !paths.isEmpty, paths.count != n {
                throw fail("the metadata lists \(paths.count) image paths for \(n) images")
            }
            let mode = header.metadata["region_mode"]
            if let mode, !Features.regionModes.contains(mode) {
                throw fail("the metadata 'region_mode' is '\(mode)'; it must be one of \(Features.regionModes.joined(separator: ", "))")
            }
            // The data section starts after the 8-byte length and the header.
            let descriptor = try Descriptor(path: path)
            var length: UInt64 = 0
            try descriptor.read(into: &length, count: 8, at: 0)
            let dataStart = 8 + Int(UInt64(littleEndian: length))
            let labelSlot = Slot(offset: dataStart + labels.offsets.lowerBound, dtype: labels.dtype, width: c)
            var known = false
            try forEachLabelChunk(labelSlot, rows: n, descriptor: descriptor, path: path) { firstRow, values in
                if let bad = values.firstIndex(where: { $0 < -1 || $0 > 1 }) {
                    let row = firstRow + bad / c, column = bad % c
                    throw fail("labels[\(row), \(column)] (\(names[column])) is \(values[bad]); labels must be 1, 0 or -1")
                }
                if !known { known = values.contains { $0 >= 0 } }
            }
            return File(path: path, count: n, start: start, labelNames: names, encoderSHA256: encoder, regionMode: mode,
                        width: d, regionCount: m, hasKnownLabel: known,
                        x0: Slot(offset: dataStart + x0.offsets.lowerBound, dtype: x0.dtype, width: d),
                        regions: Slot(offset: dataStart + regions.offsets.lowerBound, dtype: regions.dtype, width: m * d),
                        labels: labelSlot)
        }

        /// Calls `body` with the label values of `rows` rows, a chunk of whole rows (about 256 KB) at a time.
        static func forEachLabelChunk(_ slot: Slot, rows: Int, descriptor: Descriptor, path: String,
                                      _ body: (_ firstRow: Int, _ values: [Int64]) throws -> Void) throws {
            let perChunk = max(1, (1 << 18) / max(slot.rowBytes, 1))
            let bytes = UnsafeMutableRawPointer.allocate(byteCount: max(perChunk * slot.rowBytes, 1), alignment: 16)
            defer { bytes.deallocate() }
            var row = 0
            while row < rows {
                let n = min(perChunk, rows - row)
                try descriptor.read(into: bytes, count: n * slot.rowBytes, at: slot.offset + row * slot.rowBytes)
                try body(row, (0..<(n * slot.width)).map { SafeTensors.integer(UnsafeRawPointer(bytes), dtype: slot.dtype, index: $0) })
                row += n
            }
        }

        /// Throws, naming the file that differs from the others, unless every file has the same labels, encoder,
        /// `d`, `M` and region mode.
        static func checkAgreement(_ files: [File]) throws {
            guard files.count > 1 else { return }
            func check<T: Hashable>(_ what: String, _ value: (File) -> T, _ show: (T) -> String) throws {
                var tally: [T: Int] = [:]
                for file in files { tally[value(file), default: 0] += 1 }
                guard tally.count > 1 else { return }
                // The value most files share (the first file's on a tie) is the dataset's; the first file with
                // another one is the odd one out.
                let most = tally.values.max()!
                let common = tally[value(files[0])] == most ? value(files[0]) : tally.first { $0.value == most }!.key
                let odd = files.first { value($0) != common }!
                let reference = files.first { value($0) == common }!
                throw FeaturesError(file: odd.path, message: "does not belong with the other features files of the dataset: its \(what) is \(show(value(odd))), but \(reference.path)\(most > 1 ? " and \(most - 1) other(s)" : "") have \(show(common))")
            }
            try check("label list", \.labelNames) { "\($0.count) labels (\($0.prefix(4).joined(separator: ", "))\($0.count > 4 ? ", …" : ""))" }
            try check("CLIP encoder", \.encoderSHA256) { String($0.prefix(12)) }
            try check("width d", \.width) { "\($0)" }
            try check("region count M", \.regionCount) { "\($0)" }
            try check("region mode", \.regionMode) { $0.map { "--regions \($0)" } ?? "unrecorded" }
        }

        /// Image path `row` of a file, read from its header only when an error needs it.
        static func imagePath(_ path: String, row: Int) -> String? {
            guard let header = try? SafeTensors(path: path), let text = header.metadata["image_paths"],
                  let paths = try? JSONDecoder().decode([String].self, from: Data(text.utf8)), row < paths.count else { return nil }
            return paths[row]
        }
    }

    /// An open file read with `pread`, closed when released.
    final class Descriptor {
        let fd: Int32
        let path: String

        init(path: String) throws {
            #if canImport(Glibc)
            fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            #else
            fd = Darwin.open(path, O_RDONLY | O_CLOEXEC)
            #endif
            self.path = path
            if fd < 0 { throw FeaturesError(file: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        }

        deinit { close(fd) }

        /// Reads exactly `count` bytes at `offset`.
        func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int) throws {
            var done = 0
            while done < count {
                let got = pread(fd, buffer + done, count - done, off_t(offset + done))
                if got < 0 {
                    if errno == EINTR { continue }
                    throw FeaturesError(file: path, message: "cannot read: \(String(cString: strerror(errno)))")
                }
                if got == 0 {
                    throw FeaturesError(file: path, message: "the file ends early (truncated, or rewritten while in use?)")
                }
                done += got
            }
        }
    }
}
