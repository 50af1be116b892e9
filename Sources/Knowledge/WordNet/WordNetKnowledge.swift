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
        /// The index lemma that reached it (e.g. `wineglass`).
        public var lemma: String
    }

    /// What a WordNet run's identity records, so that a store built by an older algorithm is rebuilt.
    public static let version = "wordnet 3.0, \(SensePicker.algorithmVersion), sentences-3"

    public let database: WordNetDatabase
    let picker: SensePicker
    let writer: WordNetSentences
    private let cache = SenseCache()

    public init(database: WordNetDatabase) {
        self.database = database
        self.picker = SensePicker(database: database)
        self.writer = WordNetSentences(database: database)
    }

    /// The sense of `label` as one of `labelSet` (the whole set is the context; empty means the label alone) in the
    /// domain a template's domain phrase names, or nil when WordNet has no fitting sense.
    public func sense(for label: Label, in labelSet: [Label] = [], domain: String) -> Sense? {
        if let pinned = label.sense {
            guard pinned != "none", let synset = synset(forSenseKey: pinned) else { return nil }
            let lemma = String(pinned.prefix { $0 != "%" })
            return Sense(synset: synset, matchedName: label.displayName, viaHeadNoun: false, score: .infinity, lemma: lemma)
        }
        let set = labelSet.contains(label) ? labelSet : [label]
        let choices = cache.choices(for: set, domain: domain) { picker.pick(set, domain: .from(phrase: domain)) }
        return choices[label.rawName].map {
            Sense(synset: $0.synset, matchedName: $0.matchedName, viaHeadNoun: $0.viaHeadNoun, score: $0.score, lemma: $0.lemma)
        }
    }

    /// The synset a sense key names (`dog%1:05:00::`), if WordNet has it.
    public func synset(forSenseKey key: String) -> WordNetDatabase.Synset? {
        let lemma = String(key.prefix { $0 != "%" }).lowercased()
        return database.offsets(ofLemma: lemma).compactMap(database.synset(at:)).first {
            $0.senseKey(for: lemma.replacingOccurrences(of: "_", with: " ")) == key.lowercased()
        }
    }

    /// Visual sentences about `label`, at most `count`, in order of usefulness; the other labels of `labelSet`
    /// are never listed in them.
    public func describe(_ label: Label, sense: Sense, in labelSet: [Label] = [], count: Int) -> [String] {
        let choice = SensePicker.Choice(synset: sense.synset, matchedName: sense.matchedName, lemma: sense.lemma,
                                        viaHeadNoun: sense.viaHeadNoun, score: sense.score)
        return writer.sentences(for: label, sense: choice, others: labelSet.filter { $0 != label }, count: count)
    }
}

extension KnowledgeProvider {
    /// The offline default: WordNet, with no LLM and no network.
    public static func wordnet(directory: String) throws -> KnowledgeProvider {
        let database = try WordNetDatabase(directory: directory)
        let knowledge = WordNetKnowledge(database: database)
        return KnowledgeProvider(name: "wordnet", endpoint: directory, model: WordNetKnowledge.version, kind: .offline, wordnet: database) { request in
            let started = ContinuousClock.now
            if let pinned = request.label.sense, pinned != "none", knowledge.synset(forSenseKey: pinned) == nil {
                throw ProviderError(.configuration, "'\(request.label.rawName)' (line \(request.label.line)) pins the sense \(pinned), which WordNet 3.0 does not have; check the key or remove the pin.")
            }
            guard let sense = knowledge.sense(for: request.label, in: request.labelSet, domain: request.domain) else {
                let record = ["source": WordNetKnowledge.version, "result": "no fitting noun sense for any of: " + request.label.allNames.joined(separator: ", ")]
                return KnowledgeResponse(.none(reason: record["result"]!), raw: canonical(record), latency: 0, metadata: ["source": WordNetKnowledge.version])
            }
            let sentences = knowledge.describe(request.label, sense: sense, in: request.labelSet, count: request.count)
            guard !sentences.isEmpty else {
                let record = ["source": WordNetKnowledge.version, "result": "WordNet's sense has nothing visual to say", "sense": sense.synset.definition]
                return KnowledgeResponse(.none(reason: record["result"]!), raw: canonical(record), latency: 0, metadata: ["source": WordNetKnowledge.version])
            }
            let key = sense.synset.senseKey(for: sense.matchedName)
            let metadata = [
                "source": WordNetKnowledge.version,
                "sense_keys": key,
                "synset_offset": String(format: "%08d", sense.synset.offset),
                "matched_name": sense.matchedName,
                "chosen_by": request.label.sense == nil ? "evidence" : "pinned",
            ]
            let latency = JSONPoster.seconds(ContinuousClock.now - started)
            return KnowledgeResponse(
                .descriptions(sentences),
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
