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

        /// Its hypernyms and instance hypernyms.
        public var hypernymOffsets: [Int] { pointers.filter { $0.symbol == "@" || $0.symbol == "@i" }.map(\.offset) }

        /// A named individual (a person, a place, a deity): it has an instance hypernym.
        public var isInstance: Bool { pointers.contains { $0.symbol == "@i" } }
    }

    public let directory: String
    public let version = "wordnet 3.0"
    private let index: [String: [Int]]
    private let exceptions: [String: [String]]
    /// Semantic-concordance tag counts by sense key (`cntlist.rev`): how often each sense was seen in tagged text.
    private let tagCounts: [String: Int]
    private let data: [UInt8]
    private var cache: [Int: Synset] = [:]
    private var ancestorCache: [Int: [Int: Int]] = [:]
    private var subtreeCache: [Int: Int] = [:]
    private var irregularPlurals: [String: String]?
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
        var exceptions: [String: [String]] = [:]
        if let exc = FileManager.default.contents(atPath: directory + "/noun.exc") {
            for line in String(decoding: exc, as: UTF8.self).split(separator: "\n") {
                let fields = line.split(separator: " ")
                if fields.count >= 2 { exceptions[String(fields[0]), default: []] += fields.dropFirst().map(String.init) }
            }
        }
        var tagCounts: [String: Int] = [:]
        if let counts = FileManager.default.contents(atPath: directory + "/cntlist.rev") {
            for line in String(decoding: counts, as: UTF8.self).split(separator: "\n") {
                let fields = line.split(separator: " ")
                if fields.count == 3, fields[0].contains("%1:"), let count = Int(fields[2]) { tagCounts[String(fields[0])] = count }
            }
        }
        self.tagCounts = tagCounts
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
        forms += exceptions[key] ?? []
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

    /// The index lemmas a name reaches, in WordNet's own morphology (wndb(5WN), morphy(7WN)): the name as written
    /// (spaces as underscores, hyphens kept or as underscores), joined ("wine glass" → wineglass), hyphenated, and
    /// the base forms of each from `noun.exc` and the detachment rules ("boats" → boat, "mice" → mouse).
    public func lemmas(for name: String) -> [String] {
        let lower = name.lowercased().trimmingCharacters(in: .whitespaces)
        let words = lower.split(whereSeparator: { $0 == " " || $0 == "_" })
        let spelled = [
            words.joined(separator: "_").replacingOccurrences(of: "-", with: "_"),
            words.joined().replacingOccurrences(of: "-", with: ""),
            words.joined(separator: "-"),
        ]
        var found: [String] = []
        for form in spelled where !form.isEmpty {
            var bases = [form] + (exceptions[form] ?? [])
            let rules = [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y")]
            for (suffix, replacement) in rules where form.hasSuffix(suffix) {
                bases.append(String(form.dropLast(suffix.count)) + replacement)
            }
            for base in bases where index[base] != nil && !found.contains(base) { found.append(base) }
        }
        return found
    }

    /// The irregular plural `noun.exc` gives for a singular ("mouse" → "mice"), if any.
    public func irregularPlural(of singular: String) -> String? {
        lock.withLock {
            if irregularPlurals == nil {
                var inverse: [String: String] = [:]
                for (plural, bases) in exceptions { for base in bases where inverse[base] == nil { inverse[base] = plural } }
                irregularPlurals = inverse
            }
            return irregularPlurals?[singular.replacingOccurrences(of: " ", with: "_")]?.replacingOccurrences(of: "_", with: " ")
        }
    }

    /// The synset offsets of an index lemma, most frequent sense first.
    public func offsets(ofLemma lemma: String) -> [Int] { index[lemma] ?? [] }

    /// How often the sense `lemma` (an index lemma) of `synset` was tagged in the semantic concordances.
    public func tagCount(lemma: String, synset: Synset) -> Int {
        tagCounts[synset.senseKey(for: lemma.replacingOccurrences(of: "_", with: " "))] ?? 0
    }

    /// Every hypernym (and instance hypernym) of `offset` with its distance; `offset` itself at 0.
    public func ancestors(of offset: Int) -> [Int: Int] {
        if let cached = lock.withLock({ ancestorCache[offset] }) { return cached }
        var result = [offset: 0]
        var frontier = [offset]
        var distance = 0
        while !frontier.isEmpty {
            distance += 1
            var next: [Int] = []
            for node in frontier {
                for target in (synset(at: node)?.hypernymOffsets ?? []) where result[target] == nil {
                    result[target] = distance
                    next.append(target)
                }
            }
            frontier = next
        }
        lock.withLock { ancestorCache[offset] = result }
        return result
    }

    /// How many synsets lie under `offset` (itself included), counted up to `limit`: small for a specific category
    /// ("baked goods"), large for a vague one ("device").
    public func subtreeSize(of offset: Int, limit: Int = 5000) -> Int {
        if let cached = lock.withLock({ subtreeCache[offset] }) { return cached }
        var seen: Set<Int> = [offset]
        var stack = [offset]
        while let node = stack.popLast(), seen.count <= limit {
            for pointer in synset(at: node)?.pointers ?? [] where (pointer.symbol == "~" || pointer.symbol == "~i") && !seen.contains(pointer.offset) {
                seen.insert(pointer.offset)
                stack.append(pointer.offset)
            }
        }
        lock.withLock { subtreeCache[offset] = seen.count }
        return seen.count
    }

    /// The synset whose line starts at byte `offset` of data.noun.
    public func synset(at offset: Int) -> Synset? {
        if let cached = lock.withLock({ cache[offset] }) { return cached }
        guard offset >= 0, offset < data.count else { return nil }
        var end = offset
        while end < data.count, data[end] != 0x0A { end += 1 }
        let line = String(decoding: data[offset..<end], as: UTF8.self)
        guard let parsed = Self.parse(line), parsed.offset == offset else { return nil }
        lock.withLock { cache[offset] = parsed }
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
