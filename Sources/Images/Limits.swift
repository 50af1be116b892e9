import Foundation

extension Images {
    /// Guards against decompression bombs: a small file that claims a huge image is refused from its header,
    /// before any pixel is decoded, and the memory that decoding in parallel may take is bounded.
    public enum Limits {
        /// The default pixel limit, Pillow's `Image.MAX_IMAGE_PIXELS` (89,478,485 ≈ 9,459²): about 1 GB to decode a
        /// 16-bit PNG of that size. Commands raise it with `--max-image-pixels`.
        public static let defaultMaxPixels = 89_478_485
        /// The largest limit that may be asked for (a JPEG cannot exceed 65,535², and no machine here decodes more).
        public static let largestMaxPixels = 1 << 32
        /// Decode memory shared by the workers of one `DecodeBudget` unless told otherwise.
        public static let defaultDecodeBytes = 1 << 30

        /// Bytes decoding a `width × height` image may take at its peak: the codec's RGBA buffer (16-bit for 16-bit
        /// PNG, so 8 bytes a pixel) and the RGB result.
        public static func decodeBytes(width: Int, height: Int) -> Int {
            width.multipliedReportingOverflow(by: height).partialValue.multipliedReportingOverflow(by: 11).partialValue
        }
    }

    /// Width and height from a JPEG's frame header or a PNG's IHDR chunk, without decoding; nil when the header
    /// cannot be read (decoding then reports why).
    public static func dimensions(of bytes: [UInt8], file: String = "<memory>") -> (width: Int, height: Int)? {
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF {
            guard let frame = (try? JPEGMarkers.scan(bytes, file: file, maxPixels: Int.max))?.frame else { return nil }
            return (frame.width, frame.height)
        }
        if bytes.count >= 24, bytes[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]),
           bytes[12..<16].elementsEqual(Array("IHDR".utf8)) {
            func be32(_ i: Int) -> Int { Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3]) }
            return (be32(16), be32(20))
        }
        return nil
    }

    /// Decode memory shared by parallel workers: each image takes its estimated bytes before decoding and gives
    /// them back after; a worker waits while the others hold too much. An image larger than the whole budget still
    /// decodes, alone.
    public final class DecodeBudget: @unchecked Sendable {
        public let capacity: Int
        private var held = 0
        private let condition = NSCondition()

        public init(bytes: Int = Limits.defaultDecodeBytes) {
            capacity = max(bytes, 1)
        }

        /// Blocks until `bytes` fit (or nothing else is held), then takes them.
        public func acquire(_ bytes: Int) {
            condition.lock()
            while held > 0 && held + bytes > capacity { condition.wait() }
            held += bytes
            condition.unlock()
        }

        public func release(_ bytes: Int) {
            condition.lock()
            held -= bytes
            condition.broadcast()
            condition.unlock()
        }
    }
}
