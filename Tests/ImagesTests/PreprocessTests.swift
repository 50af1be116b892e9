import Foundation
import Tensor
import TestSupport
import Testing

@testable import Images

@Suite struct PreprocessTests {
    /// Compares our pixel values with CLIPImageProcessor's. Pillow's 8-bit bicubic (`ImagingResample`) is reproduced
    /// step for step, fixed-point weights and per-pass rounding included, so the resized 8-bit images agree exactly
    /// and only Float rounding of rescale/normalise remains (observed max |Δ| ≈ 2.4e-7). Stated tolerance: max |Δ|
    /// ≤ 1e-5 (far below one 8-bit level, 1/255/std ≈ 0.015), mean |Δ| ≤ 1e-6.
    func compare(_ ours: Tensor, _ reference: Tensor, _ label: String) {
        #expect(ours.shape == reference.shape)
        var maxAbs: Float = 0, sum: Float = 0
        ours.withUnsafeBufferPointer { a in
            reference.withUnsafeBufferPointer { b in
                for i in 0..<min(a.count, b.count) {
                    let d = abs(a[i] - b[i])
                    maxAbs = max(maxAbs, d)
                    sum += d
                }
            }
        }
        let meanAbs = sum / Float(max(1, reference.count))
        print("preprocess \(label): max |Δ| = \(maxAbs), mean |Δ| = \(meanAbs)")
        #expect(maxAbs <= 1e-5, "\(label): max |Δ| \(maxAbs)")
        #expect(meanAbs <= 1e-6, "\(label): mean |Δ| \(meanAbs)")
    }

    @Test(arguments: ImageFixtures.photos)
    func smallConfigMatchesTransformers(_ name: String) throws {
        let processor = try Images.CLIPPreprocessor(configFile: ImageFixtures.url("preprocessor_config_64.json"))
        #expect(processor.shortestEdge == 64 && processor.cropHeight == 64 && processor.cropWidth == 64)
        let image = try Images.decode(contentsOf: ImageFixtures.url(name), applyEXIFOrientation: false)
        compare(processor.pixelValues(image), try ImageFixtures.references().tensor("clip64/\(name)"), "clip64/\(name)")
    }

    @Test func defaultsMatchTransformers() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let processor = try Images.CLIPPreprocessor(checkpointDirectory: dir)  // no config: CLIP defaults
        #expect(processor == Images.CLIPPreprocessor())
        let image = try Images.decode(contentsOf: ImageFixtures.url("coffee.png"), applyEXIFOrientation: false)
        let values = processor.pixelValues(image)
        #expect(values.shape == [3, 224, 224])
        compare(values, try ImageFixtures.references().tensor("clip224/coffee.png"), "clip224/coffee.png")
        #expect(processor.pixelValues([image, image]).shape == [2, 3, 224, 224])
    }

    @Test func cropPadsSmallImagesLikeTransformers() {
        let image = Images.Image(width: 2, height: 1, pixels: [10, 20, 30, 40, 50, 60])
        let cropped = Images.CLIPPreprocessor.centerCrop(image, height: 3, width: 3)
        // top pad = ceil(2/2) = 1, left pad = ceil(1/2) = 1, then crop offsets (3-3)//2 = 0.
        #expect(cropped.pixels == [0, 0, 0, 0, 0, 0, 0, 0, 0,
                                   0, 0, 0, 10, 20, 30, 40, 50, 60,
                                   0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func badConfigIsAnError() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("preprocessor_config.json")
        try Data(#"{"resample": 2}"#.utf8).write(to: url)
        #expect(throws: Images.CLIPPreprocessor.ConfigError.self) { try Images.CLIPPreprocessor(checkpointDirectory: dir) }
    }
}
