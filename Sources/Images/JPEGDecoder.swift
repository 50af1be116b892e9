import CImageCodecs
import Foundation

/// JPEG decoding through libjpeg(-turbo)'s classic API.
///
/// libjpeg reports fatal errors through `error_exit`, which must not return; C code `longjmp`s out of it, which
/// Swift cannot do. So the file's marker structure is validated in Swift first (`JPEGMarkers.validate`): signature,
/// every marker up to EOI (unknown markers are fatal in libjpeg), segment lengths, SOF precision/dimensions/
/// components/sampling factors, DQT, DHT (including libjpeg's Huffman code-space check) and DAC tables, and every
/// SOS (components, table references, progressive parameters, MCU size). Everything libjpeg would reject at header time is rejected
/// here with a clear error. Problems in the entropy-coded data are only *warnings* in libjpeg (it fills with grey and
/// goes on): they are caught in `emit_message`, and a truncated file ("Premature end of JPEG file") or corrupt data
/// becomes a thrown error after decoding. Residual risk: a damaged file that passes validation but still makes
/// libjpeg raise a fatal error (a check this validation does not mirror) reaches `error_exit`,
/// which stops the process with the message and the file name (`fatalError`), since returning would be undefined
/// behaviour. Moving to TurboJPEG's `tj3Decompress8` (error codes, no longjmp) would remove that risk.
enum JPEGDecoder {
    /// Collects libjpeg's warnings during one decode (reached through `client_data`).
    final class Messages {
        var warnings: [String] = []
        let file: String
        init(file: String) { self.file = file }
    }

    static func message(_ cinfo: j_common_ptr?) -> String {
        guard let cinfo, let err = cinfo.pointee.err, let format = err.pointee.format_message else { return "unknown libjpeg error" }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(JMSG_LENGTH_MAX) + 1) { buffer in
            buffer.initialize(repeating: 0)
            format(cinfo, buffer.baseAddress)
            return String(cString: buffer.baseAddress!)
        }
    }

    static func decode(_ bytes: [UInt8], file: String) throws -> (Images.Image, orientation: Int) {
        let info = try JPEGMarkers.validate(bytes, file: file)
        let messages = Messages(file: file)
        let box = Unmanaged.passRetained(messages)
        defer { box.release() }

        var cinfo = jpeg_decompress_struct()
        var jerr = jpeg_error_mgr()
        cinfo.err = jpeg_std_error(&jerr)
        jerr.error_exit = { cinfo in
            let text = JPEGDecoder.message(cinfo)
            var file = "<jpeg>"
            if let data = cinfo?.pointee.client_data {
                file = Unmanaged<JPEGDecoder.Messages>.fromOpaque(data).takeUnretainedValue().file
            }
            // Returning from error_exit is undefined behaviour in libjpeg and Swift cannot longjmp: see the type's
            // documentation for why this is reached only by files that pass the structural validation.
            fatalError("libjpeg fatal error decoding \(file): \(text)")
        }
        jerr.emit_message = { cinfo, level in
            guard level < 0, let cinfo, let data = cinfo.pointee.client_data else { return }
            cinfo.pointee.err.pointee.num_warnings += 1
            Unmanaged<JPEGDecoder.Messages>.fromOpaque(data).takeUnretainedValue().warnings.append(JPEGDecoder.message(cinfo))
        }
        jerr.output_message = { _ in }
        jpeg_CreateDecompress(&cinfo, JPEG_LIB_VERSION, MemoryLayout<jpeg_decompress_struct>.size)
        defer { jpeg_destroy_decompress(&cinfo) }
        cinfo.client_data = box.toOpaque()

        let width: Int, height: Int, channels: Int, cmyk: Bool
        var pixels: [UInt8]
        do {
            var rowBuffer: [UInt8] = []
            (width, height, channels, cmyk, pixels) = bytes.withUnsafeBufferPointer { buf in
                jpeg_mem_src(&cinfo, buf.baseAddress, UInt(buf.count))
                _ = jpeg_read_header(&cinfo, 1)
                let components = Int(cinfo.num_components)
                let isCMYK = components == 4
                if isCMYK {
                    cinfo.out_color_space = JCS_CMYK
                } else if components == 1 {
                    cinfo.out_color_space = JCS_GRAYSCALE
                } else {
                    cinfo.out_color_space = JCS_RGB
                }
                _ = jpeg_start_decompress(&cinfo)
                let w = Int(cinfo.output_width), h = Int(cinfo.output_height), c = Int(cinfo.output_components)
                var out = [UInt8](repeating: 0, count: w * h * 3)
                rowBuffer = [UInt8](repeating: 0, count: w * c)
                rowBuffer.withUnsafeMutableBufferPointer { row in
                    var rowPointer: JSAMPROW? = row.baseAddress
                    out.withUnsafeMutableBufferPointer { dst in
                        while cinfo.output_scanline < cinfo.output_height {
                            let y = Int(cinfo.output_scanline)
                            if jpeg_read_scanlines(&cinfo, &rowPointer, 1) != 1 { break }
                            JPEGDecoder.convertRow(row, components: c, cmyk: isCMYK, into: dst, offset: y * w * 3, width: w)
                        }
                    }
                }
                _ = jpeg_finish_decompress(&cinfo)
                return (w, h, c, isCMYK, out)
            }
        }
        _ = channels
        _ = cmyk
        for warning in messages.warnings {
            if warning.contains("Premature end") {
                throw Images.DecodeError(.truncated, file: file, "the JPEG data ends early (libjpeg: \(warning))")
            }
            if warning.contains("extraneous bytes") { continue }  // harmless; Pillow accepts these files too
            throw Images.DecodeError(.corrupt, file: file, warning)
        }
        return (Images.Image(width: width, height: height, pixels: pixels), info.orientation)
    }

    /// One decoded scanline to RGB: grey replicated; CMYK read as Adobe-inverted (as Pillow's `CMYK;I` raw mode,
    /// which Pillow assumes for every CMYK JPEG) and converted with Pillow's `cmyk2rgb`.
    static func convertRow(_ row: UnsafeMutableBufferPointer<UInt8>, components: Int, cmyk: Bool,
                           into dst: UnsafeMutableBufferPointer<UInt8>, offset: Int, width: Int) {
        switch components {
        case 1:
            for x in 0..<width {
                let v = row[x]
                dst[offset + 3 * x] = v; dst[offset + 3 * x + 1] = v; dst[offset + 3 * x + 2] = v
            }
        case 3:
            for i in 0..<(width * 3) { dst[offset + i] = row[i] }
        default:
            @inline(__always) func muldiv255(_ a: Int, _ b: Int) -> Int {
                let t = a * b + 128
                return ((t >> 8) + t) >> 8
            }
            for x in 0..<width {
                let c = 255 - Int(row[4 * x]), m = 255 - Int(row[4 * x + 1]), y = 255 - Int(row[4 * x + 2])
                let nk = Int(row[4 * x + 3])  // 255 - K, with K = 255 - stored
                dst[offset + 3 * x] = UInt8(clamping: nk - muldiv255(c, nk))
                dst[offset + 3 * x + 1] = UInt8(clamping: nk - muldiv255(m, nk))
                dst[offset + 3 * x + 2] = UInt8(clamping: nk - muldiv255(y, nk))
            }
        }
    }
}

/// A structural check of a JPEG's markers (all of them, up to EOI, skipping entropy-coded data the way libjpeg does),
/// so libjpeg never meets a marker segment it would abort on, and the EXIF
/// orientation (APP1 `Exif`, IFD0 tag 0x0112).
enum JPEGMarkers {
    struct Info { var orientation = 1 }

    /// Pillow's decompression-bomb error threshold (2 × `Image.MAX_IMAGE_PIXELS`).
    static let maxPixels = 178_956_970

    static func validate(_ b: [UInt8], file: String) throws -> Info {
        func corrupt(_ s: String) -> Images.DecodeError { Images.DecodeError(.corrupt, file: file, s) }
        func truncated(_ s: String) -> Images.DecodeError { Images.DecodeError(.truncated, file: file, s) }
        func be16(_ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
        var info = Info()
        var i = 2
        var componentIDs: [UInt8] = []
        var componentQuant: [Int] = []
        var quantDefined = [Bool](repeating: false, count: 4)
        var sampling: [(Int, Int)] = []
        var frameMarker: UInt8 = 0
        var sawScan = false
        var huffmanDefined = [[Bool]](repeating: [false, false, false, false], count: 2)
        while true {
            guard i < b.count else {
                throw truncated(sawScan ? "the file ends between scans" : "the file ends before the image data (no SOS marker)")
            }
            guard b[i] == 0xFF else {
                throw corrupt(String(format: "expected a marker at byte %d, found 0x%02x", i, b[i]))
            }
            while i < b.count, b[i] == 0xFF { i += 1 }
            guard i < b.count else { throw truncated("the file ends inside a marker") }
            let marker = b[i]
            i += 1
            if marker == 0x01 || (0xD0...0xD7).contains(marker) { continue }
            if marker == 0xD8 { throw corrupt("a second start-of-image marker before the image data") }
            if marker == 0xD9 {
                guard sawScan else { throw corrupt("end-of-image marker before any image data") }
                return info
            }
            guard i + 2 <= b.count else { throw truncated(String(format: "the file ends inside marker 0x%02x", marker)) }
            let length = be16(i)
            guard length >= 2 else { throw corrupt(String(format: "marker 0x%02x has an invalid length %d", marker, length)) }
            guard i + length <= b.count else {
                throw truncated(String(format: "marker 0x%02x claims %d bytes but the file ends first", marker, length))
            }
            let s = i + 2, e = i + length  // segment payload [s, e)
            let n = e - s
            switch marker {
            case 0xC0, 0xC1, 0xC2, 0xC9, 0xCA:
                guard componentIDs.isEmpty else { throw corrupt("more than one frame header (SOF)") }
                frameMarker = marker
                guard n >= 6 else { throw corrupt("frame header too short") }
                let precision = Int(b[s])
                guard precision == 8 else { throw Images.DecodeError(.unsupported, file: file, "\(precision)-bit JPEG") }
                let height = be16(s + 1), width = be16(s + 3), nc = Int(b[s + 5])
                guard height > 0 else { throw Images.DecodeError(.unsupported, file: file, "JPEG with the height in a DNL marker (height 0 in the frame header)") }
                guard width > 0 else { throw corrupt("image width is 0") }
                guard width * height <= maxPixels else {
                    throw Images.DecodeError(.unsupported, file: file, "\(width)×\(height) pixels is more than the \(maxPixels) limit")
                }
                guard [1, 3, 4].contains(nc) else { throw Images.DecodeError(.unsupported, file: file, "JPEG with \(nc) colour components") }
                guard n == 6 + 3 * nc else { throw corrupt("frame header length does not match \(nc) components") }
                for c in 0..<nc {
                    let id = b[s + 6 + 3 * c], hv = b[s + 6 + 3 * c + 1], tq = Int(b[s + 6 + 3 * c + 2])
                    guard (1...4).contains(hv >> 4), (1...4).contains(hv & 15) else { throw corrupt("invalid sampling factors") }
                    guard tq <= 3 else { throw corrupt("invalid quantisation table index \(tq)") }
                    guard !componentIDs.contains(id) else { throw corrupt("duplicate component id \(id)") }
                    componentIDs.append(id)
                    componentQuant.append(tq)
                    sampling.append((Int(hv >> 4), Int(hv & 15)))
                }
                let maxH = sampling.map(\.0).max()!, maxV = sampling.map(\.1).max()!
                guard sampling.allSatisfy({ maxH % $0.0 == 0 && maxV % $0.1 == 0 }) else {
                    throw Images.DecodeError(.unsupported, file: file, "JPEG with fractional chroma sampling ratios")
                }
            case 0xC3, 0xC5, 0xC6, 0xC7, 0xCB, 0xCD, 0xCE, 0xCF:
                throw Images.DecodeError(.unsupported, file: file,
                                         String(format: "lossless or hierarchical JPEG (SOF marker 0x%02x)", marker))
            case 0xC4:
                var p = s
                while p < e {
                    let tc = b[p] >> 4, th = b[p] & 15
                    guard tc <= 1, th <= 3 else { throw corrupt("invalid Huffman table class/index") }
                    guard p + 17 <= e else { throw corrupt("Huffman table header overruns its segment") }
                    var total = 0, code = 0, last = 0
                    for l in 1...16 where b[p + l] > 0 { last = l }
                    for l in 1...16 {
                        total += Int(b[p + l])
                        if l <= last {
                            code += Int(b[p + l])
                            guard code < (1 << l) || (code == 0) else { throw corrupt("bad Huffman table") }
                            code <<= 1
                        }
                    }
                    guard total <= 256, p + 17 + total <= e else { throw corrupt("bad Huffman table") }
                    huffmanDefined[Int(tc)][Int(th)] = true
                    if tc == 0 {
                        for k in 0..<total where b[p + 17 + k] > 15 { throw corrupt("bad Huffman table") }
                    }
                    p += 17 + total
                }
            case 0xDB:
                var p = s
                while p < e {
                    let pq = Int(b[p] >> 4), tq = Int(b[p] & 15)
                    guard pq <= 1, tq <= 3 else { throw corrupt("invalid quantisation table") }
                    guard p + 1 + 64 * (pq + 1) <= e else { throw corrupt("quantisation table overruns its segment") }
                    quantDefined[tq] = true
                    p += 1 + 64 * (pq + 1)
                }
            case 0xDD:
                guard n == 2 else { throw corrupt("bad restart-interval marker length") }
            case 0xDA:
                guard !componentIDs.isEmpty else { throw corrupt("image data (SOS) before the frame header (SOF)") }
                guard n >= 1 else { throw corrupt("scan header too short") }
                let ns = Int(b[s])
                guard (1...4).contains(ns), ns <= componentIDs.count, n == 1 + 2 * ns + 3 else { throw corrupt("invalid scan header") }
                let ss = Int(b[s + 1 + 2 * ns]), se = Int(b[s + 2 + 2 * ns])
                let ah = Int(b[s + 3 + 2 * ns] >> 4), al = Int(b[s + 3 + 2 * ns] & 15)
                let progressive = frameMarker == 0xC2 || frameMarker == 0xCA
                let huffman = frameMarker <= 0xC2
                var seen: [UInt8] = [], blocks = 0
                for c in 0..<ns {
                    let id = b[s + 1 + 2 * c]
                    guard let k = componentIDs.firstIndex(of: id), !seen.contains(id) else {
                        throw corrupt("scan names an unknown or repeated component")
                    }
                    seen.append(id)
                    blocks += sampling[k].0 * sampling[k].1
                    let tables = b[s + 2 + 2 * c]
                    let dc = Int(tables >> 4), ac = Int(tables & 15)
                    guard dc <= 3, ac <= 3 else { throw corrupt("invalid Huffman table index in scan header") }
                    if huffman {
                        let needDC = !progressive || (ss == 0 && ah == 0)
                        let needAC = !progressive || ss > 0
                        // Sequential decoding supplies the standard tables 0 and 1 when a file has none (Motion-JPEG).
                        let dcDefined = huffmanDefined[0][dc] || (!progressive && dc <= 1)
                        let acDefined = huffmanDefined[1][ac] || (!progressive && ac <= 1)
                        guard (!needDC || dcDefined), (!needAC || acDefined) else {
                            throw corrupt("the scan uses a Huffman table that is never defined")
                        }
                    }
                }
                guard ns == 1 || blocks <= 10 else { throw corrupt("too many blocks in an MCU") }
                if progressive {
                    let bad = ss == 0 ? se != 0 : (se < ss || se > 63 || ns != 1)
                    guard !bad, ah == 0 || al == ah - 1, al <= 13 else { throw corrupt("invalid progressive scan parameters") }
                }
                for tq in componentQuant where !quantDefined[tq] { throw corrupt("quantisation table \(tq) is never defined") }
                guard e < b.count else { throw truncated("the file ends right after the scan header") }
                sawScan = true
                // Skip the entropy-coded data as libjpeg does (FF 00 is a stuffed byte, FF D0–D7 a restart marker,
                // FF runs are fill) to the next marker, which libjpeg will read and must therefore be valid too.
                var j = e
                while true {
                    guard j < b.count else { return info }  // no EOI: libjpeg reports "Premature end of JPEG file"
                    if b[j] == 0xFF {
                        var k = j + 1
                        while k < b.count, b[k] == 0xFF { k += 1 }
                        guard k < b.count else { return info }
                        if b[k] == 0 || (0xD0...0xD7).contains(b[k]) { j = k + 1; continue }
                        break
                    }
                    j += 1
                }
                i = j
                continue
            case 0xCC:
                var p = s
                guard n % 2 == 0 else { throw corrupt("bad arithmetic-coding table length") }
                while p < e {
                    let index = Int(b[p]), value = Int(b[p + 1])
                    guard index < 32 else { throw corrupt("bad arithmetic-coding table index") }
                    if index >= 16 {
                        guard (1...63).contains(value) else { throw corrupt("bad arithmetic-coding table value") }
                    } else {
                        guard value & 15 <= value >> 4 else { throw corrupt("bad arithmetic-coding table value") }
                    }
                    p += 2
                }
            case 0xE1:
                if n >= 6, b[s..<(s + 6)].elementsEqual([0x45, 0x78, 0x69, 0x66, 0, 0]) {
                    info.orientation = exifOrientation(Array(b[(s + 6)..<e])) ?? 1
                }
            case 0xDC, 0xE0...0xEF, 0xFE:
                break
            default:
                throw corrupt(String(format: "unknown marker 0x%02x", marker))
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
