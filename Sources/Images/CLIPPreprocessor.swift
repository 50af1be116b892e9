import Foundation
import Tensor

extension Images {
    /// Turns an image into CLIP `pixel_values` as `transformers`' `CLIPImageProcessor` does (its PIL backend):
    /// 1. resize so the shortest side is `shortestEdge`, the other side `Int(shortestEdge · long / short)`
    ///    (truncated, as `get_resize_output_image_size`), with Pillow's bicubic (`resample = 3`);
    /// 2. centre-crop to `cropHeight × cropWidth` with `top = (h − cropHeight) / 2` (floor), zero-padding first
    ///    when the image is smaller than the crop, as `center_crop`;
    /// 3. multiply by `rescaleFactor` (1/255); 4. subtract `mean`, divide by `std`, per channel.
    /// The output is a `[3, cropHeight, cropWidth]` tensor, channels first.
    public struct CLIPPreprocessor: Sendable, Equatable {
        public static let clipMean = [0.48145466, 0.4578275, 0.40821073]
        public static let clipStd = [0.26862954, 0.26130258, 0.27577711]

        public var doResize: Bool
        public var shortestEdge: Int
        public var doCenterCrop: Bool
        public var cropHeight: Int
        public var cropWidth: Int
        public var doRescale: Bool
        public var rescaleFactor: Double
        public var doNormalize: Bool
        public var mean: [Double]
        public var std: [Double]

        /// CLIP's defaults: 224 shortest edge, 224×224 crop, OpenAI CLIP mean and std.
        public init(shortestEdge: Int = 224, cropHeight: Int = 224, cropWidth: Int = 224,
                    doResize: Bool = true, doCenterCrop: Bool = true,
                    doRescale: Bool = true, rescaleFactor: Double = 1.0 / 255.0,
                    doNormalize: Bool = true, mean: [Double] = clipMean, std: [Double] = clipStd) {
            self.doResize = doResize
            self.shortestEdge = shortestEdge
            self.doCenterCrop = doCenterCrop
            self.cropHeight = cropHeight
            self.cropWidth = cropWidth
            self.doRescale = doRescale
            self.rescaleFactor = rescaleFactor
            self.doNormalize = doNormalize
            self.mean = mean
            self.std = std
        }

        /// The checkpoint directory's `preprocessor_config.json` if present, else CLIP's defaults.
        public init(checkpointDirectory: URL) throws {
            let url = checkpointDirectory.appendingPathComponent("preprocessor_config.json")
            if FileManager.default.fileExists(atPath: url.path) {
                try self.init(configFile: url)
            } else {
                self.init()
            }
        }

        /// Reads a `preprocessor_config.json`; keys it lacks keep CLIP's defaults.
        public init(configFile url: URL) throws {
            self.init()
            let data = try Data(contentsOf: url)
            guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ConfigError(file: url.path, "the top level is not a JSON object")
            }
            func int(_ v: Any?) -> Int? { (v as? NSNumber)?.intValue }
            func double(_ v: Any?) -> Double? { (v as? NSNumber)?.doubleValue }
            func bool(_ key: String) -> Bool? { (json[key] as? NSNumber)?.boolValue }
            func triple(_ key: String) throws -> [Double]? {
                guard let value = json[key] else { return nil }
                if let d = double(value) { return [d, d, d] }
                guard let list = value as? [Any], list.count == 3 else {
                    throw ConfigError(file: url.path, "\(key) must be a number or a list of 3 numbers")
                }
                return try list.map {
                    guard let d = double($0) else { throw ConfigError(file: url.path, "\(key) must hold numbers") }
                    return d
                }
            }
            if let v = bool("do_resize") { doResize = v }
            if let v = bool("do_center_crop") { doCenterCrop = v }
            if let v = bool("do_rescale") { doRescale = v }
            if let v = bool("do_normalize") { doNormalize = v }
            if let v = double(json["rescale_factor"]) { rescaleFactor = v }
            if let v = try triple("image_mean") { mean = v }
            if let v = try triple("image_std") { std = v }
            if let size = json["size"] {
                if let n = int(size) {
                    shortestEdge = n
                } else if let dict = size as? [String: Any], let n = int(dict["shortest_edge"]) {
                    shortestEdge = n
                } else {
                    throw ConfigError(file: url.path, "size must be a number or {\"shortest_edge\": n} (height/width resizing is not supported)")
                }
            }
            if let crop = json["crop_size"] {
                if let n = int(crop) {
                    cropHeight = n; cropWidth = n
                } else if let dict = crop as? [String: Any], let h = int(dict["height"]), let w = int(dict["width"]) {
                    cropHeight = h; cropWidth = w
                } else {
                    throw ConfigError(file: url.path, "crop_size must be a number or {\"height\": h, \"width\": w}")
                }
            }
            if let resample = json["resample"], int(resample) != 3 {
                throw ConfigError(file: url.path, "resample \(resample) is not supported (only 3, bicubic)")
            }
            guard shortestEdge > 0, cropHeight > 0, cropWidth > 0, std.allSatisfy({ $0 != 0 }) else {
                throw ConfigError(file: url.path, "sizes must be positive and std non-zero")
            }
        }

        /// A bad `preprocessor_config.json`.
        public struct ConfigError: Error, CustomStringConvertible, Sendable {
            public let file: String
            public let detail: String
            init(file: String, _ detail: String) { self.file = file; self.detail = detail }
            public var description: String { "\(file): \(detail)" }
        }

        /// The resized and cropped 8-bit image, before rescaling and normalising.
        public func resizedAndCropped(_ image: Image) -> Image {
            var current = image
            if doResize, image.width > 0, image.height > 0 {
                let (w, h) = (image.width, image.height)
                let short = min(w, h), long = max(w, h)
                let newLong = Int(Double(shortestEdge) * Double(long) / Double(short))
                let (nw, nh) = w <= h ? (shortestEdge, newLong) : (newLong, shortestEdge)
                current = Images.resizeBicubic(current, width: nw, height: nh)
            }
            if doCenterCrop { current = Self.centerCrop(current, height: cropHeight, width: cropWidth) }
            return current
        }

        /// `transformers.image_transforms.center_crop` on 8-bit pixels.
        static func centerCrop(_ image: Image, height ch: Int, width cw: Int) -> Image {
            let (h, w) = (image.height, image.width)
            var top = (h - ch) >> 1, left = (w - cw) >> 1  // Python floor division
            var source = image
            if top < 0 || left < 0 || top + ch > h || left + cw > w {
                let nh = max(ch, h), nw = max(cw, w)
                let topPad = (nh - h + 1) / 2, leftPad = (nw - w + 1) / 2  // ceil
                var padded = [UInt8](repeating: 0, count: nh * nw * 3)
                for y in 0..<h {
                    for i in 0..<(w * 3) { padded[((y + topPad) * nw + leftPad) * 3 + i] = image.pixels[y * w * 3 + i] }
                }
                source = Image(width: nw, height: nh, pixels: padded)
                top += topPad
                left += leftPad
            }
            if top == 0, left == 0, source.width == cw, source.height == ch { return source }
            var out = [UInt8](repeating: 0, count: ch * cw * 3)
            for y in 0..<ch {
                let s = ((y + top) * source.width + left) * 3
                for i in 0..<(cw * 3) { out[y * cw * 3 + i] = source.pixels[s + i] }
            }
            return Image(width: cw, height: ch, pixels: out)
        }

        /// `pixel_values` for one image: a `[3, H, W]` Float tensor.
        public func pixelValues(_ image: Image) -> Tensor {
            let cropped = resizedAndCropped(image)
            let (h, w) = (cropped.height, cropped.width)
            let scale = doRescale ? rescaleFactor : 1
            return Tensor(unsafeUninitializedShape: [3, h, w]) { out in
                cropped.pixels.withUnsafeBufferPointer { px in
                    for c in 0..<3 {
                        let m = doNormalize ? mean[c] : 0, s = doNormalize ? std[c] : 1
                        for p in 0..<(h * w) {
                            out[c * h * w + p] = Float((Double(px[3 * p + c]) * scale - m) / s)
                        }
                    }
                }
            }
        }

        /// `pixelValues` for a batch: `[N, 3, H, W]` (all images must come out the same size, as with centre-cropping).
        public func pixelValues(_ images: [Image]) -> Tensor {
            let singles = images.map(pixelValues)
            guard let first = singles.first else { return Tensor(zeros: [0, 3, cropHeight, cropWidth]) }
            precondition(singles.allSatisfy { $0.shape == first.shape }, "pixelValues: images of different sizes cannot be batched")
            return Tensor(unsafeUninitializedShape: [singles.count] + first.shape) { out in
                for (n, t) in singles.enumerated() {
                    t.withUnsafeBufferPointer { src in
                        for i in 0..<src.count { out[n * src.count + i] = src[i] }
                    }
                }
            }
        }
    }
}
