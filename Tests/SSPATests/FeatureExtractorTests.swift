import CLIP
import Foundation
import Images
import Tensor
import TestSupport
import Testing
@testable import SSPA

/// The library side of `sspa features` and `sspa predict`: the pure resume plan, the resumable extractor and the
/// predictor, on generated PNGs and the tiny CLIP.
@Suite("Feature extraction plan, extractor and predictor")
struct FeatureExtractorTests {
    @Test func thePlanIsWhatTheFinishedBatchesLeave() throws {
        let fresh = SSPA.ExtractionPlan(imageCount: 7, batchSize: 3, finished: [])
        #expect(fresh.batchCount == 3 && fresh.remaining == [0, 1, 2] && fresh.imagesDone == 0 && !fresh.isComplete)
        #expect(fresh.images(ofBatch: 2) == 6..<7, "the last batch is short")
        let partly = SSPA.ExtractionPlan(imageCount: 7, batchSize: 3, finished: [2, 0, 9])
        #expect(partly.done == [0, 2] && partly.remaining == [1] && partly.imagesDone == 4, "batch 9 does not exist")
        #expect(SSPA.ExtractionPlan(imageCount: 7, batchSize: 3, finished: [0, 1, 2]).isComplete)
        #expect(SSPA.ExtractionPlan(imageCount: 0, batchSize: 3, finished: []).isComplete)
        // From a work folder: a batch is done when its record exists (a features file alone is not enough).
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("{}".utf8).write(to: dir.appendingPathComponent(SSPA.ExtractionPlan.recordName(1)))
        try Data().write(to: dir.appendingPathComponent(SSPA.ExtractionPlan.batchName(2)))
        #expect(SSPA.ExtractionPlan(folder: dir, imageCount: 7, batchSize: 3) == SSPA.ExtractionPlan(imageCount: 7, batchSize: 3, finished: [1]))
    }

    /// `count` generated PNGs in `dir/images`, as manifest entries over `labels`.
    static func images(_ dir: URL, count: Int) throws -> [SSPA.Manifest.Entry] {
        var gen = ShapeImages(state: 21)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("images"), withIntermediateDirectories: true)
        return try (0..<count).map { n in
            let (image, labels) = gen.make()
            let url = dir.appendingPathComponent("images/\(n).png")
            try Images.PNGWriter.write(image, to: url)
            return SSPA.Manifest.Entry(path: url, labels: ShapeImages.labelNames.map { labels.contains($0) ? 1 : 0 })
        }
    }

    static func extractor(_ encoder: SSPA.ImageEncoder, _ entries: [SSPA.Manifest.Entry], output: URL) -> SSPA.FeatureExtractor {
        let inputs = SSPA.PartialFeatures.Inputs(manifest: "m.csv", manifestSHA256: "x", labelSet: "shapes", labels: ShapeImages.labelNames,
                                                 partial: false, regions: "patch", encoder: "tiny", batch: 2, maxImagePixels: 1 << 20,
                                                 images: entries.map(\.path.path))
        return SSPA.FeatureExtractor(encoder: encoder, entries: entries, labelNames: ShapeImages.labelNames, inputs: inputs,
                                     output: output, dtype: .f16, source: "m.csv") { data, url in try data.write(to: url) }
    }

    @Test(.enabled(if: SyntheticData.available, "needs the tiny CLIP fixture"))
    func anInterruptedExtractionResumesIntoTheSameFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let entries = try Self.images(dir, count: 5)
        let encoder = try SSPA.ImageEncoder(directory: SyntheticData.checkpoint, mode: .patch)
        let resumed = Self.extractor(encoder, entries, output: dir.appendingPathComponent("resumed.safetensors"))
        let error = #expect(throws: SSPA.FeatureExtractor.ExtractionError.self) { try resumed.run(shouldStop: { $0 >= 2 }) }
        #expect(error?.kind == .interrupted)
        #expect(SSPA.ExtractionPlan(folder: resumed.workFolder, imageCount: 5, batchSize: 2).done == [0])
        var events: [String] = []
        let summary = try resumed.run(events: { event in
            if case .resuming(let plan) = event { events.append("resuming \(plan.done)") }
        })
        #expect(events == ["resuming [0]"])
        #expect(summary.images == 5 && summary.fresh == 3 && summary.skipped.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: resumed.workFolder.path), "the work folder is removed when done")

        let whole = Self.extractor(encoder, entries, output: dir.appendingPathComponent("whole.safetensors"))
        _ = try whole.run()
        #expect(try Data(contentsOf: resumed.output) == (try Data(contentsOf: whole.output)), "resuming changes no byte")
        // The disk estimate is exact: the features' bytes twice (the batches and the whole file), the header aside.
        let file = try Data(contentsOf: whole.output)
        let headerLength = file.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        #expect(whole.bytesNeeded == 2 * Int64(file.count - 8 - headerLength), "estimate \(whole.bytesNeeded), file \(file.count)")
        #expect(try SSPA.FeatureExtractor.isFinished(whole.output, inputs: whole.inputs, what: "it"))
        var other = whole.inputs
        other.batch = 3
        let conflict = #expect(throws: SSPA.FeatureExtractor.ExtractionError.self) {
            try SSPA.FeatureExtractor.isFinished(whole.output, inputs: other, what: "shard 1/2")
        }
        #expect(conflict?.kind == .conflict && conflict?.message.contains("shard 1/2 made from other inputs") == true)
    }

    @Test(.enabled(if: SyntheticData.available, "needs the tiny CLIP fixture"))
    func thePredictorIsTheModelsInferenceOnTheEncodedImages() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let entries = try Self.images(dir, count: 3)
        let broken = dir.appendingPathComponent("images/broken.png")
        try Data("not a png".utf8).write(to: broken)
        let encoder = try SSPA.ImageEncoder(directory: SyntheticData.checkpoint, mode: .patch)
        let u = try SyntheticData.directions()
        let (model, tokenizer) = try SyntheticData.model(SSPA.Config(), knowledge: u)
        let parameters = try SSPA.Trainer.initialParameters(model: model, tokenizer: tokenizer, seed: 3)
        let predictor = try SSPA.Predictor(model: model, parameters: parameters, encoder: encoder, labelSet: "synthetic",
                                           labels: SyntheticData.labelNames, displayNames: SyntheticData.labelNames, source: "test")
        let urls = [entries[0].path, broken, entries[1].path, entries[2].path]
        let batch = try predictor.predict(urls, selection: .top(2), keepCrops: true)
        #expect(batch.failed.map(\.image) == [broken])
        #expect(batch.predictions.map(\.index) == [0, 2, 3])
        // The same numbers as the model's inference on the encoded pixels.
        let pixels = encoder.decode(entries.map(\.path)).map { $0.pixels! }
        let features = encoder.encode(pixels)
        let p = model.infer(parameters, x0: features.x0, regions: features.regions).probabilities.scalars
        let c = SyntheticData.labelNames.count
        for (b, prediction) in batch.predictions.enumerated() {
            #expect(prediction.labels.count == 2 && prediction.labels[0].probability >= prediction.labels[1].probability)
            for label in prediction.labels {
                let j = try #require(SyntheticData.labelNames.firstIndex(of: label.label))
                #expect(label.probability == Double(p[b * c + j]))
            }
            #expect(prediction.explained == prediction.labels.map(\.label))
            #expect(prediction.maps.allSatisfy { $0.count == encoder.grid * encoder.grid && abs($0.reduce(0, +) - 1) < 1e-4 })
            #expect(prediction.crop != nil)
        }
        // Nothing above the threshold: nothing predicted, the most probable label explained.
        let none = try predictor.predict([entries[0].path], selection: .threshold(1))
        #expect(none.predictions[0].labels.isEmpty && none.predictions[0].explained.count == 1 && none.predictions[0].crop == nil)
    }
}
