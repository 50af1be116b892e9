import Foundation

/// Picks the WordNet noun sense of every label of a label set at once, from the evidence WordNet ships and the set
/// itself, or decides that WordNet has no fitting sense ("no knowledge").
///
/// The evidence, per candidate sense:
/// - the name that reached it: the display name weighs most; the raw name (when it differs) and synonyms count
///   mainly as agreement, and a sense only a synonym reaches loses to the display name's senses;
/// - how often the sense was tagged in WordNet's semantic concordances (`cntlist.rev`) and its rank;
/// - a domain prior over lexicographer files (the natural domain is about visible things: animals, artifacts, food,
///   plants, natural objects; the pedestrian domain only about artifacts, the body and kinds of people);
/// - agreement: several of the label's names reaching the same synset; the label's other words in the gloss or in
///   the lemma ("leather shoes" → a shoe "with a flexible upper of leather");
/// - compound kinds: how many of the sense's direct kinds WordNet names with a compound ending in the word
///   ("cheesecake", "birthday cake" under the baked good; none under the block of soap), the sense people use the
///   word in;
/// - a kind the label names: one of the sense's hypernyms (up to two steps up) is a noun of the label other than what
///   its names reach as a whole ("thin-striped clothing | pinstripes": the pinstripe that is a kind of stripe, not
///   the pinstripe suit);
/// - coherence with the rest of the set: another label is a kind of this sense (cake ← donut), or shares a specific
///   ancestor with it (measured by how few synsets lie under the shared ancestor), capped so it cannot beat a
///   clear tag-count winner alone.
/// Instance synsets (named people, places, deities) are never chosen. A compound WordNet lacks falls back to its
/// head noun only when the head names the label's kind, is not a generic word of the domain ("person seen from the
/// side" → nothing), and does not collapse the label onto another label's own sense ("striped trousers" beside
/// "trousers"). A label longer than six words that WordNet does not know as a whole is a sentence, not a name.
public struct SensePicker: Sendable {
    /// The chosen sense of one label.
    public struct Choice: Sendable {
        public var synset: WordNetDatabase.Synset
        /// The name that reached it: the display name, a synonym, the raw name, or a head noun.
        public var matchedName: String
        /// The index lemma that reached it (e.g. `wineglass`).
        public var lemma: String
        /// Whether only the head noun of a longer name matched.
        public var viaHeadNoun: Bool
        public var score: Double
    }

    /// The priors of one domain.
    public struct Domain: Sendable {
        public var name: String
        /// Lexicographer file number → prior; files not listed get `otherLexFiles`, or are excluded when strict.
        var lexFiles: [Int: Double]
        var strict: Bool
        /// Words that say nothing specific about an image of the domain ("person" for pedestrians, "area" from above).
        var generic: Set<String>
        /// Gloss words that speak the domain's language.
        var glossWords: Set<String>

        public static let natural = Domain(
            name: "natural", lexFiles: [3: 1.5, 4: 0.5, 5: 2, 6: 2, 8: 0.5, 9: 0, 11: 0.5, 13: 2, 14: 0, 15: 0.5, 17: 1.5, 18: 0, 19: 1, 20: 1.5, 27: 1],
            strict: false, generic: ["thing", "object", "item", "scene", "view", "image", "photo", "picture"], glossWords: [])
        public static let pedestrian = Domain(
            name: "pedestrian", lexFiles: [6: 2, 8: 1, 10: 0, 18: 1.5], strict: true,
            generic: ["person", "people", "pedestrian", "human", "individual", "adult", "body", "build", "clothing", "clothes",
                      "garment", "hair", "item", "thing", "object", "accessory", "accessories", "belongings", "attachment",
                      "top", "group", "view", "side", "front", "back", "nothing", "something"],
            glossWords: Set(["garment", "footwear", "clothing", "carried", "carry"].map(stem)))
        public static let remoteSensing = Domain(
            name: "remote sensing", lexFiles: [5: 0, 6: 2, 14: 0.5, 15: 2, 17: 2, 19: 0.5, 20: 1.5, 27: 1], strict: false,
            generic: ["area", "region", "land", "place", "scene", "view", "image", "zone", "site"],
            glossWords: Set(["ground", "land", "surface", "paved", "area", "field", "building", "structure", "water", "road",
                             "aircraft", "vegetation", "region", "tract"].map(stem)))

        /// The domain a template's domain phrase speaks of ("pedestrian surveillance images", "aerial and satellite
        /// images"); anything else is natural images.
        public static func from(phrase: String) -> Domain {
            let d = phrase.lowercased()
            if ["pedestrian", "person", "surveillance"].contains(where: d.contains) { return .pedestrian }
            if ["remote", "aerial", "satellite"].contains(where: d.contains) { return .remoteSensing }
            return .natural
        }

        func prior(_ lexFile: Int) -> Double? {
            if let value = lexFiles[lexFile] { return value }
            return strict ? nil : -1.5
        }
    }

    /// The version of this algorithm; part of a WordNet run's identity, so a store built by an older one is redone.
    public static let algorithmVersion = "senses-5"

    public let database: WordNetDatabase

    public init(database: WordNetDatabase) {
        self.database = database
    }

    // MARK: - Candidates

    struct Name {
        var text: String
        var weight: Double
        var primary: Bool
    }

    struct Candidate {
        var offset: Int
        var name: String
        var weight: Double
        var primary: Bool
        var viaHead: Bool
        var rank: Int
        var count: Int
        var lemma: String
        var senses: Int
        var total: Int
    }

    static let synonymWeight = 0.5
    /// The most the rest of the set can add to a sense.
    static let coherenceCap = 2.0
    static let prepositions: Set<String> = ["on", "of", "with", "in", "at", "for", "from", "over", "under", "by", "to", "without", "than", "or", "and"]
    static let stopWords: Set<String> = Set("""
        a an the of and or in on at for with to from by is are be that which as its it this these those some any into \
        onto over under than other others used usually often esp especially e g etc one two
        """.split(separator: " ").map(String.init))

    /// The label's names, display name first; the raw name counts fully only when it is the display name.
    static func names(of label: Label) -> [Name] {
        var names = [Name(text: label.displayName, weight: 3, primary: true)]
        names += label.synonyms.map { Name(text: $0, weight: synonymWeight, primary: false) }
        let rawIsDisplay = label.rawName == label.displayName
        let rawWeight = rawIsDisplay ? 2 : synonymWeight
        names.append(Name(text: label.rawName, weight: rawWeight, primary: rawIsDisplay))
        let camel = camelWords(label.rawName).joined(separator: " ")
        if camel != label.rawName.lowercased() { names.append(Name(text: camel, weight: rawWeight, primary: rawIsDisplay)) }
        var seen = Set<String>()
        return names.filter { seen.insert($0.text.lowercased()).inserted }
    }

    func candidates(named name: Name, text: String, weight: Double, viaHead: Bool) -> [Candidate] {
        var result: [Candidate] = []
        for lemma in database.lemmas(for: text) {
            let offsets = database.offsets(ofLemma: lemma)
            let synsets = offsets.compactMap(database.synset(at:))
            let counts = synsets.map { database.tagCount(lemma: lemma, synset: $0) }
            let total = counts.reduce(0, +)
            for (rank, synset) in synsets.enumerated() {
                result.append(Candidate(offset: synset.offset, name: text, weight: weight, primary: name.primary && !viaHead,
                                        viaHead: viaHead, rank: rank, count: counts[rank], lemma: lemma,
                                        senses: synsets.count, total: total))
            }
        }
        return result
    }

    /// Shorter names inside a longer one: "dense residential area" → "residential area", "area"; for a qualified
    /// phrase the words before the qualifier ("logo on upper-body clothing" → "logo").
    static func headPhrases(_ name: String) -> [String] {
        let words = name.lowercased().replacingOccurrences(of: "-", with: " ").split(separator: " ").map(String.init)
        guard words.count > 1 else { return [] }
        let qualifiers: Set<String> = ["seen", "worn", "held", "holding", "carrying"]
        if let cut = words.indices.dropFirst().first(where: { prepositions.contains(words[$0]) || qualifiers.contains(words[$0]) || words[$0].allSatisfy(\.isNumber) }) {
            let head = Array(words[..<cut])
            return head.indices.map { head[$0...].joined(separator: " ") }
        }
        return (1..<words.count).map { words[$0...].joined(separator: " ") }
    }

    /// The generic noun a qualified display name is about ("person under 16 years old" → person), if it is one.
    static func genericHead(of label: Label, domain: Domain) -> String? {
        let words = label.displayName.lowercased().replacingOccurrences(of: "-", with: " ").split(separator: " ").map(String.init)
        guard words.count > 1 else { return nil }
        let qualifiers: Set<String> = ["seen", "worn", "held", "holding", "carrying", "talking", "pushing", "pulling", "gathering"]
        let cut = words.indices.dropFirst().first { prepositions.contains(words[$0]) || qualifiers.contains(words[$0]) || words[$0].allSatisfy(\.isNumber) }
        let head = cut.map { words[$0 - 1] } ?? words[words.count - 1]
        return domain.generic.contains(head) ? head : nil
    }

    // MARK: - Scores

    struct Scored {
        var candidate: Candidate
        var score: Double
        var agreeing: Set<String>
    }

    /// The label-local score of every candidate synset, in the order first reached.
    func localScores(_ label: Label, domain: Domain, candidates input: [Candidate]) -> [Scored] {
        var candidates = input
        if domain.strict, let head = Self.genericHead(of: label, domain: domain) {
            // An attribute of a generic thing: only a kind of that thing (or, for garments, a part of one) fits.
            let heads = Set(database.lemmas(for: head).flatMap(database.offsets(ofLemma:)))
            let headsAndParents = heads.union(heads.flatMap { database.synset(at: $0)?.hypernymOffsets ?? [] })
            let artifactHead = heads.contains { database.synset(at: $0)?.lexFile == 6 }
            candidates = candidates.filter { candidate in
                guard !heads.contains(candidate.offset) else { return false }
                let ancestors = database.ancestors(of: candidate.offset)
                if ancestors.keys.contains(where: heads.contains) { return true }
                guard artifactHead else { return false }
                return ancestors.keys.contains { ancestor in
                    (database.synset(at: ancestor)?.targets("#p") ?? []).contains { whole in
                        database.ancestors(of: whole).keys.contains(where: headsAndParents.contains)
                    }
                }
            }
        }
        let words = Set(Self.names(of: label).flatMap { Self.letterWords($0.text) })
        let content = Set(words.filter { $0.count >= 4 && !Self.stopWords.contains($0) }.map(Self.stem))
        let genericStems = Set(domain.generic.map(Self.stem))
        // Words of the label that name a kind, other than what its names reach as a whole ("motorcycle | motorbike"
        // does not make the minibike, a kind of motorcycle, named).
        let labelNouns = nouns(in: Self.names(of: label).map(\.text), excluding: domain.generic).subtracting(candidates.map(\.lemma))
        var order: [Int] = []
        var scored: [Int: Scored] = [:]
        for candidate in candidates {
            guard let synset = database.synset(at: candidate.offset), !synset.isInstance,
                  let prior = domain.prior(synset.lexFile),
                  !domain.generic.contains(candidate.lemma.replacingOccurrences(of: "_", with: " "))
            else { continue }
            let share = Double(candidate.count + 1) / Double(candidate.total + candidate.senses)
            var score = candidate.weight + 3 * share + 1 / Double(candidate.rank + 1) + prior
            let gloss = Set(Self.letterWords(Self.firstClause(synset.gloss)).filter { !Self.stopWords.contains($0) }.map(Self.stem))
            let own = Set(Self.letterWords(candidate.name).map(Self.stem))
            score += Double(content.subtracting(own).intersection(gloss).count)
            score += Double(min(2, domain.glossWords.intersection(gloss).count)) * 0.75
            // A pedestrian label names a whole garment or thing, not a part of one ("skirt" the garment, not the part of a dress).
            if domain.strict, !synset.targets("#p").isEmpty { score -= 1 }
            score -= Self.usagePenalty(synset.gloss)
            score += Self.compoundKindsWeight(count: compoundKinds(of: synset, lemma: candidate.lemma))
            if namedKind(of: synset, by: labelNouns, except: candidate.name) { score += Self.namedKindWeight }
            let lemmaWords = Set(Self.letterWords(candidate.lemma.replacingOccurrences(of: "_", with: " ")).map(Self.stem)).subtracting(genericStems)
            score += Double(content.subtracting(own).intersection(lemmaWords).count)
            if var previous = scored[candidate.offset] {
                previous.agreeing.insert(candidate.lemma)
                if score > previous.score { previous.candidate = candidate; previous.score = score }
                scored[candidate.offset] = previous
            } else {
                order.append(candidate.offset)
                scored[candidate.offset] = Scored(candidate: candidate, score: score, agreeing: [candidate.lemma])
            }
        }
        let primaryLemmas = Set(candidates.filter { $0.primary && $0.weight >= 2 }.map(\.lemma))
        // Another of the label's names that reaches a kind of a sense agrees with it ("running | jogging": jogging is
        // a kind of the act of running, not of the football play).
        let byName = Dictionary(grouping: candidates, by: \.name)
        return order.map { offset in
            var entry = scored[offset]!
            entry.score += 2 * Double(entry.agreeing.count - 1)
            if byName.contains(where: { name, reached in
                name != entry.candidate.name && reached.contains { other in
                    other.offset != offset && (database.ancestors(of: other.offset)[offset].map { $0 <= 2 } ?? false)
                }
            }) {
                entry.score += 1
            }
            if !primaryLemmas.isEmpty, entry.agreeing.isDisjoint(with: primaryLemmas) { entry.score -= 1 }
            return entry
        }
    }

    /// How many direct kinds of `synset` WordNet names with a compound ending in `lemma` ("cheesecake", "birthday cake",
    /// "cupcake" under the baked good; none under the block of soap): the sense in which a word makes compounds is
    /// the one people use it in.
    func compoundKinds(of synset: WordNetDatabase.Synset, lemma: String) -> Int {
        // Written together, whatever the joints: "birthday_cake", "cup-cake" and "cupcake" all end in "cake".
        func joined(_ word: String) -> String {
            word.lowercased().replacingOccurrences(of: "_", with: "").replacingOccurrences(of: "-", with: "")
        }
        let key = joined(lemma)
        guard key.count >= 3 else { return 0 }
        return synset.targets("~").reduce(0) { count, offset in
            guard let kind = database.synset(at: offset) else { return count }
            let compound = kind.words.contains { word in
                let name = joined(word.word)
                return name != key && name.hasSuffix(key)
            }
            return count + (compound ? 1 : 0)
        }
    }

    /// What a sense gains when the label itself names its kind.
    static let namedKindWeight = 3.0

    /// The nouns among a label's words, as WordNet lemmas ("thin stripes" → thin, stripe), leaving out the domain's
    /// generic words.
    func nouns(in names: [String], excluding generic: Set<String>) -> Set<String> {
        var result = Set<String>()
        for word in names.flatMap(Self.letterWords) where word.count >= 3 && !Self.stopWords.contains(word) && !generic.contains(word) {
            for lemma in database.lemmas(for: word) where !generic.contains(lemma) { result.insert(lemma) }
        }
        return result
    }

    /// Whether the label names the kind `synset` is (one of its hypernyms up to two steps up), with a word other than
    /// those of the name that reached it: "thin stripes | pinstripes" speaks of stripes, so the pinstripe that is a
    /// kind of stripe, not the pinstripe suit.
    func namedKind(of synset: WordNetDatabase.Synset, by labelNouns: Set<String>, except name: String) -> Bool {
        let own = nouns(in: [name], excluding: [])
        let kinds = labelNouns.subtracting(own)
        guard !kinds.isEmpty else { return false }
        return database.ancestors(of: synset.offset).contains { offset, distance in
            guard distance >= 1, distance <= 2, let ancestor = database.synset(at: offset) else { return false }
            return ancestor.words.contains { kinds.contains($0.word.lowercased()) }
        }
    }

    /// What `count` compound kinds add to a sense: half a point per doubling, at most 2.5 (20 kinds or more).
    static func compoundKindsWeight(count: Int) -> Double {
        min(2.5, 0.5 * log2(1 + Double(count)))
    }

    /// How much another label's sense `other` supports `offset` as this label's sense.
    func support(_ offset: Int, by other: Int) -> Double {
        guard offset != other else { return 0 }
        let otherAncestors = database.ancestors(of: other)
        if let distance = otherAncestors[offset], distance <= 4 { return 2 }  // the other label is a kind of this sense
        let ancestors = database.ancestors(of: offset)
        if ancestors[other] != nil { return 0 }  // this sense is a kind of the other label's: no support
        var best = 0.0
        for (ancestor, distance) in ancestors where distance <= 4 {
            guard let otherDistance = otherAncestors[ancestor], otherDistance <= 4 else { continue }
            let size = database.subtreeSize(of: ancestor)
            best = max(best, size <= 100 ? 1 : size <= 400 ? 0.75 : size <= 1500 ? 0.4 : 0)
        }
        return best
    }

    // MARK: - Picking

    /// The sense of every label of `labels` (keyed by raw name; nil: no knowledge) in `domain`.
    public func pick(_ labels: [Label], domain: Domain) -> [String: Choice] {
        var local: [[Scored]] = []
        var viaHead: [Bool] = []
        for label in labels {
            let names = Self.names(of: label)
            var candidates = names.flatMap { self.candidates(named: $0, text: $0.text, weight: $0.weight, viaHead: false) }
            var head = false
            if candidates.isEmpty, label.displayName.split(separator: " ").count <= 6 {
                head = true
                search: for name in names {
                    for phrase in Self.headPhrases(name.text) where !domain.generic.contains(phrase) {
                        candidates += self.candidates(named: name, text: phrase, weight: name.weight - 1.5, viaHead: true)
                        if !candidates.isEmpty { break search }
                    }
                }
            }
            local.append(localScores(label, domain: domain, candidates: candidates))
            viaHead.append(head)
        }
        let first = local.map { scores in scores.max(by: { $0.score < $1.score }).map(\.candidate.offset) }
        var chosen: [Scored?] = []
        for (index, scores) in local.enumerated() {
            let others = first.enumerated().compactMap { $0.offset == index ? nil : $0.element }
            var best: (Scored, Double)?
            for entry in scores {
                let coherence = min(SensePicker.coherenceCap, others.reduce(0) { $0 + support(entry.candidate.offset, by: $1) })
                let total = entry.score + coherence
                if best == nil || total > best!.1 { best = (entry, total) }
            }
            chosen.append(best.map { var entry = $0.0; entry.score = $0.1; return entry })
        }
        // A head noun that lands on another label's own sense says nothing of what sets this label apart, unless
        // its gloss names the label's modifier (leather shoes → a shoe "with a flexible upper of leather").
        let direct = Set(zip(chosen, viaHead).compactMap { $1 ? nil : $0?.candidate.offset })
        var result: [String: Choice] = [:]
        for (index, label) in labels.enumerated() {
            guard let entry = chosen[index], let synset = database.synset(at: entry.candidate.offset) else { continue }
            if viaHead[index], direct.contains(synset.offset) {
                let modifiers = Set(Self.names(of: label).flatMap { Self.letterWords($0.text) }.filter { $0.count >= 4 }.map(Self.stem))
                    .subtracting(Self.letterWords(entry.candidate.name).map(Self.stem))
                let gloss = Set(Self.letterWords(Self.firstClause(synset.gloss)).map(Self.stem))
                if modifiers.isDisjoint(with: gloss) { continue }
            }
            result[label.rawName] = Choice(synset: synset, matchedName: entry.candidate.name, lemma: entry.candidate.lemma,
                                           viaHeadNoun: viaHead[index], score: entry.score)
        }
        return result
    }

    /// What a gloss itself says against a sense as the name of what an image shows: WordNet marks it as used as a
    /// modifier ("toy": a nonfunctional replica, "frequently used as a modifier"), as a picture of the thing rather than the thing ("painting depicting a city"), or as an
    /// organization ("railroad": the company that runs the trains), none of which a camera sees.
    static func usagePenalty(_ gloss: String) -> Double {
        let lower = gloss.lowercased()
        let first = firstClause(lower)
        var penalty = 0.0
        if lower.contains("used as a modifier") || lower.contains("used in combination") { penalty += 2 }
        let words = letterWords(first)
        if let head = words.first(where: { !stopWords.contains($0) }),
           ["painting", "picture", "drawing", "photograph", "depiction", "representation"].contains(head),
           words.contains(where: { $0 == "depicting" || $0 == "of" || $0 == "showing" }) {
            penalty += 5
        }
        if words.contains(where: { ["organization", "organisation", "company", "enterprise", "institution"].contains($0) }) { penalty += 2.5 }
        return penalty
    }

    // MARK: - Words

    static func stem(_ word: String) -> String { String(word.prefix(5)) }

    static func letterWords(_ text: String) -> [String] {
        text.lowercased().split { !("a"..."z").contains($0) }.map(String.init)
    }

    static func firstClause(_ gloss: String) -> String {
        String(gloss.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
    }

    /// Words of a raw name as a dataset writes them: `upperBodyLogo` → upper body logo, `SSBag` → ss bag, `Age18-60`
    /// → age 18 60.
    static func camelWords(_ text: String) -> [String] {
        var words: [String] = []
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c.isNumber {
                var j = i
                while j < chars.count, chars[j].isNumber { j += 1 }
                words.append(String(chars[i..<j])); i = j
            } else if c.isUppercase {
                var j = i
                while j < chars.count, chars[j].isUppercase { j += 1 }
                if j < chars.count, chars[j].isLowercase, j - i > 1 {
                    words.append(String(chars[i..<(j - 1)]).lowercased()); i = j - 1  // "SSBag": "SS", then "Bag"
                } else if j < chars.count, chars[j].isLowercase {
                    var k = j
                    while k < chars.count, chars[k].isLowercase { k += 1 }
                    words.append(String(chars[i..<k]).lowercased()); i = k
                } else {
                    words.append(String(chars[i..<j]).lowercased()); i = j
                }
            } else if c.isLowercase {
                var j = i
                while j < chars.count, chars[j].isLowercase { j += 1 }
                words.append(String(chars[i..<j])); i = j
            } else {
                i += 1
            }
        }
        return words
    }
}
