import Foundation

extension SSPA {
    /// One of `count` contiguous slices of a manifest, `index` counted from 1 (`sspa features --shard I/N`).
    ///
    /// The slices fall on batch boundaries: of the `b = ⌈n/batch⌉` batches of `n` images, shard `I` of `N` holds
    /// batches `⌊(I−1)·b/N⌋ ..< ⌊I·b/N⌋`. So each shard encodes exactly the batches the run over the whole
    /// manifest encodes (CLIP's outputs differ in their last bits with the make-up of a batch), and the shards,
    /// read in order, are the single file bit for bit. The slices depend on nothing but `n`, `batch`, `I` and `N`.
    public struct Shard: Sendable, Hashable, CustomStringConvertible {
        public let index: Int
        public let count: Int

        /// The environment variables `auto/N` reads, in the order they are tried; both count from 0.
        public static let environmentVariables = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"]
        /// The most shards a manifest may be split into (five digits in the file names).
        public static let maxCount = 99_999

        public init(index: Int, count: Int) {
            precondition(count >= 1 && (1...count).contains(index), "Shard: \(index)/\(count)")
            self.index = index
            self.count = count
        }

        /// Parses `I/N` (I from 1) or `auto/N`, which takes the index from `SLURM_ARRAY_TASK_ID` (a SLURM job array
        /// submitted with `--array=0-(N-1)`) or `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job of N
        /// completions), both counted from 0.
        public init(parsing text: String, environment: [String: String]) throws {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            let usage = "give I/N (shard I of N, I from 1 to N) or auto/N (I from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX)"
            guard parts.count == 2 else { throw ShardError("--shard \(text): \(usage)") }
            guard let total = Int(parts[1]), total >= 1 else {
                throw ShardError("--shard \(text): N must be a whole number of shards, at least 1; \(usage)")
            }
            guard total <= Self.maxCount else { throw ShardError("--shard \(text): at most \(Self.maxCount) shards") }
            if parts[0] == "auto" {
                let found = Self.environmentVariables.compactMap { name in environment[name].map { (name, $0) } }
                guard let (name, value) = found.first else {
                    throw ShardError("--shard auto/\(total): neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set; run it as a SLURM array task or a Kubernetes Indexed Job, or give the shard as I/\(total)")
                }
                guard let zeroBased = Int(value.trimmingCharacters(in: .whitespaces)) else {
                    throw ShardError("--shard auto/\(total): \(name)=\(value) is not a whole number")
                }
                if found.count > 1, Int(found[1].1.trimmingCharacters(in: .whitespaces)) != zeroBased {
                    throw ShardError("--shard auto/\(total): \(name)=\(value) and \(found[1].0)=\(found[1].1) disagree; unset one")
                }
                guard (0..<total).contains(zeroBased) else {
                    let hint = name == "SLURM_ARRAY_TASK_ID" ? "submit the array as --array=0-\(total - 1)" : "give the Indexed Job completions: \(total)"
                    throw ShardError("--shard auto/\(total): \(name)=\(value) is outside 0...\(total - 1) (it counts from 0; \(hint))")
                }
                self.init(index: zeroBased + 1, count: total)
                return
            }
            guard let index = Int(parts[0]) else { throw ShardError("--shard \(text): \(usage)") }
            guard (1...total).contains(index) else {
                throw ShardError("--shard \(text): shard \(index) does not exist; shards are numbered 1 to \(total)")
            }
            self.init(index: index, count: total)
        }

        /// Reads the shard back from a file name `shard-IIIII-of-NNNNN.safetensors`; nil for other names.
        public init?(fileName: String) {
            let name = fileName.hasSuffix(".safetensors") ? String(fileName.dropLast(".safetensors".count)) : ""
            let parts = name.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 4, parts[0] == "shard", parts[2] == "of", parts[1].count == 5, parts[3].count == 5,
                  parts[1].allSatisfy(\.isASCII), parts[3].allSatisfy(\.isASCII),
                  let index = Int(parts[1]), let total = Int(parts[3]), total >= 1, (1...total).contains(index) else { return nil }
            self.init(index: index, count: total)
        }

        /// The images of this shard among `images` extracted `batch` at a time (empty when there are fewer batches
        /// than shards).
        public func range(of images: Int, batch: Int = 1) -> Range<Int> {
            precondition(images >= 0 && batch >= 1, "Shard: \(images) images, batch \(batch)")
            let batches = (images + batch - 1) / batch
            // No overflow: batches ≤ Int.max / maxCount on any real manifest, checked here.
            precondition(batches <= Int.max / Self.maxCount, "Shard: \(batches) batches")
            let lo = (index - 1) * batches / count, hi = index * batches / count
            return min(images, lo * batch)..<min(images, hi * batch)
        }

        /// The images of this shard among the `images` of `source` (named in the message), extracted `batch` at a
        /// time. Shards are whole batches, so a manifest of fewer batches than shards is an error that says how many
        /// shards it allows.
        public func slice(of images: Int, batch: Int, source: String) throws -> Range<Int> {
            let batches = (images + batch - 1) / batch
            guard count <= batches else {
                throw ShardError("--shard \(self): the \(images) images of \(source) make \(batches) batch(es) of --batch \(batch), fewer than \(count) shards (shards are whole batches); use at most \(batches) shards or a smaller --batch")
            }
            return range(of: images, batch: batch)
        }

        /// The shard's file in its folder: `shard-00003-of-00016.safetensors`.
        public var fileName: String { String(format: "shard-%05ld-of-%05ld.safetensors", index, count) }

        public var description: String { "\(index)/\(count)" }
    }

    /// A `--shard` value that cannot be used; the message says why and what to give.
    public struct ShardError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }
}
