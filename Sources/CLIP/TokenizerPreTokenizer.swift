/// CLIP's pre-tokenization pattern, matched by hand on Unicode scalars:
///
///     <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
///
/// with `regex.IGNORECASE`, as openai/CLIP `SimpleTokenizer` compiles it with the `regex` module and `findall`s it.
/// Letters are general categories L*, numbers N*, and `\s` is White_Space. Combining marks (M*) are neither, so they
/// join punctuation runs. Two IGNORECASE effects survive lower-casing: U+017F LATIN SMALL LETTER LONG S matches "s"
/// in `'s` and in the special tokens, and U+0345 COMBINING GREEK YPOGEGRAMMENI, whose case fold is ι, matches no
/// alternative at all, so `findall` skips it like a space.
enum PreTokenizer {
    /// One match of the pattern: a range of scalars, and whether it matched a special-token alternative.
    struct Piece: Equatable {
        var range: Range<Int>
        var isSpecial: Bool
    }

    static func pieces(_ text: [Unicode.Scalar]) -> [Piece] {
        var pieces: [Piece] = []
        let n = text.count
        var i = 0
        while i < n {
            let c = text[i]
            if c == "<", let length = specialTokenLength(text, at: i) {
                pieces.append(Piece(range: i..<(i + length), isSpecial: true))
                i += length
                continue
            }
            if c == "'", let length = contractionLength(text, at: i) {
                pieces.append(Piece(range: i..<(i + length), isSpecial: false))
                i += length
                continue
            }
            let kind = Kind(c)
            switch kind {
            case .space, .skipped:
                i += 1
            case .number:
                pieces.append(Piece(range: i..<(i + 1), isSpecial: false))
                i += 1
            case .letter, .other:
                var j = i + 1
                while j < n, Kind(text[j]) == kind { j += 1 }
                pieces.append(Piece(range: i..<j, isSpecial: false))
                i = j
            }
        }
        return pieces
    }

    /// The class of a scalar in the pattern.
    enum Kind: Equatable {
        /// `\s`
        case space
        /// `\p{L}`
        case letter
        /// `\p{N}`
        case number
        /// `[^\s\p{L}\p{N}]`
        case other
        /// Matches nothing under IGNORECASE (U+0345).
        case skipped

        init(_ c: Unicode.Scalar) {
            let value = c.value
            if value < 0x80 {
                switch value {
                case 0x61...0x7A, 0x41...0x5A: self = .letter
                case 0x30...0x39: self = .number
                case 0x20, 0x09...0x0D: self = .space
                default: self = .other
                }
                return
            }
            if c.properties.isWhitespace {
                self = .space
                return
            }
            switch c.properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
                self = .letter
            case .decimalNumber, .letterNumber, .otherNumber:
                self = .number
            default:
                self = value == 0x345 ? .skipped : .other
            }
        }
    }

    private static let specialTokens: [[Unicode.Scalar]] = [
        Array("<|startoftext|>".unicodeScalars), Array("<|endoftext|>".unicodeScalars),
    ]

    /// Contraction suffixes after the apostrophe, in the pattern's order.
    private static let contractions: [[Unicode.Scalar]] = ["s", "t", "re", "ve", "m", "ll", "d"].map {
        Array($0.unicodeScalars)
    }

    private static func specialTokenLength(_ text: [Unicode.Scalar], at start: Int) -> Int? {
        for token in specialTokens where matches(text, at: start, token) { return token.count }
        return nil
    }

    private static func contractionLength(_ text: [Unicode.Scalar], at start: Int) -> Int? {
        for suffix in contractions where matches(text, at: start + 1, suffix) { return suffix.count + 1 }
        return nil
    }

    /// Whether `literal` (lower-case ASCII) occurs at `start`, compared as the `regex` module's IGNORECASE does
    /// (simple case folding).
    private static func matches(_ text: [Unicode.Scalar], at start: Int, _ literal: [Unicode.Scalar]) -> Bool {
        guard start + literal.count <= text.count else { return false }
        for (offset, expected) in literal.enumerated() {
            let c = text[start + offset]
            if c == expected { continue }
            let isLetter = ("a"..."z").contains(expected)
            if isLetter, c.value == expected.value - 0x20 { continue }
            if expected == "s", c == "\u{017F}" { continue }
            return false
        }
        return true
    }
}
