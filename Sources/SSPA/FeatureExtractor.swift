import CLIP
import Foundation
import Tensor

extension SSPA {
    /// `sspa features`' work: a manifest slice through the CLIP vision tower into one features file, batch by batch
    /// in a resumable work folder (`OUT.partial/`, `PartialFeatures`), then assembled and written whole. A run with
    /// the same inputs continues the finished batches (`ExtractionPlan`); a shard already written from the same
    /// inputs is never extracted again (`isFinished`).
    public struct FeatureExtractor {
        /// The metadata key of a features file that records the SHA-256 of the inputs it was made from.
        public static let inputsKey = "sspa_inputs_sha256"

        public let encoder: ImageEncoder
        /// The images of the slice, in manifest order.
        public let entries: [Manifest.Entry]
        /// The label set's raw names, in column order.
        public let labelNames: [String]
        /// What the output is made from (its SHA-256 is stored in the file).
        public let inputs: PartialFeatures.Inputs
        /// The features file to write.
        public let output: URL
        public let dtype: SafeTensors.DType
        /// Writes whole files in place (the command's writer, which names a full disk).
        public let write: (Data, URL) throws -> Void
        /// The manifest as messages name it.
        public let source: String

        public init(encoder: ImageEncoder, entries: [Manifest.Entry], labelNames: [String], inputs: PartialFeatures.Inputs,
                    output: URL, dtype: SafeTensors.DType, source: String, write: @escaping (Data, URL) throws -> Void) {
            self.source = source
            self.encoder = encoder
            self.entries = entries
            self.labelNames = labelNames
            self.inputs = inputs
            self.output = output
            self.dtype = dtype
            self.write = write
        }

        /// An image that was left out, and why.
        public struct Skipped: Codable, Sendable, Hashable {
            public var path: String
            public var error: String
        }

        /// One finished batch's record.
        struct BatchRecord: Codable {
            var skipped: [Skipped]
            var written: Int
        }

        /// What a run reports while it works.
        public enum Event: Sendable {
            /// The work folder held finished batches of the same inputs.
            case resuming(ExtractionPlan)
            /// A batch is done: images done in all, and of them extracted in this run.
            case progress(done: Int, fresh: Int)
        }

        /// What a finished run made.
        public struct Summary: Sendable {
            public var images: Int
            public var regionCount: Int
            public var width: Int
            /// Images extracted by this run (not resumed).
            public var fresh: Int
            public var skipped: [Skipped]
        }

        /// The run cannot go on; `kind` says how.
        public struct ExtractionError: Error, CustomStringConvertible, Sendable {
            public enum Kind: Sendable { case interrupted, unreadable, nothingDecoded, conflict, cannotCreate }
            public var kind: Kind
            public var message: String
            public var description: String { message }
        }

        /// The work folder beside the output.
        public var workFolder: URL { URL(fileURLWithPath: output.path + ".partial") }

        /// The disk space a run needs at most: the features of every image, written once in batches and once whole
        /// (both exist at the end). Per image: `(M + 1) × d` values of `dtype` and one byte per label.
        public var bytesNeeded: Int64 {
            let valueBytes: Int64 = dtype == .f32 ? 4 : 2
            let perImage = Int64(encoder.grid * encoder.grid + 1) * Int64(encoder.width) * valueBytes + Int64(labelNames.count)
            return 2 * Int64(entries.count) * perImage
        }

        /// Whether `output` already holds the features of these inputs (a finished shard); throws a conflict when it
        /// holds features made from other inputs.
        public static func isFinished(_ output: URL, inputs: PartialFeatures.Inputs, what: String) throws -> Bool {
            guard FileManager.default.fileExists(atPath: output.path) else { return false }
            let made = (try? SafeTensors(path: output.path))?.metadata[inputsKey]
            guard made == inputs.sha256 else {
                throw ExtractionError(kind: .conflict, message: "\(output.path) already holds \(what) made from other inputs\(made == nil ? " (or by an older sspa)" : ""); delete it to extract \(what) again")
            }
            return true
        }

        /// Extracts what is left, then writes the whole file and removes the work folder. `shouldStop` is asked
        /// before each batch, with the images extracted so far by this run: when it says stop, the finished batches
        /// are kept and the run throws `.interrupted`.
        public func run(shouldStop: (_ fresh: Int) -> Bool = { _ in false }, events: (Event) -> Void = { _ in }) throws -> Summary {
            let work = PartialFeatures(folder: workFolder)
            PartialFeatures.removeStaleTemporaries(beside: output)
            let resumed: Bool
            do {
                resumed = try work.open(for: inputs, command: "the same options") == .resumed
            } catch let conflict as PartialFeatures.Conflict {
                throw ExtractionError(kind: .conflict, message: conflict.message)
            } catch {
                throw ExtractionError(kind: .cannotCreate, message: "cannot create \(workFolder.path): \((error as NSError).localizedFailureReason ?? "\(error)")")
            }
            let plan = ExtractionPlan(folder: workFolder, imageCount: entries.count, batchSize: inputs.batch)
            if resumed && !plan.done.isEmpty { events(.resuming(plan)) }
            var finished = plan.imagesDone
            var fresh = 0
            for k in plan.remaining {
                if shouldStop(fresh) {
                    throw ExtractionError(kind: .interrupted, message: "interrupted after \(finished) of \(entries.count) images; run the same command again to continue (kept in \(workFolder.path))")
                }
                let slice = Array(entries[plan.images(ofBatch: k)])
                try extractBatch(k, slice)
                finished += slice.count
                fresh += slice.count
                events(.progress(done: finished, fresh: fresh))
            }
            let summary = try assemble(plan)
            work.remove()
            return Summary(images: summary.images, regionCount: summary.regionCount, width: summary.width, fresh: fresh,
                           skipped: summary.skipped)
        }

        /// Decodes, encodes and saves batch `k` with its record (written last: it marks the batch done).
        func extractBatch(_ k: Int, _ slice: [Manifest.Entry]) throws {
            let decoded = encoder.decode(slice.map(\.path))
            var skipped: [Skipped] = []
            var good: [(Manifest.Entry, Tensor)] = []
            for (entry, d) in zip(slice, decoded) {
                if let pixels = d.pixels { good.append((entry, pixels)) } else { skipped.append(Skipped(path: entry.path.path, error: d.error ?? "cannot decode")) }
            }
            let batchURL = workFolder.appendingPathComponent(ExtractionPlan.batchName(k))
            if !good.isEmpty {
                let output = encoder.encode(good.map(\.1))
                let labels = Tensor(good.flatMap { $0.0.labels.map { Float($0) } }, shape: [good.count, labelNames.count])
                let part = try Features(x0: output.x0, regions: output.regions, labels: labels, labelNames: labelNames,
                                        encoderSHA256: inputs.encoder, imagePaths: good.map { $0.0.path.path },
                                        regionMode: encoder.mode.rawValue, file: batchURL.path)
                try write(try part.serialized(dtype: dtype), batchURL)
            }
            try write(try JSONEncoder().encode(BatchRecord(skipped: skipped, written: good.count)),
                      workFolder.appendingPathComponent(ExtractionPlan.recordName(k)))
        }

        /// Joins the batches in order into the output file.
        func assemble(_ plan: ExtractionPlan) throws -> (images: Int, regionCount: Int, width: Int, skipped: [Skipped]) {
            var x0: [Tensor] = [], xs: [Tensor] = [], ys: [Tensor] = [], paths: [String] = [], skipped: [Skipped] = []
            for k in 0..<plan.batchCount {
                let record = workFolder.appendingPathComponent(ExtractionPlan.recordName(k))
                guard let data = FileManager.default.contents(atPath: record.path),
                      let r = try? JSONDecoder().decode(BatchRecord.self, from: data) else {
                    throw ExtractionError(kind: .unreadable, message: "\(record.path) is unreadable; delete \(workFolder.path) and run again")
                }
                skipped += r.skipped
                if r.written > 0 {
                    let part = try Features(contentsOf: workFolder.appendingPathComponent(ExtractionPlan.batchName(k)))
                    x0.append(part.x0)
                    xs.append(part.regions)
                    ys.append(part.labels)
                    paths += part.imagePaths
                }
            }
            guard !x0.isEmpty else {
                let list = skipped.prefix(10).map { "  \($0.error)" }.joined(separator: "\n")
                throw ExtractionError(kind: .nothingDecoded, message: "no image of \(source) could be decoded (\(skipped.count) skipped):\n\(list)")
            }
            let all = try Features(x0: Ops.concat(x0, axis: 0), regions: Ops.concat(xs, axis: 0), labels: Ops.concat(ys, axis: 0),
                                   labelNames: labelNames, encoderSHA256: inputs.encoder, imagePaths: paths,
                                   regionMode: encoder.mode.rawValue, file: output.path)
            try write(try all.serialized(dtype: dtype, extra: [Self.inputsKey: inputs.sha256]), output)
            return (all.count, all.regionCount, all.width, skipped)
        }
    }
}
