import Foundation

/// What can be wrong with one stored description. Every description of every source is checked, and its flags are
/// stored with it (`descriptions.flags`, comma-separated, empty when clean).
public enum DescriptionFlag: String, Sendable, Codable, CaseIterable, Comparable {
    /// Half or more of its word trigrams (label names masked) appear in a demonstration answer shown in its request.
    case copied
    /// A near-duplicate of an earlier description of the same label in the run (word-set overlap ≥ 0.8).
    case duplicate
    /// From an answer none of whose sentences names the label, its names, or anything WordNet relates to it.
    case offTopic = "off-topic"
    /// Names another label of the set without saying how the two differ. Reported; not excluded on its own.
    case namesOtherLabel = "names-other-label"
    /// A fragment: cut off by the token limit, ending on a dangling word or comma, or under three words.
    case incomplete
    /// Over CLIP's 77-token context (start and end included), which CLIP truncates.
    case tooLong = "too-long"

    /// Whether `encode` leaves a description with this flag out unless told to keep flagged ones.
    public var excludesByDefault: Bool { self != .namesOtherLabel }

    public static func < (a: Self, b: Self) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }

    /// Parses the stored column: "copied,too-long" (unknown names from a newer version are kept out).
    public static func parse(_ column: String?) -> [DescriptionFlag] {
        guard let column, !column.isEmpty else { return [] }
        return column.split(separator: ",").compactMap { DescriptionFlag(rawValue: String($0)) }.sorted()
    }

    public static func column(_ flags: [DescriptionFlag]) -> String {
        Set(flags).sorted().map(\.rawValue).joined(separator: ",")
    }
}

/// The verdict on one description: its flags and the measurements behind them.
public struct QualityVerdict: Sendable, Hashable, Codable {
    public var flags: [DescriptionFlag] = []
    /// Share of its word trigrams found in a demonstration answer of its request (0 without demonstrations).
    public var copiedShare: Double = 0
    /// The 1-based position of the earlier description it nearly repeats.
    public var duplicateOf: Int?
    /// Raw names of the other labels of the set it names without contrasting.
    public var otherLabels: [String] = []
    /// CLIP tokens, start and end included: counted by a tokenizer when `tokensCounted`, else estimated from words.
    public var tokens: Int = 0
    public var tokensCounted = false

    public init() {}

    /// Whether `encode` uses the description by default.
    public var usable: Bool { !flags.contains { $0.excludesByDefault } }

    /// The measurements as the JSON stored in `descriptions.quality`.
    public var json: String {
        var object: [String: JSONValue] = [
            "copied_share": .double((copiedShare * 1000).rounded() / 1000), "tokens": .int(tokens),
            "tokens_by": .string(tokensCounted ? "clip-tokenizer" : "estimate"),
        ]
        if let duplicateOf { object["duplicate_of"] = .int(duplicateOf) }
        if !otherLabels.isEmpty { object["other_labels"] = .array(otherLabels.map(JSONValue.string)) }
        return (try? JSONValue.object(object).text()) ?? "{}"
    }
}

/// The checks behind the flags. Pure functions of text, so the build, a migration of an older store and `encode`
/// (with a real tokenizer) all judge alike.
public enum DescriptionQuality {
    /// `copied`: at least this share of a description's word trigrams occur in the demonstrations' answers.
    public static let copiedShare = 0.5
    /// `duplicate`: word-set Jaccard overlap with an earlier description at least this.
    public static let duplicateOverlap = 0.8
    /// `too-long`: CLIP's context, start and end tokens included.
    public static let tokenLimit = 77

    /// The names of every label of a set as stemmed word phrases, for finding the labels a text names in one pass
    /// over its words (a set of 20,000 labels costs the same per description as one of 20). Build it once per set.
    public struct NameIndex: Sendable {
        /// Stemmed phrase ("dine table") → the raw names of the labels that go by it.
        let phrases: [String: [String]]
        /// Words in the longest phrase.
        let longest: Int
        /// Every phrase's leading word sequences ("dine", "dine table"): a scan stops at the first sequence no name
        /// starts with, so most words cost one lookup.
        let prefixes: Set<String>

        public init(_ labels: [Label]) {
            var phrases: [String: [String]] = [:]
            var prefixes = Set<String>()
            var longest = 0
            for label in labels {
                for name in label.allNames {
                    let words = ResponseParser.wordsOf(name).map(ResponseParser.stem)
                    guard !words.isEmpty else { continue }
                    let phrase = words.joined(separator: " ")
                    if phrases[phrase]?.contains(label.rawName) != true { phrases[phrase, default: []].append(label.rawName) }
                    for count in 1...words.count { prefixes.insert(words.prefix(count).joined(separator: " ")) }
                    longest = max(longest, words.count)
                }
            }
            self.phrases = phrases
            self.prefixes = prefixes
            self.longest = longest
        }
    }

    /// What the checks need to know about a label beyond the text.
    public struct Context: Sendable {
        public var label: Label
        /// The names of the set's labels (this one's included; it is left out when matching).
        public var names: NameIndex
        /// Lower-case content words WordNet relates to the label (its senses' words, hypernyms, hyponyms, parts).
        public var related: Set<String>
        /// The label's own names as stemmed word sequences, longest first (what masking replaces), and as phrases.
        let ownPatterns: [[String]]
        let ownPhrases: Set<String>

        public init(label: Label, names: NameIndex, related: Set<String> = []) {
            self.label = label
            self.names = names
            self.related = related
            ownPatterns = DescriptionQuality.patterns(label.allNames)
            ownPhrases = Set(label.allNames.map { ResponseParser.wordsOf($0).map(ResponseParser.stem).joined(separator: " ") })
        }

        public init(label: Label, in set: [Label], related: Set<String> = []) {
            self.init(label: label, names: NameIndex(set), related: related)
        }
    }

    /// Whether an answer (the sentences of one choice) is on topic: some sentence names the label, one of its
    /// names, or a word WordNet relates to it. Judged per answer: "It has four legs" after a sentence naming the
    /// label is on topic.
    public static func onTopic(_ answer: [String], _ context: Context) -> Bool {
        onTopic(answer, label: context.label, related: context.related)
    }

    /// `onTopic` from the label and its related words alone (what the parser knows, without a `Context`).
    static func onTopic(_ answer: [String], label: Label, related: Set<String>) -> Bool {
        answer.contains { ResponseParser.mentions($0, label) || mentionsRelated($0, related) }
    }

    static func mentionsRelated(_ text: String, _ related: Set<String>) -> Bool {
        guard !related.isEmpty else { return false }
        return ResponseParser.wordsOf(text).contains { related.contains(ResponseParser.stem($0)) }
    }

    /// Judges one description.
    /// - Parameters:
    ///   - demonstrations: the demonstration answers shown in its request, each with its label.
    ///   - earlier: the label's earlier descriptions in this run, in order.
    ///   - answerOnTopic: the verdict of `onTopic` on the answer the description came from.
    ///   - cutOff: the answer stopped at the token limit and this is its last sentence.
    public static func assess(
        _ text: String, context: Context, demonstrations: [(label: String, text: String)], earlier: [String],
        answerOnTopic: Bool, cutOff: Bool, tokens: Int? = nil
    ) -> QualityVerdict {
        assess(text, context: context, shown: Shown(demonstrations), earlier: earlier, answerOnTopic: answerOnTopic, cutOff: cutOff, tokens: tokens)
    }

    /// `assess` with the demonstrations indexed once (`Shown`), for judging many sentences of one label.
    public static func assess(
        _ text: String, context: Context, shown: Shown, earlier: [String], answerOnTopic: Bool, cutOff: Bool, tokens: Int? = nil
    ) -> QualityVerdict {
        assess(text, context: context, shown: shown, earlierWords: earlier.map(wordSet), answerOnTopic: answerOnTopic, cutOff: cutOff,
               tokens: tokens)
    }

    /// The stemmed word set the duplicate check compares: `wordSet` of each earlier description, kept by a caller
    /// that judges many sentences of one label so that each is split once, not once per later sentence.
    public static func wordSet(_ text: String) -> Set<String> {
        Set(ResponseParser.wordsOf(text).map(ResponseParser.stem))
    }

    /// `assess` with the earlier descriptions given as their `wordSet`s.
    public static func assess(
        _ text: String, context: Context, shown: Shown, earlierWords: [Set<String>], answerOnTopic: Bool, cutOff: Bool, tokens: Int? = nil
    ) -> QualityVerdict {
        judge(text, context: context, shown: shown, earlierWords: earlierWords, answerOnTopic: answerOnTopic, cutOff: cutOff, tokens: tokens).verdict
    }

    /// `assess`, and the text's `wordSet`, which it builds anyway: a caller that keeps the word sets of the
    /// descriptions it judged (for the duplicate check of later ones) splits each text once.
    static func judge(
        _ text: String, context: Context, shown: Shown, earlierWords: [Set<String>], answerOnTopic: Bool, cutOff: Bool, tokens: Int? = nil
    ) -> (verdict: QualityVerdict, words: Set<String>) {
        var verdict = QualityVerdict()
        var flags: [DescriptionFlag] = []

        // The words once: stemmed, and with the label's own names masked.
        let plain = ResponseParser.wordsOf(text)
        let stems = plain.map(ResponseParser.stem)
        let maskedWords = mask(stems, context.ownPatterns)
        let share = copiedShare(maskedWords, shown: shown)
        verdict.copiedShare = share
        if share >= copiedShare { flags.append(.copied) }

        let words = Set(stems)
        for (index, otherWords) in earlierWords.enumerated() {
            // |A ∪ B| = |A| + |B| - |A ∩ B|: no union set built.
            let common = words.count <= otherWords.count ? words.reduce(0) { $0 + (otherWords.contains($1) ? 1 : 0) }
                : otherWords.reduce(0) { $0 + (words.contains($1) ? 1 : 0) }
            let union = words.count + otherWords.count - common
            if union > 0, Double(common) / Double(union) >= duplicateOverlap {
                verdict.duplicateOf = index + 1
                flags.append(.duplicate)
                break
            }
        }

        if !answerOnTopic { flags.append(.offTopic) }

        verdict.otherLabels = otherLabelsNamed(maskedWords, context)
        if !verdict.otherLabels.isEmpty { flags.append(.namesOtherLabel) }

        if isIncomplete(text, cutOff: cutOff, words: plain) { flags.append(.incomplete) }

        verdict.tokens = tokens ?? estimatedTokens(text)
        verdict.tokensCounted = tokens != nil
        if verdict.tokens > tokenLimit { flags.append(.tooLong) }

        verdict.flags = Set(flags).sorted()
        return (verdict, words)
    }

    // MARK: - copied

    /// The demonstration answers a request showed, as masked word trigrams: built once per label, not per sentence.
    /// Each word the demonstrations use gets a number, and a trigram is three numbers: judging a sentence then looks
    /// each of its words up once, instead of hashing three strings for each of its trigrams.
    public struct Shown: Sendable {
        /// The demonstrations' words, numbered from 1 (0 stands for a word none of them uses).
        let numbers: [String: UInt32]
        let grams: Set<WordTrigram>
        let short: Set<[String]>
        let isEmpty: Bool

        public init(_ demonstrations: [(label: String, text: String)]) {
            var numbers: [String: UInt32] = [:]
            var grams = Set<WordTrigram>()
            var short = Set<[String]>()
            for demo in demonstrations {
                let words = DescriptionQuality.masked(demo.text, names: [demo.label])
                short.insert(words)
                let ids = words.map { word -> UInt32 in
                    if let id = numbers[word] { return id }
                    let id = UInt32(numbers.count + 1)
                    numbers[word] = id
                    return id
                }
                for start in ids.indices.dropLast(2) { grams.insert(WordTrigram(ids[start], ids[start + 1], ids[start + 2])) }
            }
            self.numbers = numbers
            self.grams = grams
            self.short = short
            isEmpty = demonstrations.isEmpty
        }
    }

    /// Three words in a row, by their numbers in `Shown`.
    struct WordTrigram: Hashable, Sendable {
        let first, second, third: UInt32
        init(_ first: UInt32, _ second: UInt32, _ third: UInt32) { (self.first, self.second, self.third) = (first, second, third) }
    }

    /// The share of `text`'s word trigrams that occur in any demonstration answer. The label's names and each
    /// demonstration's label are masked first, so "A cat is a tall animal…" copied from "A giraffe is a tall
    /// animal…" counts as copied. Texts under three words compare as one unit.
    static func copiedShare(_ mine: [String], shown: Shown) -> Double {
        guard !shown.isEmpty else { return 0 }
        guard mine.count >= 3 else { return shown.short.contains(mine) ? 1 : 0 }
        let ids = mine.map { shown.numbers[$0] ?? 0 }
        var copied = 0
        for start in 0..<(ids.count - 2) where ids[start] != 0 && ids[start + 1] != 0 && ids[start + 2] != 0 {
            if shown.grams.contains(WordTrigram(ids[start], ids[start + 1], ids[start + 2])) { copied += 1 }
        }
        return Double(copied) / Double(ids.count - 2)
    }

    /// Lower-case stemmed words, with every occurrence of a name (as a word sequence) replaced by one mark.
    static func masked(_ text: String, names: [String]) -> [String] {
        mask(ResponseParser.wordsOf(text).map(ResponseParser.stem), patterns(names))
    }

    /// Names as stemmed word sequences, longest first.
    static func patterns(_ names: [String]) -> [[String]] {
        names.map { ResponseParser.wordsOf($0).map(ResponseParser.stem) }.filter { !$0.isEmpty }.sorted { $0.count > $1.count }
    }

    /// `words` with every occurrence of a pattern replaced by one mark.
    static func mask(_ words: [String], _ patterns: [[String]]) -> [String] {
        guard !patterns.isEmpty else { return words }
        var out: [String] = []
        out.reserveCapacity(words.count)
        var i = 0
        while i < words.count {
            if let pattern = patterns.first(where: { i + $0.count <= words.count && words[i..<(i + $0.count)].elementsEqual($0) }) {
                out.append("\u{1}")
                i += pattern.count
            } else {
                out.append(words[i])
                i += 1
            }
        }
        return out
    }

    // MARK: - names-other-label

    static let contrastWords: Set<String> = [
        "unlike", "than", "differ", "differs", "different", "difference", "whereas", "rather", "distinguish", "distinguished",
        "contrast", "compared", "instead", "versus", "vs",
    ]

    /// Other labels of the set whose name (as a whole phrase) the text uses, once the label's own names are taken
    /// out ("sports ball" does not name "ball"). A sentence that contrasts ("unlike a cat, …", "smaller than a bus")
    /// names them on purpose and is not flagged.
    static func otherLabelsNamed(_ words: [String], _ context: Context, pruned: Bool = true) -> [String] {
        if words.contains(where: contrastWords.contains) { return [] }
        let own = context.ownPhrases
        var named: [String] = []
        for start in words.indices {
            var phrase = ""
            for length in 1...max(context.names.longest, 1) where start + length <= words.count {
                let word = words[start + length - 1]
                if word == "\u{1}" { break }
                phrase += (length == 1 ? "" : " ") + word
                // No name starts with these words, so no longer phrase from `start` is a name either.
                if pruned, !context.names.prefixes.contains(phrase) { break }
                guard !own.contains(phrase), let labels = context.names.phrases[phrase] else { continue }
                for raw in labels where raw != context.label.rawName && !named.contains(raw) { named.append(raw) }
            }
        }
        return named
    }

    // MARK: - incomplete

    static let danglingWords: Set<String> = [
        "a", "an", "the", "and", "or", "but", "with", "of", "to", "in", "on", "at", "for", "from", "by", "as", "is", "are",
        "its", "their", "that", "which", "such", "like", "very", "into", "onto", "than",
    ]

    /// - Parameter words: `ResponseParser.wordsOf(text)` when the caller has it (trimming white space changes no word).
    static func isIncomplete(_ text: String, cutOff: Bool, words: [String]? = nil) -> Bool {
        if let words, let ascii = isIncompleteASCII(text, cutOff: cutOff, words: words) { return ascii }
        return isIncompleteCharacters(text, cutOff: cutOff, words: words)
    }

    /// `isIncomplete` on the bytes of ASCII text; nil for any other text. In ASCII text each character is one byte
    /// (CR LF aside, which is white space and trimmed at the ends).
    static func isIncompleteASCII(_ text: String, cutOff: Bool, words: [String]) -> Bool? {
        var text = text
        return text.withUTF8 { bytes -> Bool? in
            var depth = 0
            var first = -1, last = -1
            for (index, byte) in bytes.enumerated() {
                if byte >= 0x80 { return nil }
                if FastText.isASCIISpace(byte) { continue }
                if first < 0 { first = index }
                last = index
            }
            if words.count < 3 || last < 0 { return true }
            let end = bytes[last]
            switch end {
            case UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: ":"), UInt8(ascii: "-"), UInt8(ascii: "("): return true
            default: break
            }
            let isLetter = (end | 0x20) >= UInt8(ascii: "a") && (end | 0x20) <= UInt8(ascii: "z")
            let isDigit = end >= UInt8(ascii: "0") && end <= UInt8(ascii: "9")
            if isLetter || isDigit, let word = words.last, danglingWords.contains(word) { return true }
            for byte in bytes[first...last] {
                if byte == UInt8(ascii: "(") { depth += 1 } else if byte == UInt8(ascii: ")") { depth -= 1 }
            }
            if depth > 0 { return true }
            if cutOff {
                switch end {
                case UInt8(ascii: "."), UInt8(ascii: "!"), UInt8(ascii: "?"), UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: ")"): break
                default: return true
                }
            }
            return false
        }
    }

    /// `isIncomplete` on characters, for any text.
    static func isIncompleteCharacters(_ text: String, cutOff: Bool, words: [String]? = nil) -> Bool {
        let trimmed = FastText.trimmed(text)
        let words = words ?? ResponseParser.wordsOf(trimmed)
        if words.count < 3 { return true }
        guard let last = trimmed.last else { return true }
        if ",;:-–(".contains(last) { return true }
        if last.isLetter || last.isNumber, let word = words.last, danglingWords.contains(word) { return true }
        if parenthesesLeftOpen(trimmed) { return true }
        // The last sentence of an answer cut at the token limit is whole only when it ends like a sentence.
        if cutOff, !".!?\"')”’".contains(last) { return true }
        return false
    }

    /// Whether more parentheses open than close: on bytes for ASCII text, where each byte is a character (CR LF
    /// aside, which holds no parenthesis); on characters otherwise, where "(" with a combining mark is no "(".
    static func parenthesesLeftOpen(_ text: String) -> Bool {
        let ascii = text.utf8.withContiguousStorageIfAvailable { bytes -> Int? in
            var depth = 0
            for byte in bytes {
                if byte >= 0x80 { return nil }
                if byte == UInt8(ascii: "(") { depth += 1 } else if byte == UInt8(ascii: ")") { depth -= 1 }
            }
            return depth
        } ?? nil
        if let ascii { return ascii > 0 }
        var depth = 0
        for c in text {
            if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
        }
        return depth > 0
    }

    // MARK: - too-long

    /// An estimate of CLIP's token count (start and end included) when no tokenizer is at hand: CLIP's BPE gives a
    /// common word one token and a long or rare one more, every punctuation mark and digit its own. Tuned to err
    /// towards counting more, so that what the estimate passes a tokenizer rarely truncates.
    public static func estimatedTokens(_ text: String) -> Int {
        estimatedTokensASCII(text) ?? estimatedTokensUnicode(text)
    }

    static func estimatedTokensUnicode(_ text: String) -> Int {
        var count = 2
        var run = 0
        func endWord() {
            if run > 0 { count += 1 + max(0, run - 6) / 4 }
            run = 0
        }
        for c in text.lowercased() {
            if c.isLetter {
                run += 1
            } else {
                endWord()
                if c.isNumber || c.isPunctuation || c.isSymbol { count += 1 }
            }
        }
        endWord()
        return count
    }

    /// `estimatedTokens` byte by byte for ASCII text (the same count: every printable ASCII character that is not a
    /// letter, a digit or a space is punctuation or a symbol); nil for any other text.
    static func estimatedTokensASCII(_ text: String) -> Int? {
        var text = text
        return text.withUTF8 { bytes -> Int? in
            var count = 2
            var run = 0
            for byte in bytes {
                guard byte < 0x80 else { return nil }
                if (byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7A {
                    run += 1
                    continue
                }
                if run > 0 { count += 1 + max(0, run - 6) / 4 }
                run = 0
                if byte > 0x20 && byte < 0x7F { count += 1 }   // digits, punctuation, symbols
            }
            if run > 0 { count += 1 + max(0, run - 6) / 4 }
            return count
        }
    }
}
