import Foundation
import Testing
import Tensor
@testable import CLIP

/// The Swift vision tower against `transformers` outputs on identical pixel tensors (scripts/make_clip_fixtures.py).
/// Tolerance: max-abs 1e-4 on x0 (image_embeds), the projected patch tokens and the last hidden state.
@Suite("CLIP vision model parity")
struct VisionModelParityTests {
    @Test(arguments: TextModelParityTests.checkpoints)
    func outputsMatchTransformers(name: String) throws {
        let root = TokenizerFixtures.directory
        let model = try CLIP.VisionModel(directory: root.appendingPathComponent("checkpoints/\(name)"))
        let reference = try SafeTensors(path: root.appendingPathComponent("outputs/\(name)/vision_outputs.safetensors").path)
        let out = model.encode(try reference.tensor("pixel_values"))
        let x0 = TextModelParityTests.maxAbs(out.x0, try reference.tensor("image_embeds"))
        let regions = TextModelParityTests.maxAbs(out.regions, try reference.tensor("patch_tokens_projected"))
        let hidden = TextModelParityTests.maxAbs(out.lastHiddenState, try reference.tensor("vision_last_hidden_state"))
        print("\(name) vision: x0 max-abs \(x0.abs) (relative \(x0.rel)); regions \(regions.abs) (relative \(regions.rel)); hidden \(hidden.abs)")
        #expect(x0.abs < 1e-4)
        #expect(regions.abs < 1e-4)
        #expect(hidden.abs < 1e-4)
    }

    @Test func chunkedBatchesMatchTheWholeBatch() throws {
        let root = TokenizerFixtures.directory
        let model = try CLIP.VisionModel(directory: root.appendingPathComponent("checkpoints/tiny-quickgelu"))
        let pixels = try SafeTensors(path: root.appendingPathComponent("outputs/tiny-quickgelu/vision_outputs.safetensors").path).tensor("pixel_values")
        // 6 images, in chunks of 4 and 2, or 6 of 1; BLAS may pick another kernel for fewer rows, so rounding differs.
        let batch = Ops.concat([pixels, pixels, pixels], axis: 0)
        for mode in CLIP.RegionMode.allCases {
            let whole = model.encode(batch, regions: mode, imagesPerChunk: batch.shape[0])
            for chunk in [1, 4] {
                let parts = model.encode(batch, regions: mode, imagesPerChunk: chunk)
                #expect(parts.x0.shape == whole.x0.shape && parts.regions.shape == whole.regions.shape)
                #expect(parts.lastHiddenState.shape == whole.lastHiddenState.shape)
                #expect(TextModelParityTests.maxAbs(parts.x0, whole.x0).abs < 1e-5)
                #expect(TextModelParityTests.maxAbs(parts.regions, whole.regions).abs < 1e-5)
                #expect(TextModelParityTests.maxAbs(parts.lastHiddenState, whole.lastHiddenState).abs < 1e-5)
            }
        }
    }

    @Test func valueRegionsHaveTheSameShapeAndDiffer() throws {
        let root = TokenizerFixtures.directory
        let model = try CLIP.VisionModel(directory: root.appendingPathComponent("checkpoints/tiny-quickgelu"))
        let pixels = try SafeTensors(path: root.appendingPathComponent("outputs/tiny-quickgelu/vision_outputs.safetensors").path).tensor("pixel_values")
        let patch = model.encode(pixels, regions: .patch)
        let value = model.encode(pixels, regions: .value)
        #expect(value.regions.shape == patch.regions.shape)
        #expect(value.x0 == patch.x0, "the value path changes regions only")
        #expect(TextModelParityTests.maxAbs(value.regions, patch.regions).abs > 1e-3)
    }
}
