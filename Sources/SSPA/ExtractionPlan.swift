import Foundation

extension SSPA {
    /// What a run of `sspa features` has left to do, from what its work folder holds: the manifest slice falls into
    /// whole batches of `batchSize` images; a batch is done when its record file exists. Pure: computed from the
    /// count, the batch size and the finished batches, so it is tested without a model.
    public struct ExtractionPlan: Sendable, Hashable {
        /// Images in the slice extracted.
        public var imageCount: Int
        public var batchSize: Int
        /// Batch indices already finished, ascending.
        public var done: [Int]

        public init(imageCount: Int, batchSize: Int, finished: Set<Int>) {
            precondition(batchSize >= 1, "ExtractionPlan: batch size must be at least 1")
            self.imageCount = imageCount
            self.batchSize = batchSize
            let batches = (imageCount + batchSize - 1) / batchSize
            done = finished.filter { (0..<batches).contains($0) }.sorted()
        }

        /// The plan of the work folder `folder`: its finished batches are those with a record file.
        public init(folder: URL, imageCount: Int, batchSize: Int) {
            let batches = (imageCount + batchSize - 1) / batchSize
            let fm = FileManager.default
            self.init(imageCount: imageCount, batchSize: batchSize,
                      finished: Set((0..<batches).filter { fm.fileExists(atPath: folder.appendingPathComponent(Self.recordName($0)).path) }))
        }

        /// Batches in all.
        public var batchCount: Int { (imageCount + batchSize - 1) / batchSize }
        /// Batches still to extract, ascending.
        public var remaining: [Int] {
            let finished = Set(done)
            return (0..<batchCount).filter { !finished.contains($0) }
        }
        /// The image indices of batch `k` within the slice.
        public func images(ofBatch k: Int) -> Range<Int> { (k * batchSize)..<min(imageCount, (k + 1) * batchSize) }
        /// Images already extracted.
        public var imagesDone: Int { done.reduce(0) { $0 + images(ofBatch: $1).count } }
        public var isComplete: Bool { done.count == batchCount }

        /// The features file of batch `k` in the work folder.
        public static func batchName(_ k: Int) -> String { String(format: "batch-%06ld.safetensors", k) }
        /// The record (skipped images, count written) of batch `k`; its presence marks the batch done.
        public static func recordName(_ k: Int) -> String { String(format: "batch-%06ld.json", k) }
    }
}
