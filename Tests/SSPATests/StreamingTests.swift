import CLIP
import Foundation
import Tensor
import TestSupport
import Testing
@testable import SSPA

/// Issue 11 §1 and §2 in the library: features streamed from disk train exactly as features in memory, the block
/// shuffle is seeded and does not depend on how the data is split into files, a folder of shards is the file made
/// from the whole manifest, files that do not belong together are refused by name, and `maxSteps` stops training.
@Suite("Streamed and sharded features", .enabled(if: SyntheticData.available, "needs the tiny CLIP fixture"))
final class StreamingTests {
    let dir: URL

    init() throws { dir = try temporaryDirectory() }
    deinit { try? FileManager.default.removeItem(at: dir) }

    /// Generated features (`count` images, 5 regions, d 16, 6 labels).
    static func data(count: Int, seed: UInt64 = 9) throws -> SSPA.Features {
        var generator = SyntheticData()
        generator.regions = 5
        return try generator.make(count: count, directions: SyntheticData.directions(), seed: seed)
    }

    /// Rows `range` of `data` as features of their own.
    static func slice(_ data: SSPA.Features, _ range: Range<Int>) throws -> SSPA.Features {
        let rows = Array(range)
        let batch = data.batch(rows)
        return try SSPA.Features(x0: batch.x0, regions: batch.regions, labels: batch.labels, labelNames: data.labelNames,
                                 encoderSHA256: data.encoderSHA256, imagePaths: rows.map { data.imagePaths[$0] },
                                 regionMode: data.regionMode)
    }

    /// `data` written as one f16 file, and as four shard files (the slices `--shard I/4` would make) in a folder.
    func files(_ data: SSPA.Features) throws -> (file: String, folder: String) {
        let file = dir.appendingPathComponent("all.safetensors")
        try data.write(to: file, dtype: .f16)
        let folder = dir.appendingPathComponent("shards")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for i in 1...4 {
            let shard = SSPA.Shard(index: i, count: 4)
            try Self.slice(data, shard.range(of: data.count)).write(to: folder.appendingPathComponent(shard.fileName), dtype: .f16)
        }
        return (file.path, folder.path)
    }

    /// A fresh trainer over the tiny CLIP: 2 epochs of batch 6, shuffle blocks of 8 images.
    static func trainer(epochs: Int = 2, shuffleBlock: Int = 8, seed: UInt64 = 3) throws -> SSPA.Trainer {
        let u = try SyntheticData.directions()
        let (model, tokenizer) = try SyntheticData.model(SSPA.Config(), knowledge: u)
        var options = SSPA.TrainingOptions()
        options.epochs = epochs
        options.batchSize = 6
        options.learningRate = 0.01
        options.seed = seed
        options.shuffleBlock = shuffleBlock
        return try SSPA.Trainer(model: model, options: options,
                                parameters: SSPA.Trainer.initialParameters(model: model, tokenizer: tokenizer, seed: seed))
    }

    static func bits(_ p: SSPA.Parameters) -> [String: [UInt32]] {
        Dictionary(uniqueKeysWithValues: p.names.map { ($0, p[$0]!.scalars.map(\.bitPattern)) })
    }

    @Test func streamedTrainingEqualsInMemoryBitForBit() throws {
        let (file, _) = try files(try Self.data(count: 37))
        let inMemory = try SSPA.Features(contentsOf: URL(fileURLWithPath: file))
        let streamed = try SSPA.FeaturesDataset(path: file)
        #expect(streamed.count == 37 && streamed.width == 16 && streamed.regionCount == 5 && streamed.labelCount == 6)
        // The same rows, in any order, as the same floats.
        let rows = [36, 0, 5, 6, 7, 20, 19, 5]
        let a = inMemory.batch(rows), b = try streamed.batch(rows)
        #expect(a.x0.scalars == b.x0.scalars && a.regions.scalars == b.regions.scalars && a.labels.scalars == b.labels.scalars)
        #expect(try streamed.allLabels().scalars == inMemory.labels.scalars)

        let memoryRun = try Self.trainer(), streamRun = try Self.trainer()
        try memoryRun.run(train: inMemory, validation: inMemory)
        try streamRun.run(train: streamed, validation: streamed)
        #expect(streamRun.state.step == 2 * 7)
        #expect(Self.bits(memoryRun.parameters) == Self.bits(streamRun.parameters))
        #expect(memoryRun.state.history.map(\.validationMAP) == streamRun.state.history.map(\.validationMAP))
        let initial = try Self.trainer()
        #expect(Self.bits(initial.parameters) != Self.bits(streamRun.parameters), "training changed nothing")
    }

    @Test func blockShuffleIsSeededReproducibleAndBlockwise() throws {
        let n = 100, s = 16
        let order = SSPA.BlockShuffle.order(count: n, blockSize: s, seed: 3, epoch: 0)
        #expect(order.sorted() == Array(0..<n), "a permutation")
        #expect(order == SSPA.BlockShuffle.order(count: n, blockSize: s, seed: 3, epoch: 0), "reproducible")
        #expect(order != SSPA.BlockShuffle.order(count: n, blockSize: s, seed: 4, epoch: 0), "seeded")
        #expect(order != SSPA.BlockShuffle.order(count: n, blockSize: s, seed: 3, epoch: 1), "new each epoch")
        // Blocks one at a time: the sequence is runs of whole fixed index ranges [k·16, (k+1)·16).
        var position = 0
        var visited: [Int] = []
        while position < n {
            let block = order[position] / s
            let size = min(s, n - block * s)
            #expect(Set(order[position..<(position + size)]) == Set((block * s)..<(block * s + size)), "block \(block) at \(position)")
            visited.append(block)
            position += size
        }
        #expect(visited.sorted() == Array(0..<7) && visited != Array(0..<7), "blocks in a shuffled order")
        // Asked for batch by batch (batches crossing block ends), it is the same sequence.
        var shuffle = SSPA.BlockShuffle(count: n, blockSize: s, seed: 3, epoch: 0)
        var batched: [Int] = []
        for lo in stride(from: 0, to: n, by: 7) { batched += shuffle.indices(lo..<min(lo + 7, n)) }
        #expect(batched == order)
        // One block (0, or at least N) is the whole-dataset Fisher–Yates permutation training used before.
        var g = SplitMix64(seed: SSPA.Trainer.shuffleSeed(3, epoch: 2))
        var whole = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) { whole.swapAt(i, Int(g.next() % UInt64(i + 1))) }
        #expect(SSPA.BlockShuffle.order(count: n, blockSize: 0, seed: 3, epoch: 2) == whole)
        #expect(SSPA.BlockShuffle.order(count: n, blockSize: 4096, seed: 3, epoch: 2) == whole)
    }

    /// The shuffle and the rows a step reads do not depend on how the dataset is split into files.
    @Test func shuffleIsIndependentOfTheSplitIntoFiles() throws {
        let data = try Self.data(count: 29)
        let (file, folder) = try files(data)
        let one = try SSPA.FeaturesDataset(path: file), four = try SSPA.FeaturesDataset(path: folder)
        #expect(four.files.count == 4 && four.count == 29 && four.files.map(\.start) == [0, 7, 14, 21])
        var shuffle = SSPA.BlockShuffle(count: 29, blockSize: 8, seed: 11, epoch: 1)
        for lo in stride(from: 0, to: 29, by: 6) {
            let rows = shuffle.indices(lo..<min(lo + 6, 29))
            let a = try one.batch(rows), b = try four.batch(rows)
            #expect(a.x0.scalars == b.x0.scalars && a.regions.scalars == b.regions.scalars && a.labels.scalars == b.labels.scalars)
        }
    }

    @Test func fourShardsTrainedAsAFolderEqualTheSingleFile() throws {
        let (file, folder) = try files(try Self.data(count: 37))
        let single = try Self.trainer(), sharded = try Self.trainer(), listed = try Self.trainer()
        try single.run(train: SSPA.FeaturesDataset(path: file))
        try sharded.run(train: SSPA.FeaturesDataset(path: folder))
        let shardFiles = (1...4).map { folder + "/" + SSPA.Shard(index: $0, count: 4).fileName }
        try listed.run(train: SSPA.FeaturesDataset(paths: shardFiles))
        #expect(Self.bits(single.parameters) == Self.bits(sharded.parameters))
        #expect(Self.bits(single.parameters) == Self.bits(listed.parameters))
        // The files in another order are another dataset (another order of images), so another model.
        let shuffled = try Self.trainer()
        try shuffled.run(train: SSPA.FeaturesDataset(paths: [shardFiles[1], shardFiles[0], shardFiles[2], shardFiles[3]]))
        #expect(Self.bits(single.parameters) != Self.bits(shuffled.parameters))
    }

    @Test func filesThatDoNotBelongTogetherAreRefusedByName() throws {
        let data = try Self.data(count: 20)
        let (_, folder) = try files(data)
        let odd = folder + "/" + SSPA.Shard(index: 3, count: 4).fileName
        func refused(_ paths: [String], _ text: String...) {
            #expect(throws: SSPA.FeaturesError.self) { try SSPA.FeaturesDataset(paths: paths) }
            do { _ = try SSPA.FeaturesDataset(paths: paths) } catch {
                for t in text { #expect("\(error)".contains(t), "\(error)") }
            }
        }
        // Another encoder, other labels, another d, another region mode: the odd shard is named.
        var other = try Self.slice(data, 10..<15)
        other.encoderSHA256 = "another-encoder"
        try other.write(to: URL(fileURLWithPath: odd), dtype: .f16)
        refused([folder], "shard-00003-of-00004.safetensors", "CLIP encoder is another-enco", "shard-00001-of-00004.safetensors and 2 other(s)")
        other = try Self.slice(data, 10..<15)
        other.labelNames[2] = "lorry"
        try other.write(to: URL(fileURLWithPath: odd), dtype: .f16)
        refused([folder], "shard-00003-of-00004.safetensors: does not belong", "label list", "lorry")
        other = try Self.slice(data, 10..<15)
        other.regionMode = "value"
        try other.write(to: URL(fileURLWithPath: odd), dtype: .f16)
        refused([folder], "shard-00003-of-00004.safetensors", "region mode is --regions value")
        let narrow = try SSPA.Features(x0: Tensor(zeros: [5, 8]), regions: Tensor(zeros: [5, 5, 8]), labels: Tensor(zeros: [5, 6]),
                                       labelNames: data.labelNames, encoderSHA256: data.encoderSHA256)
        try narrow.write(to: URL(fileURLWithPath: odd))
        refused([folder], "shard-00003-of-00004.safetensors", "width d is 8")
        // A missing shard, a shard of another split, a file given twice.
        try FileManager.default.removeItem(atPath: odd)
        refused([folder], "missing 1 of its 4 shards", "shard-00003-of-00004.safetensors")
        try Self.slice(data, 10..<15).write(to: URL(fileURLWithPath: folder + "/shard-00003-of-00005.safetensors"))
        refused([folder], "different splits")
        let first = folder + "/" + SSPA.Shard(index: 1, count: 4).fileName
        refused([first, first], "given twice")
    }

    @Test func maxStepsStopsAndResumingContinuesAsIfNeverStopped() throws {
        let data = try Self.data(count: 37)
        let whole = try Self.trainer(epochs: 2)
        try whole.run(train: data)

        let stopped = try Self.trainer(epochs: 2)
        #expect(try stopped.run(train: data, maxSteps: 9) == false)
        #expect(stopped.state.step == 9 && stopped.state.epoch == 1 && stopped.state.batchInEpoch == 2)
        // Asking again with the same limit does nothing; without it, training finishes as one run would have.
        #expect(try stopped.run(train: data, maxSteps: 9) == false && stopped.state.step == 9)
        #expect(try stopped.run(train: data))
        #expect(stopped.state.step == whole.state.step)
        #expect(Self.bits(stopped.parameters) == Self.bits(whole.parameters))
        // A limit beyond the last epoch ends with the epochs.
        let beyond = try Self.trainer(epochs: 1)
        #expect(try beyond.run(train: data, maxSteps: 1000) && beyond.state.step == 7)
    }

    @Test func shardSlicesAreContiguousAndCoverTheManifest() throws {
        for n in [1, 2, 7, 10, 101] {
            for batch in [1, 2, 3, 32] {
                let batches = (n + batch - 1) / batch
                for total in 1...min(batches, 9) {
                    let ranges = (1...total).map { SSPA.Shard(index: $0, count: total).range(of: n, batch: batch) }
                    #expect(ranges.flatMap { Array($0) } == Array(0..<n), "n \(n), batch \(batch), \(total) shards")
                    #expect(ranges.allSatisfy { $0.lowerBound % batch == 0 && !$0.isEmpty }, "whole batches")
                    let sizes = ranges.map { ($0.count + batch - 1) / batch }
                    #expect(sizes.max()! - sizes.min()! <= 1, "balanced: \(sizes) batches")
                }
            }
        }
        #expect((1...4).map { SSPA.Shard(index: $0, count: 4).range(of: 10) } == [0..<2, 2..<5, 5..<7, 7..<10])
        #expect((1...4).map { SSPA.Shard(index: $0, count: 4).range(of: 10, batch: 2) } == [0..<2, 2..<4, 4..<6, 6..<10])
        // Shards are whole batches: a manifest of fewer batches than shards is refused with what it allows.
        #expect(try SSPA.Shard(index: 2, count: 4).slice(of: 10, batch: 2, source: "m.csv") == 2..<4)
        let tooMany = #expect(throws: SSPA.ShardError.self) { try SSPA.Shard(index: 1, count: 4).slice(of: 3, batch: 2, source: "m.csv") }
        #expect(tooMany?.message.contains("the 3 images of m.csv make 2 batch(es) of --batch 2, fewer than 4 shards") == true)
        let shard = try SSPA.Shard(parsing: "3/16", environment: [:])
        #expect(shard == SSPA.Shard(index: 3, count: 16) && shard.fileName == "shard-00003-of-00016.safetensors")
        #expect(SSPA.Shard(fileName: shard.fileName) == shard)
        #expect(SSPA.Shard(fileName: "shard-3-of-16.safetensors") == nil && SSPA.Shard(fileName: "train.safetensors") == nil)
    }

    @Test func shardAutoReadsSLURMAndKubernetesIndicesFromZero() throws {
        #expect(try SSPA.Shard(parsing: "auto/4", environment: ["SLURM_ARRAY_TASK_ID": "0"]) == SSPA.Shard(index: 1, count: 4))
        #expect(try SSPA.Shard(parsing: "auto/4", environment: ["SLURM_ARRAY_TASK_ID": "3"]) == SSPA.Shard(index: 4, count: 4))
        #expect(try SSPA.Shard(parsing: "auto/4", environment: ["JOB_COMPLETION_INDEX": "2"]) == SSPA.Shard(index: 3, count: 4))
        #expect(try SSPA.Shard(parsing: "auto/4", environment: ["JOB_COMPLETION_INDEX": "2", "SLURM_ARRAY_TASK_ID": "2"]) == SSPA.Shard(index: 3, count: 4))
        func refused(_ text: String, _ message: String, environment: [String: String] = [:]) {
            do {
                let shard = try SSPA.Shard(parsing: text, environment: environment)
                Issue.record("--shard \(text) \(environment) was accepted as \(shard)")
            } catch {
                #expect("\(error)".contains(message), "--shard \(text): \(error)")
            }
        }
        refused("0/4", "shard 0 does not exist; shards are numbered 1 to 4")
        refused("5/4", "shard 5 does not exist")
        refused("4", "give I/N")
        refused("a/4", "give I/N")
        refused("1/0", "N must be a whole number of shards")
        refused("1/x", "N must be a whole number")
        refused("1/100000", "at most 99999 shards")
        refused("auto/4", "neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set")
        refused("auto/4", "SLURM_ARRAY_TASK_ID=4 is outside 0...3 (it counts from 0; submit the array as --array=0-3)", environment: ["SLURM_ARRAY_TASK_ID": "4"])
        refused("auto/4", "JOB_COMPLETION_INDEX=-1 is outside 0...3", environment: ["JOB_COMPLETION_INDEX": "-1"])
        refused("auto/4", "SLURM_ARRAY_TASK_ID=two is not a whole number", environment: ["SLURM_ARRAY_TASK_ID": "two"])
        refused("auto/4", "disagree", environment: ["SLURM_ARRAY_TASK_ID": "1", "JOB_COMPLETION_INDEX": "2"])
    }

    /// Checkpoints written before the block shuffle have no `shuffle_block` and resume with the whole-dataset order.
    @Test func optionsWithoutAShuffleBlockMeanTheWholeDataset() throws {
        var options = SSPA.TrainingOptions()
        #expect(options.shuffleBlock == 4096)
        options.shuffleBlock = 100
        let encoded = try JSONEncoder().encode(options)
        #expect(try JSONDecoder().decode(SSPA.TrainingOptions.self, from: encoded) == options)
        var object = try #require(try JSONSerialization.jsonObject(with: encoded) as? [String: Any])
        object["shuffle_block"] = nil
        let old = try JSONDecoder().decode(SSPA.TrainingOptions.self, from: JSONSerialization.data(withJSONObject: object))
        #expect(old.shuffleBlock == 0)
    }
}
