import Foundation

/// A read-only view of WordNet 3.0's noun database in the Princeton file format (Debian's `wordnet-base`).
///
/// Reads `index.noun`, `data.noun` and `noun.exc`; see wndb(5WN). Only nouns: labels name things.
public final class WordNetDatabase: @unchecked Sendable {
    public struct Pointer: Sendable, Hashable {
        public var symbol: String
        public var offset: Int
    }

    public struct Synset: Sendable, Hashable {
        public var offset: Int
        /// The lexicographer file number (wndb(5WN)): 5 animal, 6 artifact, 17 object, 20 plant, …
        public var lexFile: Int
        /// Words with their lexical ids, underscores turned into spaces.
        public var words: [(word: String, lexID: Int)]
        public var pointers: [Pointer]
        public var gloss: String

        public static func == (a: Synset, b: Synset) -> Bool { a.offset == b.offset }
        public func hash(into hasher: inout Hasher) { hasher.combine(offset) }

        /// The definition part of the gloss, without the quoted examples after it.
        public var definition: String {
            let parts = gloss.components(separatedBy: "; \"")
            return parts[0].trimmingCharacters(in: CharacterSet(charactersIn: " ;"))
        }

        /// The WordNet sense key of `word` in this synset, e.g. `dog%1:05:00::`.
        public func senseKey(for word: String) -> String {
            let entry = words.first { $0.word.lowercased() == word.lowercased() } ?? words[0]
            let lemma = entry.word.lowercased().replacingOccurrences(of: " ", with: "_")
            return String(format: "%@%%1:%02d:%02d::", lemma, lexFile, entry.lexID)
        }

        public func targets(_ symbol: String) -> [Int] { pointers.filter { $0.symbol == symbol }.map(\.offset) }
    }

    public let directory: String
    public let version = "wordnet 3.0"
    private let index: [String: [Int]]
    private let exceptions: [String: String]
    private let data: [UInt8]
    private var cache: [Int: Synset] = [:]
    private let lock = NSLock()

    /// Opens the database in `directory`, e.g. `/usr/share/wordnet`.
    public init(directory: String) throws {
        self.directory = directory
        let indexPath = directory + "/index.noun"
        let dataPath = directory + "/data.noun"
        guard let indexData = FileManager.default.contents(atPath: indexPath),
              let dataBytes = FileManager.default.contents(atPath: dataPath)
        else {
            throw WordNetError(message: "WordNet is not installed at \(directory) (need index.noun and data.noun). Install it with `apt-get install wordnet-base`, or pass --wordnet DIR.")
        }
        var index: [String: [Int]] = [:]
        for line in String(decoding: indexData, as: UTF8.self).split(separator: "\n") where !line.hasPrefix(" ") {
            let fields = line.split(separator: " ")
            guard fields.count >= 4, let synsetCount = Int(fields[2]), let pointerCount = Int(fields[3]) else { continue }
            let start = 4 + pointerCount + 2
            guard fields.count >= start + synsetCount else { continue }
            index[String(fields[0])] = fields[start..<(start + synsetCount)].compactMap { Int($0) }
        }
        var exceptions: [String: String] = [:]
        if let exc = FileManager.default.contents(atPath: directory + "/noun.exc") {
            for line in String(decoding: exc, as: UTF8.self).split(separator: "\n") {
                let fields = line.split(separator: " ")
                if fields.count >= 2 { exceptions[String(fields[0])] = String(fields[1]) }
            }
        }
        guard !index.isEmpty else {
            throw WordNetError(message: "\(indexPath) has no entries; the WordNet files look damaged. Reinstall with `apt-get install --reinstall wordnet-base`.")
        }
        self.index = index
        self.exceptions = exceptions
        self.data = [UInt8](dataBytes)
    }

    /// The synsets of a noun, most frequent sense first, trying base forms of plurals (`buildings` → `building`).
    public func synsets(for noun: String) -> [Synset] {
        for form in baseForms(noun) {
            if let offsets = index[form] { return offsets.compactMap(synset(at:)) }
        }
        return []
    }

    /// Whether `noun` was found only through a base form, i.e. it is a plural.
    public func isPlural(_ noun: String) -> Bool {
        let key = Self.key(noun)
        return index[key] == nil && baseForms(noun).dropFirst().contains { index[$0] != nil }
    }

    func baseForms(_ noun: String) -> [String] {
        let key = Self.key(noun)
        var forms = [key]
        if let base = exceptions[key] { forms.append(base) }
        // wndb's detachment rules for nouns, applied to the last word of a compound.
        let rules = [("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y"), ("s", "")]
        for (suffix, replacement) in rules where key.hasSuffix(suffix) {
            forms.append(String(key.dropLast(suffix.count)) + replacement)
        }
        return forms
    }

    static func key(_ noun: String) -> String {
        noun.lowercased().trimmingCharacters(in: .whitespaces)
            .replacingOccurrences(of: "-", with: "_")
            .split(whereSeparator: { $0 == " " || $0 == "_" }).joined(separator: "_")
    }

    /// The synset whose line starts at byte `offset` of data.noun.
    public func synset(at offset: Int) -> Synset? {
        lock.lock()
        defer { lock.unlock() }
        if let cached = cache[offset] { return cached }
        guard offset >= 0, offset < data.count else { return nil }
        var end = offset
        while end < data.count, data[end] != 0x0A { end += 1 }
        let line = String(decoding: data[offset..<end], as: UTF8.self)
        guard let parsed = Self.parse(line), parsed.offset == offset else { return nil }
        cache[offset] = parsed
        return parsed
    }

    static func parse(_ line: String) -> Synset? {
        let halves = line.split(separator: "|", maxSplits: 1)
        let fields = halves[0].split(separator: " ")
        guard fields.count >= 4, let offset = Int(fields[0]), let lexFile = Int(fields[1]),
              let wordCount = Int(fields[3], radix: 16)
        else { return nil }
        var i = 4
        var words: [(String, Int)] = []
        for _ in 0..<wordCount {
            guard i + 1 < fields.count else { return nil }
            words.append((fields[i].replacingOccurrences(of: "_", with: " "), Int(fields[i + 1], radix: 16) ?? 0))
            i += 2
        }
        guard i < fields.count, let pointerCount = Int(fields[i]) else { return nil }
        i += 1
        var pointers: [Pointer] = []
        for _ in 0..<pointerCount {
            guard i + 3 < fields.count else { break }
            if fields[i + 2] == "n", let target = Int(fields[i + 1]) {
                pointers.append(Pointer(symbol: String(fields[i]), offset: target))
            }
            i += 4
        }
        let gloss = halves.count > 1 ? halves[1].trimmingCharacters(in: .whitespaces) : ""
        return Synset(offset: offset, lexFile: lexFile, words: words, pointers: pointers, gloss: gloss)
    }
}

public struct WordNetError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
