/// The two HTML unescapers in CLIP's text cleanup, on Unicode scalars: ftfy's `unescape_html` (inside `fix_text`)
/// and Python's `html.unescape` (which OpenAI's `basic_clean` then applies twice).
enum HTMLUnescape {
    /// Python 3.11 `html.unescape`: numeric references with or without ";", named references with ";", legacy
    /// names without ";" and the longest-legacy-prefix rule (`&copy2020` → "©2020").
    static func python(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains("&") else { return text }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            if text[i] == "&", let (replacement, end) = pythonReference(text, at: i) {
                out.append(contentsOf: replacement)
                i = end
            } else {
                out.append(text[i])
                i += 1
            }
        }
        return out
    }

    /// ftfy 6.3 `unescape_html`: only `&#?[0-9A-Za-z]{1,24};` is touched, named entities must end in ";", and a
    /// numeric reference that decodes to ";" is left alone.
    static func ftfy(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains("&") else { return text }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            if text[i] == "&", let (replacement, end) = ftfyReference(text, at: i) {
                out.append(contentsOf: replacement)
                i = end
            } else {
                out.append(text[i])
                i += 1
            }
        }
        return out
    }

    /// Python's `_replace_charref` for the match starting at the "&" at `start`: the replacement and the index after
    /// the match, or nil where the text stays as it is.
    private static func pythonReference(_ text: [Unicode.Scalar], at start: Int) -> ([Unicode.Scalar], Int)? {
        let n = text.count
        var j = start + 1
        guard j < n else { return nil }
        if text[j] == "#" {
            j += 1
            var radix: UInt64 = 10
            if j + 1 < n, text[j] == "x" || text[j] == "X", isHexDigit(text[j + 1]) {
                radix = 16
                j += 1
            }
            guard j < n, radix == 16 || isDigit(text[j]) else { return nil }
            var value: UInt64 = 0
            while j < n, let digit = digitValue(text[j], radix: radix) {
                value = min(value * radix + digit, 0x110000)
                j += 1
            }
            if j < n, text[j] == ";" { j += 1 }
            return (characterReference(value), j)
        }
        // `[^\t\n\f <&#;]{1,32};?`
        var end = j
        while end < n, end - j < 32, !isNameTerminator(text[end]) { end += 1 }
        guard end > j else { return nil }
        let hasSemicolon = end < n && text[end] == ";"
        if let name = asciiName(text[j..<end]) {
            if hasSemicolon, let value = HTMLEntities.named[name] { return (value, end + 1) }
            if !hasSemicolon, let value = HTMLEntities.legacy[name] { return (value, end) }
        }
        let matchEnd = hasSemicolon ? end + 1 : end
        // The longest legacy name that is a proper prefix (at least 2 characters) of the match.
        var length = matchEnd - j - 1
        while length >= 2 {
            if let name = asciiName(text[j..<(j + length)]), let value = HTMLEntities.legacy[name] {
                return (value + text[(j + length)..<matchEnd], matchEnd)
            }
            length -= 1
        }
        return nil
    }

    private static func ftfyReference(_ text: [Unicode.Scalar], at start: Int) -> ([Unicode.Scalar], Int)? {
        let n = text.count
        var j = start + 1
        let numeric = j < n && text[j] == "#"
        if numeric { j += 1 }
        var end = j
        while end < n, end - j <= 24, isASCIIAlphanumeric(text[end]) { end += 1 }
        guard end > j, end - j <= 24, end < n, text[end] == ";" else { return nil }
        let body = text[j..<end]
        if !numeric {
            guard let name = asciiName(body), let value = HTMLEntities.ftfy[name] else { return nil }
            return (value, end + 1)
        }
        // ftfy defers to `html.unescape`, and keeps the original unless the whole reference was consumed.
        var radix: UInt64 = 10
        var digits = body[...]
        if let first = digits.first, first == "x" || first == "X" {
            radix = 16
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.allSatisfy({ digitValue($0, radix: radix) != nil }) else { return nil }
        let value = digits.reduce(UInt64(0)) { min($0 * radix + digitValue($1, radix: radix)!, 0x110000) }
        let decoded = characterReference(value)
        return decoded.contains(";") ? nil : (decoded, end + 1)
    }

    /// Python's rules for `&#N;`: Windows-1252 for 0x80–0x9F, U+FFFD for 0, surrogates and out-of-range values,
    /// nothing for the code points HTML5 forbids.
    private static func characterReference(_ value: UInt64) -> [Unicode.Scalar] {
        switch value {
        case 0: return ["\u{FFFD}"]
        case 0x0D: return ["\r"]
        case 0x80...0x9F: return [windows1252(UInt8(value))]
        case 0xD800...0xDFFF, 0x110000...: return ["\u{FFFD}"]
        case 0x01...0x08, 0x0B, 0x0E...0x1F, 0x7F, 0xFDD0...0xFDEF: return []
        case _ where value & 0xFFFE == 0xFFFE: return []
        default: return [Unicode.Scalar(UInt32(value))!]
        }
    }

    /// The Windows-1252 reading of a C1 byte, as Python's `html` module and ftfy's "sloppy-windows-1252" decode it:
    /// the five bytes Windows-1252 leaves undefined stay as their Latin-1 code points.
    static func windows1252(_ byte: UInt8) -> Unicode.Scalar {
        let table: [UInt32] = [
            0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
            0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D, 0x8F,
            0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
            0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
        ]
        guard (0x80...0x9F).contains(byte) else { return Unicode.Scalar(byte) }
        return Unicode.Scalar(table[Int(byte) - 0x80])!
    }

    /// The entity name as a String, or nil if it has a non-ASCII scalar: Swift compares Strings by canonical
    /// equivalence, and U+212A KELVIN SIGN must not look up "K…" names.
    private static func asciiName(_ scalars: ArraySlice<Unicode.Scalar>) -> String? {
        guard scalars.allSatisfy(\.isASCII) else { return nil }
        var name = ""
        name.unicodeScalars.append(contentsOf: scalars)
        return name
    }

    private static func isNameTerminator(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "\t", "\n", "\u{0C}", " ", "<", "&", "#", ";": return true
        default: return false
        }
    }

    private static func isDigit(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }

    private static func isHexDigit(_ c: Unicode.Scalar) -> Bool { digitValue(c, radix: 16) != nil }

    private static func isASCIIAlphanumeric(_ c: Unicode.Scalar) -> Bool {
        ("0"..."9").contains(c) || ("a"..."z").contains(c) || ("A"..."Z").contains(c)
    }

    private static func digitValue(_ c: Unicode.Scalar, radix: UInt64) -> UInt64? {
        let v = UInt64(c.value)
        switch c {
        case "0"..."9": return v - 0x30
        case "a"..."f" where radix == 16: return v - 0x61 + 10
        case "A"..."F" where radix == 16: return v - 0x41 + 10
        default: return nil
        }
    }
}
