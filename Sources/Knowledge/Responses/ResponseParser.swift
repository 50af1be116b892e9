import Foundation

/// What a model's answer yielded.
public struct ParsedResponse: Sendable, Hashable {
    public enum Format: String, Sendable, Codable { case jsonObject = "json-object", jsonArray = "json-array", lines, sentences, empty }
    public enum Flag: String, Sendable, Codable { case refusal, offTopic = "off-topic", empty }

    /// The sentences of an answer that is on topic: cleaned and de-duplicated. Judged per answer, so "It has four
    /// legs" after a sentence naming the label is kept.
    public var descriptions: [String]
    /// The sentences of an answer none of whose sentences names the label, its names or a word WordNet relates to it.
    public var offTopic: [String]
    public var format: Format
    /// Set when the whole answer is unusable; the raw answer stays in the request log.
    public var flag: Flag?
}

/// Turns a model's free-form answer into descriptions.
///
/// It tries, in order: a JSON object (`{"descriptions": [...]}`, or any single array of strings in an object), a
/// bare JSON array, bullet or numbered lines, and finally sentences. It strips numbering, quotes and markdown, and
/// drops empties and duplicates (exact or case-insensitive).
public enum ResponseParser {
    /// - Parameter related: words WordNet relates to the label (`WordNetDatabase.relatedWords`), which count as
    ///   naming it when judging whether the answer is on topic.
    public static func parse(_ content: String, label: Label, related: Set<String> = []) -> ParsedResponse {
        let text = stripCodeFence(FastText.trimmed(content))
        if text.isEmpty { return ParsedResponse(descriptions: [], offTopic: [], format: .empty, flag: .empty) }

        var candidates: [String]
        var format: ParsedResponse.Format
        if let strings = jsonObjectStrings(text) {
            (candidates, format) = (strings, .jsonObject)
        } else if let strings = jsonArrayStrings(text) {
            (candidates, format) = (strings, .jsonArray)
        } else if let lines = listLines(text) {
            (candidates, format) = (lines, .lines)
        } else {
            (candidates, format) = (sentences(text), .sentences)
        }
        candidates = dedupe(candidates.map(clean).filter { !$0.isEmpty })

        if isRefusal(text), candidates.allSatisfy({ !mentions($0, label) }) {
            return ParsedResponse(descriptions: [], offTopic: [], format: format, flag: .refusal)
        }
        let answer = candidates.filter { !isRefusal($0) }
        if answer.isEmpty { return ParsedResponse(descriptions: [], offTopic: [], format: format, flag: .empty) }
        if DescriptionQuality.onTopic(answer, label: label, related: related) {
            return ParsedResponse(descriptions: answer, offTopic: [], format: format, flag: nil)
        }
        return ParsedResponse(descriptions: [], offTopic: answer, format: format, flag: .offTopic)
    }

    // MARK: - Formats

    static func stripCodeFence(_ text: String) -> String {
        guard text.hasPrefix("```") else { return text }
        var lines = text.components(separatedBy: "\n")
        lines.removeFirst()
        if let last = lines.last, last.trimmingCharacters(in: .whitespaces).hasPrefix("```") { lines.removeLast() }
        return FastText.trimmed(lines.joined(separator: "\n"))
    }

    static func jsonObjectStrings(_ text: String) -> [String]? {
        guard let start = text.firstIndex(of: "{"), let end = text.lastIndex(of: "}"), start < end,
              let object = (try? ParsedJSON.parse(text.utf8[start...end]))?.object
        else { return nil }
        for key in ["descriptions", "description", "sentences", "answers"] {
            if let strings = object[key]?.strings { return strings }
            if let string = object[key]?.string { return [string] }
        }
        let arrays = object.values.compactMap(\.strings)
        if arrays.count == 1 { return arrays[0] }
        // An object mapping the label to descriptions (CuPL style), or several arrays: take every string in key order.
        if !arrays.isEmpty { return object.keys.sorted().compactMap { object[$0]?.strings }.flatMap { $0 } }
        return nil
    }

    static func jsonArrayStrings(_ text: String) -> [String]? {
        guard let start = text.firstIndex(of: "["), let end = text.lastIndex(of: "]"), start < end,
              let array = (try? ParsedJSON.parse(text.utf8[start...end]))?.array
        else { return nil }
        let strings = array.compactMap(\.string)
        return strings.isEmpty ? nil : strings
    }

    /// Lines that start with a bullet or a number, when at least two lines do.
    static func listLines(_ text: String) -> [String]? {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map { FastText.trimmed($0) }
        let items = lines.filter(isListItem)
        return items.count >= 2 ? items : nil
    }

    static func isListItem(_ line: String) -> Bool {
        if let first = line.first, "-*•+".contains(first), line.dropFirst().first == " " { return true }
        let digits = line.prefix { $0.isNumber }
        guard !digits.isEmpty, digits.count <= 3 else { return false }
        let after = line.dropFirst(digits.count)
        return after.hasPrefix(". ") || after.hasPrefix(") ") || after.hasPrefix(": ")
    }

    static func sentences(_ text: String) -> [String] {
        var result: [String] = []
        var current = ""
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: text.unicodeScalars.lazy.map { $0 == "\n" ? " " : $0 })
        let characters = Array(String(scalars))
        for (i, c) in characters.enumerated() {
            current.append(c)
            let endsSentence = ".!?".contains(c) && (i + 1 == characters.count || characters[i + 1] == " ")
            // "e.g." and "approx." style abbreviations: a period after one short lowercase word is not an end.
            if endsSentence, !(c == "." && isAbbreviation(current)) {
                result.append(current)
                current = ""
            }
        }
        if current.contains(where: { !$0.isWhitespace }) { result.append(current) }
        return result
    }

    static func isAbbreviation(_ sentence: String) -> Bool {
        let last = sentence.split(separator: " ").last ?? ""
        return ["e.g.", "i.e.", "etc.", "approx.", "vs.", "st.", "mr.", "mrs.", "dr."].contains(last.lowercased())
    }

    // MARK: - Cleaning

    static func clean(_ candidate: String) -> String {
        if isCleanASCII(candidate) { return candidate }
        return cleanUnicode(candidate)
    }

    /// Whether `clean` would give `text` back unchanged, decided on its bytes: ASCII with nothing at either end that
    /// cleaning removes (white space, a bullet or number, a quote, a trailing comma), no back quote, no `**` or
    /// `__`, and no white space but single spaces. Most sentences an answer holds are so, and skip the general path.
    static func isCleanASCII(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            guard let first = bytes.first, let last = bytes.last else { return false }
            let space = FastText.isASCIISpace
            if space(first) || space(last) || last == UInt8(ascii: ",") { return false }
            switch first {
            case UInt8(ascii: "-"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "\""), UInt8(ascii: "'"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"): return false
            default: break
            }
            var previous: UInt8 = 0
            for byte in bytes {
                if byte >= 0x80 || byte == UInt8(ascii: "`") || (byte != 0x20 && space(byte)) { return false }
                if byte == previous, byte == 0x20 || byte == UInt8(ascii: "*") || byte == UInt8(ascii: "_") { return false }
                previous = byte
            }
            return true
        }
    }

    /// `clean` for any text: the path `isCleanASCII` lets most sentences skip.
    static func cleanUnicode(_ candidate: String) -> String {
        var s = FastText.trimmed(candidate)
        // Bullets and numbering.
        while let first = s.first, "-*•+".contains(first) { s = FastText.trimmed(s.dropFirst()) }
        let digits = s.prefix { $0.isNumber }
        if !digits.isEmpty, digits.count <= 3 {
            let after = s.dropFirst(digits.count)
            if let mark = after.first, ".):".contains(mark) { s = FastText.trimmed(after.dropFirst()) }
        }
        // Markdown emphasis and code.
        s = FastText.removing(["`"], from: s)
        if FastText.contains(s, "**") || FastText.contains(s, "__") { s = FastText.removing(["*"], from: s).replacingOccurrences(of: "__", with: "") }
        // Surrounding quotes, possibly followed by a trailing comma from half-JSON lines.
        if s.hasSuffix(",") { s.removeLast() }
        while let f = s.first, let l = s.last, quotes.contains(f), quotes.contains(l), s.count >= 2 {
            s = String(s.dropFirst().dropLast())
        }
        // Collapse runs of white space by hand: a regular expression per description cost more than the request.
        return FastText.collapsingWhitespace(s)
    }

    private static let quotes: Set<Character> = ["\"", "'", "“", "”", "‘", "’"]

    static func dedupe(_ items: [String]) -> [String] {
        var seen = Set<String>()
        return items.filter { seen.insert($0.lowercased()).inserted }
    }

    // MARK: - Checks

    static let refusalMarkers = [
        "i'm sorry", "i am sorry", "as an ai", "i cannot", "i can't", "i can not", "i am unable", "i'm unable",
        "i apologize", "as a language model",
    ]

    public static func isRefusal(_ text: String) -> Bool {
        if mayRefuse(text) == false { return false }
        let lower = FastText.asciiLowercased(text) ?? String(text.lowercased().map { $0 == "’" ? "'" : $0 })
        return refusalMarkers.contains { FastText.contains(lower, $0) }
    }

    /// Whether ASCII `text` holds where a refusal marker could start, in any case: "i" before a space or an
    /// apostrophe, or "as a". False rules every marker out without lower-casing the text (nearly every description);
    /// nil for text that is not ASCII. Every marker starts with "i " or "i'" or "as a" (checked by a test).
    static func mayRefuse(_ text: String) -> Bool? {
        text.utf8.withContiguousStorageIfAvailable { bytes -> Bool? in
            let n = bytes.count
            for i in 0..<n {
                let byte = bytes[i]
                if byte >= 0x80 { return nil }
                guard i + 1 < n else { break }
                let next = bytes[i + 1]
                if byte | 0x20 == UInt8(ascii: "i"), next == UInt8(ascii: " ") || next == UInt8(ascii: "'") { return true }
                if byte | 0x20 == UInt8(ascii: "a"), i + 3 < n, next | 0x20 == UInt8(ascii: "s"), bytes[i + 2] == UInt8(ascii: " "),
                   bytes[i + 3] | 0x20 == UInt8(ascii: "a") { return true }
            }
            return false  // every byte, the last included, was checked to be ASCII
        } ?? nil
    }

    /// Whether `text` names the label: its display name, raw name, a synonym, or one of their content words.
    public static func mentions(_ text: String, _ label: Label) -> Bool {
        let haystack = wordsOf(text)
        let joined = " " + haystack.joined(separator: " ") + " "
        // The text's words stemmed once, when a name's content words are first compared (not once per such word).
        var stems: Set<String>?
        func mentionsStem(of word: String) -> Bool {
            if stems == nil { stems = Set(haystack.map(stem)) }
            return stems!.contains(stem(word))
        }
        for name in label.allNames {
            let words = wordsOf(name)
            if !words.isEmpty, FastText.contains(joined, " " + words.joined(separator: " ") + " ") { return true }
            let content = words.filter { $0.count >= 3 && !stopWords.contains($0) }
            if content.contains(where: mentionsStem(of:)) { return true }
        }
        // Raw names written in camel case (upperBodyLogo) are split into words too.
        let camel = splitCamelCase(label.rawName).filter { $0.count >= 3 && !stopWords.contains($0) }
        return camel.contains(where: mentionsStem(of:))
    }

    /// Lower-case words (runs of letters and digits). ASCII text, nearly every answer, is split byte by byte:
    /// Unicode character properties per character were a third of a build's CPU.
    static func wordsOf(_ text: String) -> [String] {
        var ascii = true
        var words: [String] = []
        var current: [UInt8] = []
        current.reserveCapacity(24)
        for byte in text.utf8 {
            if byte >= 0x80 { ascii = false; break }
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): current.append(byte)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): current.append(byte | 0x20)
            default:
                if !current.isEmpty { words.append(String(decoding: current, as: UTF8.self)); current.removeAll(keepingCapacity: true) }
            }
        }
        if ascii {
            if !current.isEmpty { words.append(String(decoding: current, as: UTF8.self)) }
            return words
        }
        return text.lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init)
    }

    static func splitCamelCase(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        for c in text {
            if !(c.isLetter || c.isNumber) {
                if !current.isEmpty { words.append(current.lowercased()); current = "" }
                continue
            }
            if c.isUppercase, !current.isEmpty, current.last?.isLowercase == true {
                words.append(current.lowercased()); current = ""
            }
            current.append(c)
        }
        if !current.isEmpty { words.append(current.lowercased()) }
        return words
    }

    /// A light plural stemmer: enough that "dogs" mentions "dog" and "benches" mentions "bench".
    static func stem(_ word: String) -> String {
        // ASCII words (every word `wordsOf` splits from ASCII text) on their bytes: `hasSuffix` and `count` on
        // `String` go through Unicode's rules, and stemming was a tenth of the judging of each description.
        if let stemmed = word.utf8.withContiguousStorageIfAvailable({ asciiStem($0, of: word) }), let stemmed { return stemmed }
        return stemUnicode(word)
    }

    /// `stemUnicode(word)` for an ASCII word, from its bytes; nil for any other word.
    static func asciiStem(_ bytes: UnsafeBufferPointer<UInt8>, of word: String) -> String? {
        let n = bytes.count
        // A CR LF pair is one Character: with one, byte and character counts differ.
        for byte in bytes where byte >= 0x80 || byte == 0x0D { return nil }
        func ends(_ suffix: StaticString) -> Bool {
            let m = suffix.utf8CodeUnitCount
            guard n >= m else { return false }
            for i in 0..<m where bytes[n - m + i] != suffix.utf8Start[i] { return false }
            return true
        }
        func dropping(_ k: Int, adding tail: String = "") -> String {
            String(decoding: UnsafeBufferPointer(rebasing: bytes[0..<(n - k)]), as: UTF8.self) + tail
        }
        if ends("ies"), n > 4 { return dropping(3, adding: "y") }
        if ends("ches") || ends("shes") || ends("sses") || ends("xes") { return dropping(2) }
        if ends("s"), !ends("ss"), n > 3 { return dropping(1) }
        return word
    }

    /// The stemmer on `String`'s Unicode rules: for words that are not ASCII, and the reference the byte path is
    /// tested against.
    static func stemUnicode(_ word: String) -> String {
        if word.hasSuffix("ies"), word.count > 4 { return String(word.dropLast(3)) + "y" }
        if word.hasSuffix("ches") || word.hasSuffix("shes") || word.hasSuffix("sses") || word.hasSuffix("xes") { return String(word.dropLast(2)) }
        if word.hasSuffix("s"), !word.hasSuffix("ss"), word.count > 3 { return String(word.dropLast()) }
        return word
    }

    static let stopWords: Set<String> = [
        "the", "and", "with", "for", "of", "on", "in", "at", "from", "by", "to", "person", "people", "area", "years",
        "old", "over", "under", "than", "less", "more", "upper", "lower", "body", "clothing", "seen",
    ]
}
