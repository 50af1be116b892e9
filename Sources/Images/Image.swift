import Foundation

extension Images {
    /// An 8-bit RGB image: `pixels` holds `width * height * 3` bytes, row-major, R G B per pixel, top row first.
    public struct Image: Sendable, Equatable {
        public let width: Int
        public let height: Int
        public var pixels: [UInt8]

        public init(width: Int, height: Int, pixels: [UInt8]) {
            precondition(width >= 0 && height >= 0 && pixels.count == width * height * 3,
                         "Image: \(pixels.count) bytes cannot hold \(width)×\(height) RGB")
            self.width = width
            self.height = height
            self.pixels = pixels
        }

        /// The red, green and blue bytes at column `x`, row `y`.
        public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
            let i = (y * width + x) * 3
            return (pixels[i], pixels[i + 1], pixels[i + 2])
        }
    }

    /// Why a file could not be decoded. `description` names the file and the problem.
    public struct DecodeError: Error, CustomStringConvertible, Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            /// The file could not be read.
            case unreadable
            /// The file starts with neither the JPEG nor the PNG signature.
            case unknownFormat
            /// The file ends before the image data does.
            case truncated
            /// The data is damaged; the message is the codec's.
            case corrupt
            /// A valid file in a variant this decoder does not handle (12-bit or lossless JPEG, …).
            case unsupported
        }
        public let kind: Kind
        /// The file's path (or `<memory>`).
        public let file: String
        public let detail: String

        public init(_ kind: Kind, file: String, _ detail: String) {
            self.kind = kind
            self.file = file
            self.detail = detail
        }

        public var description: String {
            let what: String
            switch kind {
            case .unreadable: what = "cannot read"
            case .unknownFormat: what = "not a JPEG or PNG"
            case .truncated: what = "truncated"
            case .corrupt: what = "corrupt"
            case .unsupported: what = "unsupported"
            }
            return detail.isEmpty ? "\(file): \(what)" : "\(file): \(what): \(detail)"
        }
    }

    /// Decodes the JPEG or PNG file at `url`, choosing the codec by the file's first bytes, not its extension.
    ///
    /// Every format becomes 8-bit RGB the way Pillow's `Image.open(f).convert("RGB")` does it, so pixels match what
    /// `transformers`' `CLIPImageProcessor` sees:
    /// - grayscale is replicated to R = G = B; alpha (gray+alpha, RGBA, palette transparency) is **dropped**, not
    ///   composited (Pillow's `convert("RGB")` drops it);
    /// - 16-bit PNG keeps the high byte of each sample (Pillow's `RGB;16B` raw mode);
    /// - CMYK/YCCK JPEG is read as Adobe-inverted CMYK and converted with Pillow's formula
    ///   `R = (255 − K) − C·(255 − K)/255` (rounded as Pillow's `MULDIV255`);
    /// - with `applyEXIFOrientation` (the default) a JPEG's EXIF orientation tag (1–8) is applied, so the image is
    ///   upright as viewers show it. `CLIPImageProcessor` does **not** do this (`Image.open` does not rotate), so
    ///   parity tests against `transformers` pass `false`.
    ///
    /// An image of more than `maxPixels` pixels is refused from its header, before decoding (`unsupported`, with
    /// the limit in the message); with a `budget`, decoding waits for its share of the decode memory.
    public static func decode(contentsOf url: URL, applyEXIFOrientation: Bool = true,
                              maxPixels: Int = Limits.defaultMaxPixels, budget: DecodeBudget? = nil) throws -> Image {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw DecodeError(.unreadable, file: url.path, error.localizedDescription)
        }
        return try decode(data, file: url.path, applyEXIFOrientation: applyEXIFOrientation, maxPixels: maxPixels, budget: budget)
    }

    /// Decodes JPEG or PNG bytes; `file` names the source in errors.
    public static func decode(_ data: Data, file: String = "<memory>", applyEXIFOrientation: Bool = true,
                              maxPixels: Int = Limits.defaultMaxPixels, budget: DecodeBudget? = nil) throws -> Image {
        let bytes = [UInt8](data)
        var reserved = 0
        if let (width, height) = dimensions(of: bytes, file: file) {
            let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
            guard !overflow, pixels <= maxPixels else {
                throw DecodeError(.unsupported, file: file, "\(width)×\(height) pixels is more than the limit of \(maxPixels) (a decompression bomb?); raise it with --max-image-pixels if the image is genuine")
            }
            reserved = Limits.decodeBytes(width: width, height: height)
        }
        budget?.acquire(reserved)
        defer { budget?.release(reserved) }
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF {
            let (image, orientation) = try JPEGDecoder.decode(bytes, file: file, maxPixels: maxPixels)
            return applyEXIFOrientation ? image.oriented(exif: orientation) : image
        }
        if bytes.count >= 8, bytes[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            return try PNGDecoder.decode(bytes, file: file, maxPixels: maxPixels)
        }
        if bytes.isEmpty { throw DecodeError(.unknownFormat, file: file, "the file is empty") }
        if bytes.count >= 2, bytes[0] == 0xFF, bytes[1] == 0xD8 {
            throw DecodeError(.truncated, file: file, "the file ends inside the JPEG signature")
        }
        if bytes.count < 8, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A].starts(with: bytes) {
            throw DecodeError(.truncated, file: file, "the file ends inside the PNG signature")
        }
        let head = bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
        throw DecodeError(.unknownFormat, file: file, "it starts with bytes \(head)")
    }
}

extension Images.Image {
    /// This image transformed as the EXIF orientation tag says (1 or anything outside 2…8: unchanged), matching
    /// Pillow's `ImageOps.exif_transpose`.
    public func oriented(exif orientation: Int) -> Images.Image {
        guard (2...8).contains(orientation) else { return self }
        let w = width, h = height
        let swaps = orientation >= 5
        let ow = swaps ? h : w, oh = swaps ? w : h
        var out = [UInt8](repeating: 0, count: ow * oh * 3)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let sx: Int, sy: Int
                        switch orientation {
                        case 2: sx = w - 1 - ox; sy = oy
                        case 3: sx = w - 1 - ox; sy = h - 1 - oy
                        case 4: sx = ox; sy = h - 1 - oy
                        case 5: sx = oy; sy = ox
                        case 6: sx = oy; sy = h - 1 - ox
                        case 7: sx = w - 1 - oy; sy = h - 1 - ox
                        default: sx = w - 1 - oy; sy = ox
                        }
                        let s = (sy * w + sx) * 3, d = (oy * ow + ox) * 3
                        dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        return Images.Image(width: ow, height: oh, pixels: out)
    }
}
