import CImageCodecs
import Foundation

extension Images {
    /// An image that cannot be encoded or written; the message names the file.
    public struct EncodeError: Error, CustomStringConvertible, Sendable {
        public let file: String
        public let detail: String
        public init(file: String, _ detail: String) {
            self.file = file
            self.detail = detail
        }
        public var description: String { "\(file): cannot write the PNG: \(detail)" }
    }

    /// Encodes 8-bit RGB images as PNG through libpng's simplified API (`png_image_write_to_memory`).
    public enum PNGWriter {
        /// The PNG bytes of `image` (8-bit RGB, no alpha).
        public static func encode(_ image: Image, file: String = "<memory>") throws -> Data {
            guard image.width > 0, image.height > 0, image.pixels.count == image.width * image.height * 3 else {
                throw EncodeError(file: file, "the image is \(image.width)×\(image.height) with \(image.pixels.count) bytes")
            }
            var png = png_image()
            png.version = png_uint_32(PNG_IMAGE_VERSION)
            png.width = png_uint_32(image.width)
            png.height = png_uint_32(image.height)
            png.format = png_uint_32(PNG_FORMAT_FLAG_COLOR)
            let stride = png_int_32(image.width * 3)
            return try image.pixels.withUnsafeBufferPointer { px -> Data in
                var size: png_alloc_size_t = 0
                // First call: the size needed.
                guard png_image_write_to_memory(&png, nil, &size, 0, px.baseAddress, stride, nil) != 0, size > 0 else {
                    let message = withUnsafeBytes(of: png.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                    png_image_free(&png)
                    throw EncodeError(file: file, message)
                }
                var bytes = [UInt8](repeating: 0, count: Int(size))
                let ok = bytes.withUnsafeMutableBytes { out in
                    png_image_write_to_memory(&png, out.baseAddress, &size, 0, px.baseAddress, stride, nil)
                }
                guard ok != 0 else {
                    let message = withUnsafeBytes(of: png.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                    png_image_free(&png)
                    throw EncodeError(file: file, message)
                }
                return Data(bytes.prefix(Int(size)))
            }
        }

        /// Writes `image` as a PNG file at `url` (atomically).
        public static func write(_ image: Image, to url: URL) throws {
            let data = try encode(image, file: url.path)
            do { try data.write(to: url, options: .atomic) } catch {
                throw EncodeError(file: url.path, error.localizedDescription)
            }
        }
    }
}
