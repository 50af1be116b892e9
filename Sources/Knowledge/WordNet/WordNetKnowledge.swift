import Foundation

/// Offline visual knowledge from WordNet: for each label, the noun sense that best fits the domain, turned into short
/// sentences from its gloss, what it is a kind of, its parts, what it is part of, and what it resembles.
///
/// Nothing is invented: a label WordNet lacks gets no descriptions and is recorded as having no knowledge.
public struct WordNetKnowledge: Sendable {
    public struct Sense: Sendable {
        public var synset: WordNetDatabase.Synset
        /// The name that found it (display name, synonym, raw name or head noun).
        public var matchedName: String
        /// Whether only the head noun of a longer name matched, so sentences speak of the head noun.
        public var viaHeadNoun: Bool
        public var score: Double
    }

    /// What a WordNet run's identity records, so that a store built by an older algorithm is rebuilt.
    public static let version = "wordnet 3.0, \(SensePicker.algorithmVersion)"

    public let database: WordNetDatabase
    let picker: SensePicker
    private let cache = SenseCache()

    public init(database: WordNetDatabase) {
        self.database = database
        self.picker = SensePicker(database: database)
    }

    /// The sense of `label` as one of `labelSet` (the whole set is the context; empty means the label alone) in the
    /// domain a template's domain phrase names, or nil when WordNet has no fitting sense.
    public func sense(for label: Label, in labelSet: [Label] = [], domain: String) -> Sense? {
        let set = labelSet.contains(label) ? labelSet : [label]
        let choices = cache.choices(for: set, domain: domain) { picker.pick(set, domain: .from(phrase: domain)) }
        return choices[label.rawName].map {
            Sense(synset: $0.synset, matchedName: $0.matchedName, viaHeadNoun: $0.viaHeadNoun, score: $0.score)
        }
    }

    /// Visual sentences about `label`, at most `count`, in order of usefulness.
    public func describe(_ label: Label, sense: Sense, count: Int) -> [String] {
        let subject = label.displayName
        let plural = database.isPlural(subject)
        let name = sense.viaHeadNoun ? sense.matchedName : subject
        let the = Self.capitalized(plural ? subject : Self.article(subject) + " " + subject)
        var sentences: [String] = []
        let synset = sense.synset

        // The gloss, as a sentence.
        let definition = synset.definition
        if !definition.isEmpty {
            if sense.viaHeadNoun {
                sentences.append("\(the) shows \(Self.article(name)) \(name), which is \(definition).")
            } else {
                sentences.append("\(the) \(plural ? "are" : "is") \(Self.withArticle(definition)).")
            }
        }
        // What it is a kind of.
        let hypernyms = (synset.targets("@") + synset.targets("@i")).compactMap(database.synset(at:))
        if let hypernym = hypernyms.first {
            let word = hypernym.words[0].word
            sentences.append("\(the) \(plural ? "are" : "is") a kind of \(word), \(Self.shortDefinition(hypernym)).")
        }
        // Parts, inherited from up to two hypernym levels when the sense itself lists none.
        var parts = synset.targets("%p").compactMap(database.synset(at:))
        var level = hypernyms
        for _ in 0..<2 where parts.isEmpty {
            parts = level.flatMap { $0.targets("%p") }.compactMap(database.synset(at:))
            level = level.flatMap { $0.targets("@") }.compactMap(database.synset(at:))
        }
        if !parts.isEmpty {
            sentences.append("Visible parts of \(plural ? subject : Self.article(subject) + " " + subject) include \(Self.list(parts.prefix(4).map { $0.words[0].word })).")
        }
        // What it is made of.
        let substances = synset.targets("%s").compactMap(database.synset(at:))
        if !substances.isEmpty {
            sentences.append("\(the) \(plural ? "are" : "is") made of \(Self.list(substances.prefix(3).map { $0.words[0].word })).")
        }
        // What it is usually part of, or a member of: the company it keeps in a picture.
        let wholes = (synset.targets("#p") + synset.targets("#m")).compactMap(database.synset(at:))
        if !wholes.isEmpty {
            sentences.append("\(the) \(plural ? "are" : "is") usually seen as part of \(Self.list(wholes.prefix(3).map { Self.article($0.words[0].word) + " " + $0.words[0].word })).")
        }
        // Look-alikes: sister terms under the first hypernym.
        if let hypernym = hypernyms.first {
            let sisters = hypernym.targets("~").filter { $0 != synset.offset }.compactMap(database.synset(at:))
            if !sisters.isEmpty {
                sentences.append("\(the) \(plural ? "look" : "looks") similar to \(Self.list(sisters.prefix(3).map { $0.words[0].word })).")
            }
        }
        // Kinds of it: the visual variety within the label.
        let kinds = synset.targets("~").compactMap(database.synset(at:))
        if !kinds.isEmpty {
            sentences.append("Kinds of \(sense.viaHeadNoun ? name : subject) include \(Self.list(kinds.prefix(4).map { $0.words[0].word })).")
        }
        // Other names for the same thing.
        let others = synset.words.map(\.word).filter { $0.lowercased() != subject.lowercased() && $0.lowercased() != name.lowercased() }
        if !others.isEmpty {
            sentences.append("\(the) \(plural ? "are" : "is") also called \(Self.list(others.prefix(3).map { $0 })).")
        }
        return Array(sentences.prefix(count))
    }

    // MARK: - Wording

    static func article(_ word: String) -> String {
        guard let first = word.lowercased().first else { return "a" }
        return "aeiou".contains(first) ? "an" : "a"
    }

    static func withArticle(_ definition: String) -> String {
        let lower = definition.lowercased()
        for start in ["a ", "an ", "the ", "any ", "one ", "some ", "either ", "each "] where lower.hasPrefix(start) { return definition }
        return "\(article(definition)) \(definition)"
    }

    static func shortDefinition(_ synset: WordNetDatabase.Synset) -> String {
        let definition = synset.definition
        let words = definition.split(separator: " ")
        return words.count <= 14 ? withArticle(definition) : withArticle(words.prefix(14).joined(separator: " ")) + "…"
    }

    static func capitalized(_ text: String) -> String {
        guard let first = text.first else { return text }
        return first.uppercased() + text.dropFirst()
    }

    static func list(_ items: [String]) -> String {
        switch items.count {
        case 0: return ""
        case 1: return items[0]
        default: return items.dropLast().joined(separator: ", ") + " and " + items[items.count - 1]
        }
    }
}

extension KnowledgeProvider {
    /// The offline default: WordNet, with no LLM and no network.
    public static func wordnet(directory: String) throws -> KnowledgeProvider {
        let database = try WordNetDatabase(directory: directory)
        let knowledge = WordNetKnowledge(database: database)
        return KnowledgeProvider(name: "wordnet", endpoint: directory, model: WordNetKnowledge.version) { request in
            let started = ContinuousClock.now
            guard let sense = knowledge.sense(for: request.label, in: request.labelSet, domain: request.domain) else {
                let record = ["source": WordNetKnowledge.version, "result": "no fitting noun sense for any of: " + request.label.allNames.joined(separator: ", ")]
                return KnowledgeResponse(choices: [], raw: canonical(record), latency: 0, metadata: ["source": WordNetKnowledge.version], noKnowledge: true)
            }
            let sentences = knowledge.describe(request.label, sense: sense, count: request.count)
            let key = sense.synset.senseKey(for: sense.matchedName)
            let metadata = [
                "source": WordNetKnowledge.version,
                "sense_keys": key,
                "synset_offset": String(format: "%08d", sense.synset.offset),
                "matched_name": sense.matchedName,
            ]
            let content = PromptBuilder.canonicalJSON(["descriptions": sentences])
            let latency = JSONPoster.seconds(ContinuousClock.now - started)
            return KnowledgeResponse(
                choices: [.init(content: content, finishReason: "stop")],
                raw: canonical(metadata.merging(["gloss": sense.synset.gloss]) { a, _ in a }),
                latency: latency,
                metadata: metadata
            )
        }
    }

    static func canonical(_ value: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
    }
}

/// The picks of each label set, computed once per set and domain (a set is picked as a whole).
final class SenseCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: [String: SensePicker.Choice]] = [:]

    func choices(for labels: [Label], domain: String, compute: () -> [String: SensePicker.Choice]) -> [String: SensePicker.Choice] {
        let key = domain + "\u{1}" + labels.map { ([$0.rawName, $0.displayName] + $0.synonyms).joined(separator: "\u{2}") }.joined(separator: "\u{3}")
        if let cached = lock.withLock({ entries[key] }) { return cached }
        let value = compute()
        lock.withLock { entries[key] = value }
        return value
    }
}
