import Foundation

/// Small string helpers in pure Swift. Foundation's `contains`, `range(of:)`, `trimmingCharacters` and
/// `replacingOccurrences` bridge through NSString on Linux, and together they were a third of the client's CPU per
/// request; these work on UTF-8 directly.
enum FastText {
    /// Whether `needle` occurs in `haystack` (byte-wise on UTF-8; both already in the case to compare).
    static func contains(_ haystack: String, _ needle: String) -> Bool {
        if needle.isEmpty { return true }
        var hay = haystack
        var pin = needle
        return hay.withUTF8 { h in
            pin.withUTF8 { n in
                guard n.count <= h.count, let hb = h.baseAddress, let nb = n.baseAddress else { return false }
                let first = Int32(nb[0])
                var start = 0
                let lastStart = h.count - n.count
                while start <= lastStart {
                    // memchr finds the next candidate first byte; memcmp checks the rest.
                    guard let found = memchr(hb + start, first, lastStart - start + 1) else { return false }
                    let offset = hb.distance(to: found.assumingMemoryBound(to: UInt8.self))
                    if memcmp(hb + offset, nb, n.count) == 0 { return true }
                    start = offset + 1
                }
                return false
            }
        }
    }

    /// `text` in lower case when it is all ASCII (nearly every answer), without Unicode case tables; nil otherwise.
    static func asciiLowercased(_ text: String) -> String? {
        var text = text
        return text.withUTF8 { bytes -> String? in
            var lower = [UInt8](repeating: 0, count: bytes.count)
            for index in 0..<bytes.count {
                let byte = bytes[index]
                guard byte < 0x80 else { return nil }
                lower[index] = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
            }
            return String(decoding: lower, as: UTF8.self)
        }
    }

    /// Whether two HTTP field names are the same: ASCII letters compare without case (RFC 9110 §5.1; names are ASCII
    /// tokens), every other byte exactly. Foundation's `caseInsensitiveCompare` goes through `NSString` and the
    /// locale's case tables, a few microseconds a call, and a request compares names a dozen times.
    static func equalsIgnoringASCIICase(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { x in
            b.withUTF8 { y in
                guard x.count == y.count else { return false }
                for index in 0..<x.count where x[index] != y[index] {
                    let folded = x[index] | 0x20
                    guard folded == y[index] | 0x20, folded >= 0x61, folded <= 0x7A else { return false }
                }
                return true
            }
        }
    }

    /// `text`'s UTF-8 with every byte but an ASCII letter or digit written as `%XX`: a header value in plain ASCII,
    /// which a server reads back as percent-encoded UTF-8 (`urllib.parse.unquote`, `decodeURIComponent`).
    static func percentEncodingAllButASCIIAlphanumerics(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"):
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether an ASCII byte is white space as `Character.isWhitespace` has it (tab, line feed, vertical tab, form
    /// feed, carriage return, space).
    static func isASCIISpace(_ byte: UInt8) -> Bool { byte == 0x20 || (byte >= 0x09 && byte <= 0x0D) }

    /// `text` with every run of white space made one space, and none at either end: byte by byte for ASCII text.
    static func collapsingWhitespace(_ text: String) -> String {
        var text = text
        let ascii = text.withUTF8 { bytes -> String? in
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var pendingSpace = false
            for byte in bytes {
                guard byte < 0x80 else { return nil }
                if isASCIISpace(byte) {
                    pendingSpace = !out.isEmpty
                } else {
                    if pendingSpace { out.append(0x20); pendingSpace = false }
                    out.append(byte)
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
        return ascii ?? text.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }

    /// `text` without leading and trailing white space and newlines.
    static func trimmed<S: StringProtocol>(_ text: S) -> String {
        guard let first = text.firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let last = text.lastIndex(where: { !$0.isWhitespace })!
        return String(text[first...last])
    }

    /// `text` without leading and trailing spaces and tabs: what `trimmingCharacters(in: .whitespaces)` removes (Unicode
    /// space separators, tab, and zero-width space, which Foundation's set still holds: checked over every scalar),
    /// without Foundation's cost; that call was a fifth of a 2,000-label build's start-up. Unlike `trimmed`, line
    /// breaks and other white space stay: it is what a label file's syntax calls blank.
    static func trimmedSpaces(_ text: Substring) -> String {
        func isSpace(_ scalar: Unicode.Scalar) -> Bool {
            scalar == " " || scalar == "\t" || (!scalar.isASCII && (scalar.properties.generalCategory == .spaceSeparator || scalar == "\u{200B}"))
        }
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !isSpace($0) })!
        return String(scalars[first...last])
    }

    /// Where the ASCII `needle` occurs in `text` (the first or the last time), compared byte for byte.
    static func range(of needle: StaticString, in text: Substring, last: Bool) -> Range<Substring.Index>? {
        let pattern = UnsafeBufferPointer(start: needle.utf8Start, count: needle.utf8CodeUnitCount)
        let bytes = text.utf8
        guard bytes.count >= pattern.count else { return nil }
        var found: Range<Substring.Index>?
        var index = bytes.startIndex
        while let start = bytes[index...].firstIndex(of: pattern[0]) {
            guard let end = bytes.index(start, offsetBy: pattern.count, limitedBy: bytes.endIndex) else { break }
            if bytes[start..<end].elementsEqual(pattern) {
                found = start..<end
                if !last { break }
            }
            index = bytes.index(after: start)
        }
        return found
    }

    /// `text` with every occurrence of the characters in `set` removed.
    static func removing(_ set: Set<Character>, from text: String) -> String {
        // In ASCII text every character is one byte, so an ASCII character of `set` can only be where its byte is
        // (non-ASCII text takes the general path: U+1FEF is canonically equal to "`").
        if set.allSatisfy({ $0.isASCII && $0.utf8.count == 1 }) {
            var text = text
            let absent = text.withUTF8 { bytes in
                bytes.allSatisfy { byte in byte < 0x80 && !set.contains(where: { $0.utf8.first! == byte }) }
            }
            if absent { return text }
        }
        guard text.contains(where: set.contains) else { return text }
        return String(text.filter { !set.contains($0) })
    }
}
