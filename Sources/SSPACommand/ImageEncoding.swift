import CLIP
import CommandSupport
import Foundation
import Images
import Tensor

/// The CLIP vision tower with its preprocessing: decodes image files in parallel and encodes them in batches.
struct ImageEncoder: @unchecked Sendable {
    let model: CLIP.VisionModel
    let preprocessor: Images.CLIPPreprocessor
    let mode: CLIP.RegionMode
    /// Images with more pixels are skipped from their header, before decoding.
    let maxPixels: Int
    /// Decode memory shared by the parallel workers.
    let budget = Images.DecodeBudget()

    /// Loads the vision tower of the checkpoint folder `directory`; without a `preprocessor_config.json` the crop is
    /// the model's image size.
    init(directory: String, mode: CLIP.RegionMode, maxPixels: Int = Images.Limits.defaultMaxPixels) throws {
        self.maxPixels = maxPixels
        let url = URL(fileURLWithPath: directory)
        do { model = try CLIP.VisionModel(directory: url) } catch let error as CheckpointError {
            throw CLIError("\(directory): cannot load the CLIP vision tower: \(error.message)", code: FileManager.default.fileExists(atPath: directory) ? 65 : 66)
        } catch {
            throw CLIError("\(directory): cannot load the CLIP vision tower: \(error)", code: 65)
        }
        let size = model.config.imageSize
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("preprocessor_config.json").path) {
            do { preprocessor = try Images.CLIPPreprocessor(checkpointDirectory: url) } catch {
                throw CLIError("\(error)", code: 65)
            }
        } else {
            preprocessor = Images.CLIPPreprocessor(shortestEdge: size, cropHeight: size, cropWidth: size)
        }
        guard preprocessor.cropHeight == size, preprocessor.cropWidth == size else {
            throw CLIError("\(directory): preprocessor_config.json crops \(preprocessor.cropWidth)×\(preprocessor.cropHeight), but the vision tower takes \(size)×\(size)", code: 65)
        }
        self.mode = mode
    }

    /// Regions per side.
    var grid: Int { model.config.grid }

    /// One decoded image: the centre crop the model sees and its pixel values, or why it failed.
    struct Decoded: @unchecked Sendable {
        var crop: Images.Image?
        var pixels: Tensor?
        var error: String?
    }

    /// Decodes and preprocesses `urls` in parallel (`keepCrops` keeps the centre crops for explanations).
    func decode(_ urls: [URL], keepCrops: Bool = false) -> [Decoded] {
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
    func encode(_ pixels: [Tensor]) -> CLIP.VisionModel.Output {
        model.encode(pixels.count == 1 ? pixels[0] : Ops.concat(pixels, axis: 0), regions: mode)
    }
}

/// The throughput bar on stderr (images per second and ETA), redrawn on a terminal only.
final class ThroughputProgress {
    let quiet: Bool
    let terminal: Bool
    let total: Int
    let started = Date()
    var lastDraw = Date.distantPast
    var drawn = false

    init(total: Int, quiet: Bool, terminal: Bool = Console.stderrIsTerminal) {
        self.total = total
        self.quiet = quiet
        self.terminal = terminal
    }

    func update(done: Int, fresh: Int) {
        guard !quiet, terminal else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) > 0.1 || done == total else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(started)
        let rate = elapsed > 0 ? Double(fresh) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : .infinity
        let width = 24
        let filled = total > 0 ? min(width, width * done / total) : width
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        Console.errorRaw("\r\u{1B}[2K" + String(format: "%@ %ld/%ld images  %.1f images/s  ETA %@", bar, done, total, rate,
                                                 TrainingProgress.duration(eta)))
        drawn = true
    }

    func clear() {
        if drawn { Console.errorRaw("\r\u{1B}[2K") }
        drawn = false
    }
}

/// Parses `--regions patch|value`.
func regionMode(_ text: String) throws -> CLIP.RegionMode {
    guard let mode = CLIP.RegionMode(rawValue: text.lowercased()) else {
        throw CLIError("--regions \(text): use patch or value", code: 64)
    }
    return mode
}
