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

    public let database: WordNetDatabase

    public init(database: WordNetDatabase) {
        self.database = database
    }

    /// Lexicographer files that hold visible things, per domain keyword (wndb(5WN) numbers).
    static func preferredLexFiles(domain: String) -> Set<Int> {
        let d = domain.lowercased()
        if d.contains("pedestrian") || d.contains("person") || d.contains("surveillance") {
            return [6, 8, 18, 7] // artifact (clothing, bags), body, person, attribute
        }
        if d.contains("remote") || d.contains("aerial") || d.contains("satellite") {
            return [6, 15, 17, 20, 27, 14] // artifact (structures), location, object (landforms), plant, substance, group
        }
        return [5, 6, 13, 17, 20, 18, 27] // animal, artifact, food, object, plant, person, substance
    }

    /// Picks the sense that fits `label` best in `domain`, or nil when WordNet knows none of its names.
    public func sense(for label: Label, domain: String) -> Sense? {
        let preferred = Self.preferredLexFiles(domain: domain)
        var candidates: [(name: String, weight: Double, head: Bool)] = [(label.displayName, 3, false)]
        candidates += label.synonyms.map { ($0, 2.5, false) }
        candidates.append((label.rawName, 2, false))
        let camel = ResponseParser.splitCamelCase(label.rawName).joined(separator: " ")
        if camel != label.rawName.lowercased() { candidates.append((camel, 2, false)) }
        if let head = Self.headNoun(label.displayName), head.lowercased() != label.displayName.lowercased() {
            candidates.append((head, 1, true))
        }
        let allWords = Set(label.allNames.flatMap(ResponseParser.wordsOf))
        let contentStems = Set(allWords.filter { $0.count >= 4 && !ResponseParser.stopWords.contains($0) }.map(Self.stem))
        let domainStems = Set(Self.domainWords(domain: domain).map(Self.stem))
        var best: Sense?
        for candidate in candidates {
            let synsets = database.synsets(for: candidate.name)
            for (rank, synset) in synsets.enumerated() {
                var score = candidate.weight + 2.0 / Double(rank + 1)
                if preferred.contains(synset.lexFile) { score += 2 }
                // Agreement with the label's other names (e.g. synonym "television" for "tv monitor").
                let synsetWords = Set(synset.words.flatMap { ResponseParser.wordsOf($0.word) })
                score += Double(synsetWords.intersection(allWords).count) * 0.5
                // Agreement of the gloss with the label's other words ("airport apron" → "where aircraft stand").
                let glossStems = Set(ResponseParser.wordsOf(synset.definition).map(Self.stem))
                score += Double(contentStems.intersection(glossStems).count) * 1.5
                // Glosses that speak the domain's language ("paved surface" seen from the air, "worn" by a pedestrian).
                score += Double(min(domainStems.intersection(glossStems).count, 2)) * 1.5
                if best == nil || score > best!.score {
                    best = Sense(synset: synset, matchedName: candidate.name, viaHeadNoun: candidate.head, score: score)
                }
            }
        }
        return best
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

    /// A crude stem (the first five letters): enough to match inflections such as "surfaces" and "surface".
    static func stem(_ word: String) -> String { String(word.prefix(5)) }

    /// Words whose presence in a gloss suggests the sense belongs to the domain.
    static func domainWords(domain: String) -> [String] {
        let d = domain.lowercased()
        if d.contains("pedestrian") || d.contains("person") || d.contains("surveillance") {
            return ["garment", "worn", "wearing", "clothing", "clothes", "body", "person", "head", "hair", "shoulder", "carried", "bag", "footwear"]
        }
        if d.contains("remote") || d.contains("aerial") || d.contains("satellite") {
            return ["surface", "ground", "land", "area", "paved", "field", "building", "buildings", "water", "road", "aircraft", "tract", "structure", "vegetation", "region"]
        }
        return []
    }

    // MARK: - Wording

    /// The head noun of a phrase: the word before the first preposition, participle or number, else the last word
    /// (`logo on upper-body clothing` → `logo`, `person aged 17 to 30` → `person`).
    static func headNoun(_ phrase: String) -> String? {
        let words = phrase.split(separator: " ").map(String.init)
        guard words.count > 1 else { return nil }
        let prepositions: Set<String> = ["on", "of", "with", "in", "at", "for", "from", "over", "under", "by", "to", "without", "than"]
        let breaks = { (word: String) -> Bool in
            let w = word.lowercased()
            return prepositions.contains(w) || ["seen", "worn", "held"].contains(w) || w.hasSuffix("ed") || w.hasSuffix("ing") || w.first?.isNumber == true
        }
        if let index = words.indices.dropFirst().first(where: { breaks(words[$0]) }) { return words[index - 1] }
        return words.last { $0.first?.isLetter == true }
    }

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
        return KnowledgeProvider(name: "wordnet", endpoint: directory, model: database.version) { request in
            let started = ContinuousClock.now
            guard let sense = knowledge.sense(for: request.label, domain: request.domain) else {
                let record = ["source": database.version, "result": "no noun sense for any of: " + request.label.allNames.joined(separator: ", ")]
                return KnowledgeResponse(choices: [], raw: canonical(record), latency: 0, metadata: ["source": database.version], noKnowledge: true)
            }
            let sentences = knowledge.describe(request.label, sense: sense, count: request.count)
            let key = sense.synset.senseKey(for: sense.matchedName)
            let metadata = [
                "source": database.version,
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
