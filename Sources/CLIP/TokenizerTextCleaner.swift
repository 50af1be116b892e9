import Foundation

/// CLIP's text cleanup before pre-tokenization, as OpenAI's `SimpleTokenizer.encode` does it: `ftfy.fix_text`,
/// `html.unescape` twice, whitespace cleanup, then Python's `str.lower()`.
///
/// Follows openai/CLIP `simple_tokenizer.py` (`basic_clean`, `whitespace_clean`) and ftfy 6.3.1 `fix_text` with its
/// default configuration, except ftfy's mojibake repair (`fix_encoding`: re-decoding text such as "cafÃ©" that went
/// through the wrong codec), which is heuristic and not reproduced: such text is tokenized as written.
enum TextCleaner {
    /// The cleaned, lower-cased text as Unicode scalars.
    static func clean(_ text: String) -> [Unicode.Scalar] {
        if let plain = plainASCII(text) { return plain }
        var scalars = fixText(Array(text.unicodeScalars))
        scalars = HTMLUnescape.python(HTMLUnescape.python(scalars))
        return pythonLowercased(collapseWhitespace(scalars))
    }

    /// The whole pipeline for printable ASCII without "&" or control characters other than whitespace, where ftfy
    /// and `html.unescape` change nothing: whitespace cleanup and lower-casing in one pass.
    private static func plainASCII(_ text: String) -> [Unicode.Scalar]? {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.utf8.count)
        var pendingSpace = false
        for byte in text.utf8 {
            switch byte {
            case 0x20, 0x09, 0x0A, 0x0C, 0x0D:
                pendingSpace = !out.isEmpty
            case 0x21...0x7E where byte != UInt8(ascii: "&"):
                if pendingSpace {
                    out.append(" ")
                    pendingSpace = false
                }
                let lowered = (0x41...0x5A).contains(byte) ? byte + 0x20 : byte
                out.append(Unicode.Scalar(lowered))
            default:
                return nil
            }
        }
        return out
    }

    // MARK: ftfy.fix_text

    /// ftfy's `fix_text`: each line is fixed on its own, repeating the fixers until nothing changes. As in ftfy,
    /// once a line contains "<" (looks like HTML source) entities are left alone in it and in every later line.
    static func fixText(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        var unescapeHTML = true
        var start = 0
        while start < text.count {
            var end = start
            while end < text.count, text[end] != "\n" { end += 1 }
            if end < text.count { end += 1 }
            let segment = Array(text[start..<end])
            if unescapeHTML, segment.contains("<") { unescapeHTML = false }
            out.append(contentsOf: fixSegment(segment, unescapeHTML: unescapeHTML))
            start = end
        }
        return out
    }

    /// ftfy's `fix_and_explain` loop for one segment, with its fixers in ftfy's order.
    private static func fixSegment(_ segment: [Unicode.Scalar], unescapeHTML: Bool) -> [Unicode.Scalar] {
        var text = segment
        while true {
            let before = text
            if unescapeHTML { text = HTMLUnescape.ftfy(text) }
            text = text.map { (0x80...0x9F).contains($0.value) ? HTMLUnescape.windows1252(UInt8($0.value)) : $0 }
            text = text.flatMap { latinLigatures[$0.value] ?? [$0] }
            text = text.flatMap { widthMap[$0.value] ?? [$0] }
            text = text.map(uncurlQuote)
            text = fixLineBreaks(text)
            text = removeTerminalEscapes(text)
            text.removeAll(where: isRemovedControl)
            text = nfc(text)
            // Scalar-by-scalar comparison, as Python's `==`; Swift's String `==` would stop at canonical equivalence.
            if text == before { return text }
        }
    }

    /// ftfy `fix_latin_ligatures` (chardata.LIGATURES).
    private static let latinLigatures: [UInt32: [Unicode.Scalar]] = [
        0x0132: ["I", "J"], 0x0133: ["i", "j"], 0x0149: ["\u{02BC}", "n"],
        0x01C4: ["D", "\u{017D}"], 0x01C5: ["D", "\u{017E}"], 0x01C6: ["d", "\u{017E}"],
        0x01C7: ["L", "J"], 0x01C8: ["L", "j"], 0x01C9: ["l", "j"],
        0x01CA: ["N", "J"], 0x01CB: ["N", "j"], 0x01CC: ["n", "j"],
        0x01F1: ["D", "Z"], 0x01F2: ["D", "z"], 0x01F3: ["d", "z"],
        0xFB00: ["f", "f"], 0xFB01: ["f", "i"], 0xFB02: ["f", "l"], 0xFB03: ["f", "f", "i"],
        0xFB04: ["f", "f", "l"], 0xFB05: ["\u{017F}", "t"], 0xFB06: ["s", "t"],
    ]

    /// ftfy `fix_character_width`: U+3000 to a space, and every halfwidth or fullwidth form U+FF01–U+FFEF to its
    /// NFKC form, one character at a time (NFC later joins halfwidth katakana with their sound marks).
    private static let widthMap: [UInt32: [Unicode.Scalar]] = {
        var map: [UInt32: [Unicode.Scalar]] = [0x3000: [" "]]
        for value in UInt32(0xFF01)..<0xFFF0 {
            guard let scalar = Unicode.Scalar(value) else { continue }
            let form = String(scalar).precomposedStringWithCompatibilityMapping
            if Array(form.unicodeScalars) != [scalar] { map[value] = Array(form.unicodeScalars) }
        }
        return map
    }()

    /// ftfy `uncurl_quotes`: U+02BC and U+2018–U+201B to "'", U+201C–U+201F to "\"".
    private static func uncurlQuote(_ c: Unicode.Scalar) -> Unicode.Scalar {
        switch c.value {
        case 0x02BC, 0x2018...0x201B: return "'"
        case 0x201C...0x201F: return "\""
        default: return c
        }
    }

    /// ftfy `fix_line_breaks`: CRLF, CR, U+2028, U+2029 and U+0085 to "\n".
    private static func fixLineBreaks(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        for (i, c) in text.enumerated() {
            switch c {
            case "\r" where i + 1 < text.count && text[i + 1] == "\n": continue
            case "\r", "\u{2028}", "\u{2029}", "\u{85}": out.append("\n")
            default: out.append(c)
            }
        }
        return out
    }

    /// ftfy `remove_terminal_escapes`: `\x1b\[(\d|;)*[a-zA-Z]`, where `\d` is any decimal digit (Python `re`).
    private static func removeTerminalEscapes(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains("\u{1B}") else { return text }
        var out: [Unicode.Scalar] = []
        var i = 0
        while i < text.count {
            if text[i] == "\u{1B}", i + 1 < text.count, text[i + 1] == "[" {
                var j = i + 2
                while j < text.count, text[j] == ";" || text[j].properties.generalCategory == .decimalNumber { j += 1 }
                if j < text.count, ("a"..."z").contains(text[j]) || ("A"..."Z").contains(text[j]) {
                    i = j + 1
                    continue
                }
            }
            out.append(text[i])
            i += 1
        }
        return out
    }

    /// ftfy `remove_control_chars`: C0 controls except \t \n \f \r, DEL, deprecated Arabic format characters,
    /// the BOM and interlinear annotation characters.
    private static func isRemovedControl(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x00...0x08, 0x0B, 0x0E...0x1F, 0x7F, 0x206A...0x206F, 0xFEFF, 0xFFF9...0xFFFC: return true
        default: return false
        }
    }

    /// NFC; text below U+0300 is already in NFC, so Foundation is only asked about the rest.
    private static func nfc(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard text.contains(where: { $0.value >= 0x300 }) else { return text }
        var string = ""
        string.unicodeScalars.append(contentsOf: text)
        return Array(string.precomposedStringWithCanonicalMapping.unicodeScalars)
    }

    // MARK: whitespace and case

    /// OpenAI's `whitespace_clean` after `basic_clean`'s strip: `text.strip()`, `re.sub(r"\s+", " ")`, `strip()`.
    /// Python's `str.strip` also strips U+001C–U+001F, which `\s` (White_Space) does not match.
    static func collapseWhitespace(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
            c.properties.isWhitespace || (0x1C...0x1F).contains(c.value)
        }
        var lower = 0
        var upper = text.count
        while lower < upper, isPythonSpace(text[lower]) { lower += 1 }
        while upper > lower, isPythonSpace(text[upper - 1]) { upper -= 1 }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(upper - lower)
        var inRun = false
        for c in text[lower..<upper] {
            if c.properties.isWhitespace {
                if !inRun { out.append(" ") }
                inRun = true
            } else {
                out.append(c)
                inRun = false
            }
        }
        return out
    }

    /// Python's `str.lower()`: the full lower-case mapping of each scalar, and capital sigma to final sigma (ς) at
    /// the end of a word (Unicode's Final_Sigma condition), where Swift's `lowercased()` always gives σ.
    static func pythonLowercased(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        for (i, c) in text.enumerated() {
            if c.isASCII {
                out.append(("A"..."Z").contains(c) ? Unicode.Scalar(c.value + 0x20)! : c)
            } else if c == "\u{03A3}" {
                out.append(isFinalSigma(text, at: i) ? "\u{03C2}" : "\u{03C3}")
            } else if c.properties.changesWhenLowercased {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// Final_Sigma: a cased letter before (skipping case-ignorable scalars) and none after.
    private static func isFinalSigma(_ text: [Unicode.Scalar], at index: Int) -> Bool {
        var j = index - 1
        while j >= 0, text[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0, text[j].properties.isCased else { return false }
        j = index + 1
        while j < text.count, text[j].properties.isCaseIgnorable { j += 1 }
        return j == text.count || !text[j].properties.isCased
    }
}
