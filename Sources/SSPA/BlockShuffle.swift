import Tensor

extension SSPA {
    /// The order in which training visits the images of one epoch: shuffled in blocks of fixed index ranges.
    ///
    /// The images `0..<count` (the files of a dataset in order, so four shards are one file) fall into blocks
    /// `[k·S, (k+1)·S)` of `S = blockSize` images (the last one shorter). An epoch visits the blocks in a seeded
    /// random order and, inside each block, the images in a seeded random order; batches are consecutive runs of
    /// that sequence. A step therefore reads from one block (two at a block's end) instead of from all over a large
    /// file, and the order depends on the seed, the epoch, `count` and `S` only, never on how the data is split into
    /// files or whether it is read from disk or memory.
    ///
    /// - Epoch seed `e = Trainer.shuffleSeed(seed, epoch:)`.
    /// - Block order: Fisher–Yates over `0..<blocks` with `SplitMix64(seed: e ^ 0x424C4F434B4F5244)` ("BLOCKORD").
    /// - Inside block `k`: Fisher–Yates over its indices with `SplitMix64(seed: e ^ mix(k))`, `mix` SplitMix64's
    ///   finaliser (`mix(0) = 0`), so one block (`S ≥ count`, or `S = 0`, "the whole dataset") is exactly the
    ///   whole-dataset permutation training used before issue 11.
    ///
    /// Memory is one integer per block plus one per image of the block in use, whatever `count` is.
    public struct BlockShuffle: Sendable {
        public let count: Int
        /// Images per block (`count` when the option is 0 or larger than the dataset).
        public let blockSize: Int
        public let epochSeed: UInt64
        /// Block numbers in the order the epoch visits them.
        public let blockOrder: [Int]
        /// Where each visited block starts in the epoch's sequence (`blockOrder.count + 1` entries).
        private let starts: [Int]
        private var cached: (slot: Int, order: [Int])?

        public init(count: Int, blockSize: Int, seed: UInt64, epoch: Int) {
            precondition(count >= 0 && blockSize >= 0)
            self.count = count
            self.blockSize = blockSize == 0 || blockSize > count ? max(count, 1) : blockSize
            epochSeed = Trainer.shuffleSeed(seed, epoch: epoch)
            let blocks = (count + self.blockSize - 1) / self.blockSize
            var generator = SplitMix64(seed: epochSeed ^ 0x424C_4F43_4B4F_5244)
            blockOrder = Self.fisherYates(Array(0..<blocks), &generator)
            var starts = [0]
            starts.reserveCapacity(blocks + 1)
            for k in blockOrder { starts.append(starts.last! + min(self.blockSize, count - k * self.blockSize)) }
            self.starts = starts
        }

        /// The images at positions `positions` of the epoch's sequence.
        public mutating func indices(_ positions: Range<Int>) -> [Int] {
            precondition(positions.lowerBound >= 0 && positions.upperBound <= count, "BlockShuffle: \(positions) outside 0..<\(count)")
            var out: [Int] = []
            out.reserveCapacity(positions.count)
            var position = positions.lowerBound
            while position < positions.upperBound {
                // The visited block holding `position`: the last start at or before it.
                var lo = 0, hi = blockOrder.count - 1
                while lo < hi {
                    let mid = (lo + hi + 1) / 2
                    if starts[mid] <= position { lo = mid } else { hi = mid - 1 }
                }
                let order = blockOrder(slot: lo)
                let end = min(positions.upperBound, starts[lo + 1])
                out += order[(position - starts[lo])..<(end - starts[lo])]
                position = end
            }
            return out
        }

        /// The whole epoch's sequence (for tests and small data; training asks for one batch at a time).
        public static func order(count: Int, blockSize: Int, seed: UInt64, epoch: Int) -> [Int] {
            var shuffle = BlockShuffle(count: count, blockSize: blockSize, seed: seed, epoch: epoch)
            return shuffle.indices(0..<count)
        }

        /// The shuffled indices of the block visited `slot`-th, kept for the next batch.
        private mutating func blockOrder(slot: Int) -> [Int] {
            if let cached, cached.slot == slot { return cached.order }
            let k = blockOrder[slot]
            let lo = k * blockSize
            var generator = SplitMix64(seed: epochSeed ^ Self.mix(UInt64(k)))
            let order = Self.fisherYates(Array(lo..<min(lo + blockSize, count)), &generator)
            cached = (slot, order)
            return order
        }

        static func fisherYates(_ values: [Int], _ generator: inout SplitMix64) -> [Int] {
            var values = values
            if values.count > 1 {
                for i in stride(from: values.count - 1, to: 0, by: -1) {
                    values.swapAt(i, Int(generator.next() % UInt64(i + 1)))
                }
            }
            return values
        }

        /// SplitMix64's output finaliser: a bijection with `mix(0) = 0`.
        static func mix(_ x: UInt64) -> UInt64 {
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
