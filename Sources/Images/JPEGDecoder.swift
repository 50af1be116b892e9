import CImageCodecs
import Foundation

/// JPEG decoding through libjpeg-turbo's TurboJPEG API (`tjDecompressHeader3` / `tjDecompress2`).
///
/// TurboJPEG catches libjpeg's fatal errors inside C (its `error_exit` `longjmp`s back into TurboJPEG) and reports
/// them as return codes, so no input can stop the process: every failure becomes an `Images.DecodeError` naming the
/// file. Problems in the entropy-coded data are only *warnings* in libjpeg (it fills with grey and goes on);
/// TurboJPEG still returns -1 for them, with `tjGetErrorCode` = `TJERR_WARNING`. A truncated file ("Premature end of
/// JPEG file") becomes `truncated`, "extraneous bytes" warnings are ignored (Pillow accepts those files too) and any
/// other warning or error becomes `corrupt` with the codec's message.
///
/// Decoding uses TurboJPEG's defaults (flags 0), which are libjpeg's and Pillow's: the accurate integer DCT
/// (`JDCT_ISLOW`; `TJFLAG_FASTDCT` is not set) and fancy upsampling (`TJFLAG_FASTUPSAMPLE` is not set), so the
/// pixels are exactly Pillow's.
///
/// `JPEGMarkers.scan` reads the headers (up to the first SOS) in Swift, for the EXIF orientation and for clear
/// messages: variants this decoder does not handle (12-bit, lossless, hierarchical, DNL height, unusual component
/// counts, fractional sampling, Pillow's pixel limit) are `unsupported`, a file that ends inside its headers is
/// `truncated`. Everything else is left to TurboJPEG.
enum JPEGDecoder {
    static func decode(_ bytes: [UInt8], file: String, maxPixels: Int = Images.Limits.defaultMaxPixels) throws -> (Images.Image, orientation: Int) {
        let info = try JPEGMarkers.scan(bytes, file: file, maxPixels: maxPixels)
        func corrupt(_ s: String) -> Images.DecodeError { Images.DecodeError(.corrupt, file: file, s) }

        guard let handle = tjInitDecompress() else {
            throw corrupt("cannot start TurboJPEG: \(String(cString: tjGetErrorStr2(nil)))")
        }
        defer { tjDestroy(handle) }
        func message() -> String {
            guard let text = tjGetErrorStr2(handle) else { return "unknown TurboJPEG error" }
            return String(cString: text)
        }

        var tjWidth: Int32 = 0, tjHeight: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = -1
        let headerStatus = bytes.withUnsafeBufferPointer { buf in
            tjDecompressHeader3(handle, buf.baseAddress, UInt(buf.count), &tjWidth, &tjHeight, &subsampling, &colorspace)
        }
        var width = Int(tjWidth), height = Int(tjHeight)
        var fourComponents = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        if headerStatus != 0 {
            let text = message()
            if tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue), width > 0, height > 0, colorspace >= 0 {
                // A warning while reading the headers: decoding reports it again below.
            } else if text.contains("Could not determine subsampling type"), let frame = info.frame {
                // TurboJPEG names only its standard subsampling types, but tjDecompress2 (libjpeg) decodes any valid
                // sampling, as Pillow does; take the geometry from the frame header.
                width = frame.width
                height = frame.height
                fourComponents = frame.components == 4
            } else {
                throw corrupt(text)
            }
        }
        guard width > 0, height > 0 else { throw corrupt("TurboJPEG reports a \(width)×\(height) image") }
        guard width * height <= maxPixels else {
            throw Images.DecodeError(.unsupported, file: file,
                                     "\(width)×\(height) pixels is more than the limit of \(maxPixels) (a decompression bomb?); raise it with --max-image-pixels if the image is genuine")
        }

        let channels = fourComponents ? 4 : 3
        let format = fourComponents ? TJPF_CMYK : TJPF_RGB
        var decoded = [UInt8](repeating: 0, count: width * height * channels)
        let status = bytes.withUnsafeBufferPointer { src in
            decoded.withUnsafeMutableBufferPointer { dst in
                tjDecompress2(handle, src.baseAddress, UInt(src.count), dst.baseAddress, Int32(width), 0, Int32(height),
                              Int32(format.rawValue), 0)
            }
        }
        if status != 0 {
            let text = message()
            guard tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue) else { throw corrupt(text) }
            // TurboJPEG keeps the first warning's text only. A file whose first problem is extraneous bytes can still
            // end early: in entropy-coded data FF D9 is always the EOI marker, so its absence after the scan header
            // means libjpeg ran out of data.
            if text.contains("Premature end") || (text.contains("extraneous bytes") && !info.hasEOIAfterScan(bytes)) {
                throw Images.DecodeError(.truncated, file: file, "the JPEG data ends early (libjpeg: \(text))")
            }
            if !text.contains("extraneous bytes") { throw corrupt(text) }  // extraneous bytes: Pillow accepts these too
        }

        let pixels = fourComponents ? cmykToRGB(decoded, count: width * height) : decoded
        return (Images.Image(width: width, height: height, pixels: pixels), info.orientation)
    }

    /// CMYK samples to RGB: read as Adobe-inverted (as Pillow's `CMYK;I` raw mode, which Pillow assumes for every
    /// CMYK JPEG) and converted with Pillow's `cmyk2rgb`.
    static func cmykToRGB(_ src: [UInt8], count: Int) -> [UInt8] {
        @inline(__always) func muldiv255(_ a: Int, _ b: Int) -> Int {
            let t = a * b + 128
            return ((t >> 8) + t) >> 8
        }
        var out = [UInt8](repeating: 0, count: count * 3)
        src.withUnsafeBufferPointer { row in
            out.withUnsafeMutableBufferPointer { dst in
                for x in 0..<count {
                    let c = 255 - Int(row[4 * x]), m = 255 - Int(row[4 * x + 1]), y = 255 - Int(row[4 * x + 2])
                    let nk = Int(row[4 * x + 3])  // 255 - K, with K = 255 - stored
                    dst[3 * x] = UInt8(clamping: nk - muldiv255(c, nk))
                    dst[3 * x + 1] = UInt8(clamping: nk - muldiv255(m, nk))
                    dst[3 * x + 2] = UInt8(clamping: nk - muldiv255(y, nk))
                }
            }
        }
        return out
    }
}

/// A lenient walk over a JPEG's header markers, up to the first SOS: the EXIF orientation (the first APP1 `Exif`
/// segment, IFD0 tag 0x0112, as Pillow reads it), the frame header for clear `unsupported` messages, and truncation
/// inside the headers. Anything else that looks wrong is left for TurboJPEG to report.
enum JPEGMarkers {
    struct Frame { var width: Int, height: Int, components: Int }

    struct Info {
        var orientation = 1
        var sawExif = false
        var frame: Frame?
        /// The offset just past the first SOS header, if the walk reached one.
        var scanStart: Int?

        /// Whether an EOI marker (FF D9, possibly after FF fill bytes) follows the first scan header.
        func hasEOIAfterScan(_ b: [UInt8]) -> Bool {
            guard let start = scanStart, start < b.count else { return false }
            var i = start
            while i + 1 < b.count {
                if b[i] == 0xFF, b[i + 1] == 0xD9 { return true }
                i += 1
            }
            return false
        }
    }

    static func scan(_ b: [UInt8], file: String, maxPixels: Int) throws -> Info {
        func unsupported(_ s: String) -> Images.DecodeError { Images.DecodeError(.unsupported, file: file, s) }
        func truncated(_ s: String) -> Images.DecodeError { Images.DecodeError(.truncated, file: file, s) }
        func be16(_ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
        var info = Info()
        var i = 2
        while true {
            // Like libjpeg, skip bytes that are not a marker (it warns about them) up to the next FF.
            while i < b.count, b[i] != 0xFF { i += 1 }
            while i < b.count, b[i] == 0xFF { i += 1 }
            guard i < b.count else { throw truncated("the file ends before the image data (no SOS marker)") }
            let marker = b[i]
            i += 1
            if marker == 0x00 || marker == 0x01 || (0xD0...0xD7).contains(marker) { continue }
            if marker == 0xD8 || marker == 0xD9 { return info }  // TurboJPEG reports these
            guard i + 2 <= b.count else { throw truncated(String(format: "the file ends inside marker 0x%02x", marker)) }
            let length = be16(i)
            guard length >= 2 else { return info }
            guard i + length <= b.count else {
                throw truncated(String(format: "marker 0x%02x claims %d bytes but the file ends first", marker, length))
            }
            let s = i + 2, e = i + length  // segment payload [s, e)
            let n = e - s
            switch marker {
            case 0xC0, 0xC1, 0xC2, 0xC9, 0xCA:
                guard n >= 6, info.frame == nil else { break }
                let precision = Int(b[s])
                guard precision == 8 else { throw unsupported("\(precision)-bit JPEG") }
                let height = be16(s + 1), width = be16(s + 3), nc = Int(b[s + 5])
                guard height > 0 else { throw unsupported("JPEG with the height in a DNL marker (height 0 in the frame header)") }
                guard width * height <= maxPixels else {
                    throw unsupported("\(width)×\(height) pixels is more than the limit of \(maxPixels) (a decompression bomb?); raise it with --max-image-pixels if the image is genuine")
                }
                guard [1, 3, 4].contains(nc) else { throw unsupported("JPEG with \(nc) colour components") }
                info.frame = Frame(width: width, height: height, components: nc)
                guard n == 6 + 3 * nc else { break }
                let sampling = (0..<nc).map { (Int(b[s + 7 + 3 * $0] >> 4), Int(b[s + 7 + 3 * $0] & 15)) }
                guard sampling.allSatisfy({ (1...4).contains($0.0) && (1...4).contains($0.1) }) else { break }
                let maxH = sampling.map(\.0).max()!, maxV = sampling.map(\.1).max()!
                guard sampling.allSatisfy({ maxH % $0.0 == 0 && maxV % $0.1 == 0 }) else {
                    throw unsupported("JPEG with fractional chroma sampling ratios")
                }
            case 0xC3, 0xC5, 0xC6, 0xC7, 0xCB, 0xCD, 0xCE, 0xCF:
                throw unsupported(String(format: "lossless or hierarchical JPEG (SOF marker 0x%02x)", marker))
            case 0xDA:
                guard e < b.count else { throw truncated("the file ends right after the scan header") }
                info.scanStart = e
                return info
            case 0xE1:
                if !info.sawExif, n >= 6, b[s..<(s + 6)].elementsEqual([0x45, 0x78, 0x69, 0x66, 0, 0]) {
                    info.sawExif = true
                    info.orientation = exifOrientation(Array(b[(s + 6)..<e])) ?? 1
                }
            default:
                break
            }
            i = e
        }
    }

    /// The orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block, or nil.
    static func exifOrientation(_ t: [UInt8]) -> Int? {
        guard t.count >= 8 else { return nil }
        let little: Bool
        if t[0] == 0x49, t[1] == 0x49 { little = true } else if t[0] == 0x4D, t[1] == 0x4D { little = false } else { return nil }
        func u16(_ i: Int) -> Int? {
            guard i >= 0, i + 2 <= t.count else { return nil }
            return little ? Int(t[i]) | Int(t[i + 1]) << 8 : Int(t[i]) << 8 | Int(t[i + 1])
        }
        func u32(_ i: Int) -> Int? {
            guard let a = u16(i), let b = u16(i + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard let ifd = u32(4), let count = u16(ifd) else { return nil }
        for k in 0..<count {
            let entry = ifd + 2 + 12 * k
            guard let tag = u16(entry) else { return nil }
            if tag == 0x0112 {
                guard let type = u16(entry + 2), type == 3, let value = u16(entry + 8) else { return nil }
                return value
            }
        }
        return nil
    }
}
