import CImageCodecs
import Foundation

/// PNG decoding through libpng's simplified `png_image` API, which reports errors as return codes (no longjmp
/// reaches Swift).
///
/// 8-bit files are read as 8-bit RGBA and the alpha is dropped (Pillow's `convert("RGB")`); grey, palette and
/// transparency chunks are expanded by libpng. 16-bit files are read as 16-bit and each sample's high byte is kept,
/// as Pillow's `RGB;16B` raw mode does. Known differences from Pillow: libpng's simplified API applies a file's
/// gAMA/cHRM/sRGB information when converting (Pillow ignores it), so a PNG with a non-sRGB gamma chunk decodes
/// differently; and 16-bit files *with* alpha come back premultiplied by libpng, so their colours differ from
/// Pillow's where alpha < 1.
enum PNGDecoder {
    static let flagAlpha: UInt32 = 0x01, flagColor: UInt32 = 0x02, flagLinear: UInt32 = 0x04

    static func decode(_ bytes: [UInt8], file: String, maxPixels: Int = Images.Limits.defaultMaxPixels) throws -> Images.Image {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        func libpngMessage(_ image: inout png_image) -> String {
            withUnsafeBytes(of: &image.message) { raw in
                let chars = raw.prefix { $0 != 0 }
                return String(decoding: chars, as: UTF8.self)
            }
        }
        func failure(_ image: inout png_image) -> Images.DecodeError {
            let message = libpngMessage(&image)
            let lower = message.lowercased()
            if lower.contains("read error") || lower.contains("truncated") || lower.contains("end of") || lower.contains("not enough") {
                return Images.DecodeError(.truncated, file: file, "the PNG data ends early (libpng: \(message))")
            }
            return Images.DecodeError(.corrupt, file: file, message.isEmpty ? "libpng could not read the file" : message)
        }
        let begun = bytes.withUnsafeBufferPointer { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard begun != 0 else {
            let error = failure(&image)
            png_image_free(&image)
            throw error
        }
        let width = Int(image.width), height = Int(image.height)
        guard width > 0, height > 0 else {
            png_image_free(&image)
            throw Images.DecodeError(.unsupported, file: file, "\(width)×\(height) pixels is outside the supported range")
        }
        guard width * height <= maxPixels else {
            png_image_free(&image)
            throw Images.DecodeError(.unsupported, file: file, "\(width)×\(height) pixels is more than the limit of \(maxPixels) (a decompression bomb?); raise it with --max-image-pixels if the image is genuine")
        }
        let sixteen = image.format & flagLinear != 0
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        if sixteen {
            image.format = flagLinear | flagColor | flagAlpha
            var buffer = [UInt16](repeating: 0, count: width * height * 4)
            let ok = buffer.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            guard ok != 0 else { throw failure(&image) }
            for p in 0..<(width * height) {
                for c in 0..<3 { pixels[3 * p + c] = UInt8(buffer[4 * p + c] >> 8) }
            }
        } else {
            image.format = flagColor | flagAlpha
            var buffer = [UInt8](repeating: 0, count: width * height * 4)
            let ok = buffer.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            guard ok != 0 else { throw failure(&image) }
            for p in 0..<(width * height) {
                pixels[3 * p] = buffer[4 * p]; pixels[3 * p + 1] = buffer[4 * p + 1]; pixels[3 * p + 2] = buffer[4 * p + 2]
            }
        }
        return Images.Image(width: width, height: height, pixels: pixels)
    }
}
