import CLIP
import Foundation
import Images
import Tensor

extension SSPA {
    /// The CLIP vision tower with its preprocessing: decodes image files in parallel and encodes them in batches.
    public struct ImageEncoder: @unchecked Sendable {
        public let model: CLIP.VisionModel
        public let preprocessor: Images.CLIPPreprocessor
        public let mode: CLIP.RegionMode
        /// Images with more pixels are skipped from their header, before decoding.
        public let maxPixels: Int
        /// Decode memory shared by the parallel workers.
        let budget = Images.DecodeBudget()

        /// Loads the vision tower of the checkpoint folder `directory`; without a `preprocessor_config.json` the crop is
        /// the model's image size.
        /// A folder that is not a usable vision checkpoint is a `VisionError`.
        public init(directory: String, mode: CLIP.RegionMode, maxPixels: Int = Images.Limits.defaultMaxPixels) throws {
            self.maxPixels = maxPixels
            let url = URL(fileURLWithPath: directory)
            do { model = try CLIP.VisionModel(directory: url) } catch let error as CheckpointError {
                throw VisionError("\(directory): cannot load the CLIP vision tower: \(error.message)")
            } catch {
                throw VisionError("\(directory): cannot load the CLIP vision tower: \(error)")
            }
            let size = model.config.imageSize
            if FileManager.default.fileExists(atPath: url.appendingPathComponent(CLIP.Checkpoint.preprocessorConfigName).path) {
                do { preprocessor = try Images.CLIPPreprocessor(checkpointDirectory: url) } catch {
                    throw VisionError("\(error)")
                }
            } else {
                preprocessor = Images.CLIPPreprocessor(shortestEdge: size, cropHeight: size, cropWidth: size)
            }
            guard preprocessor.cropHeight == size, preprocessor.cropWidth == size else {
                throw VisionError("\(directory): preprocessor_config.json crops \(preprocessor.cropWidth)×\(preprocessor.cropHeight), but the vision tower takes \(size)×\(size)")
            }
            self.mode = mode
        }

        /// Regions per side.
        public var grid: Int { model.config.grid }
        /// The width `d` of a feature.
        public var width: Int { model.config.projectionDim }

        /// One decoded image: the centre crop the model sees and its pixel values, or why it failed.
        public struct Decoded: @unchecked Sendable {
            public var crop: Images.Image?
            public var pixels: Tensor?
            public var error: String?
        }

        /// Decodes and preprocesses `urls` in parallel (`keepCrops` keeps the centre crops for explanations).
        public func decode(_ urls: [URL], keepCrops: Bool = false) -> [Decoded] {
            let results = UnsafeMutableBufferPointer<Decoded>.allocate(capacity: urls.count)
            results.initialize(repeating: Decoded())
            defer { results.deallocate() }
            let base = results.baseAddress!
            nonisolated(unsafe) let out = base
            DispatchQueue.concurrentPerform(iterations: urls.count) { i in
                do {
                    let image = try Images.decode(contentsOf: urls[i], maxPixels: maxPixels, budget: budget)
                    guard image.width > 0, image.height > 0 else {
                        out[i] = Decoded(error: "\(urls[i].path): the image is empty")
                        return
                    }
                    let crop = preprocessor.resizedAndCropped(image)
                    out[i] = Decoded(crop: keepCrops ? crop : nil, pixels: preprocessor.pixelValues(crop).reshaped([1, 3, crop.height, crop.width]))
                } catch {
                    out[i] = Decoded(error: "\(error)")
                }
            }
            return Array(results)
        }

        /// Encodes pixel tensors `[1, 3, S, S]` as one batch.
        public func encode(_ pixels: [Tensor]) -> CLIP.VisionModel.Output {
            model.encode(pixels.count == 1 ? pixels[0] : Ops.concat(pixels, axis: 0), regions: mode)
        }
    }

    /// A CLIP folder whose vision tower or preprocessing cannot be used; the message says why.
    public struct VisionError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }
}
