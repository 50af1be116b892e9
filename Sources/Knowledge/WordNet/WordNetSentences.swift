import Foundation

/// Turns a WordNet sense into sentences a person would write about how the thing looks: its definition split into
/// whole sentences (never cut mid-sentence, never ended with "…"), what it is a kind of, its visible parts, what it
/// is made of, the group it is seen in, common kinds of it and its other names.
///
/// Number agrees ("Birds are warm-blooded egg-laying vertebrates…", "Scissors are an edge tool…", "Grass is…"), a
/// superlative takes "the", nothing defines itself, quotes and WordNet's examples and usage notes are dropped, taxa
/// and other labels of the same set are never listed, kinds of people are never listed, and no word whose sense
/// WordNet marks as an ethnic slur, disparaging, obscene or profane is ever written.
struct WordNetSentences {
    let database: WordNetDatabase
    /// Usage-domain synsets (`;u` pointers) that mark a term as offensive.
    let offensiveDomains: Set<Int>

    init(database: WordNetDatabase) {
        self.database = database
        var domains = Set<Int>()
        for lemma in ["ethnic_slur", "disparagement", "obscenity", "profanity", "dysphemism"] {
            for offset in database.offsets(ofLemma: lemma) where database.synset(at: offset)?.lexFile == 10 { domains.insert(offset) }
        }
        offensiveDomains = domains
    }

    /// At most this many words a sentence: well inside CLIP's 77 tokens.
    static let maxWords = 40

    /// Whether WordNet marks the sense as offensive (a usage domain, or its gloss says so).
    func isOffensive(_ synset: WordNetDatabase.Synset) -> Bool {
        if synset.targets(";u").contains(where: offensiveDomains.contains) { return true }
        let gloss = synset.gloss.lowercased()
        return ["ethnic slur", "offensive", "disparaging", "derogatory", "obscene", "vulgar"].contains { gloss.contains($0) }
    }

    /// Whether the sense is a kind of person.
    func isPerson(_ synset: WordNetDatabase.Synset) -> Bool {
        synset.lexFile == 18 || database.lemmas(for: "person").flatMap(database.offsets(ofLemma:)).contains { database.ancestors(of: synset.offset)[$0] != nil }
    }

    /// The sentences about `label` under `sense`, at most `count`, most useful first. `others` are the other
    /// labels of the set, never listed in a sentence.
    func sentences(for label: Label, sense: SensePicker.Choice, others: [Label], count: Int) -> [String] {
        let synset = sense.synset
        guard !isOffensive(synset) else { return [] }
        let subject = Subject(label: label, sense: sense, database: database)
        let excluded = Set(others.flatMap { [$0.displayName.lowercased(), $0.rawName.lowercased()] + $0.synonyms.map { $0.lowercased() } })
            .union([label.displayName.lowercased(), subject.singular.lowercased()])
        var out: [String] = []
        func add(_ sentence: String?) {
            guard let sentence, !out.contains(sentence), Self.wordCount(sentence) <= Self.maxWords,
                  !sentence.contains("\""), !sentence.contains("`") else { return }
            out.append(sentence)
        }
        func name(_ s: WordNetDatabase.Synset) -> String? {
            guard !isOffensive(s) else { return nil }
            let word = s.words[0].word
            guard word.first?.isLowercase == true, !excluded.contains(word.lowercased()) else { return nil }  // no taxa, no other labels
            return word
        }

        // The definition, one sentence per clause.
        for sentence in definitionSentences(synset, subject: subject) { add(sentence) }
        // What it is a kind of.
        let hypernyms = synset.hypernymOffsets.compactMap(database.synset(at:))
        if let kind = hypernyms.first.flatMap(name) {
            add("\(subject.capitalized) \(subject.be) a kind of \(kind).")
        }
        // Visible parts, inherited from up to two hypernym levels when the sense itself lists none.
        var parts = synset.targets("%p").compactMap(database.synset(at:))
        var level = hypernyms
        for _ in 0..<2 where parts.isEmpty {
            parts = level.flatMap { $0.targets("%p") }.compactMap(database.synset(at:))
            level = level.flatMap(\.hypernymOffsets).compactMap(database.synset(at:))
        }
        let physical = parts.filter { Self.physicalLexFiles.contains($0.lexFile) && !Self.isInternal($0) }
        let common = physical.filter(isCommon)
        let visibleParts = (common.isEmpty ? physical : common).compactMap(name).prefix(4).map { $0 }
        if !visibleParts.isEmpty {
            let verb = visibleParts.count == 1 ? "is a part" : "are parts"
            add("The \(Self.list(visibleParts)) \(verb) of \(subject.withArticle).")
        }
        // What it is made of.
        let substances = synset.targets("%s").compactMap(database.synset(at:)).compactMap(name).prefix(3).map { $0 }
        if !substances.isEmpty { add("\(subject.capitalized) \(subject.be) made of \(Self.list(substances)).") }
        // The group it is seen in (a flock, a herd), never a taxon.
        let groups = isPerson(synset) ? [] : synset.targets("#m").compactMap(database.synset(at:)).filter { $0.lexFile == 14 }
            .compactMap(name).filter { !$0.hasSuffix("s") && $0 != "people" }.prefix(2).map { $0 }
        if !groups.isEmpty { add("\(subject.capitalized) \(subject.be) often seen in \(Self.list(groups.map { Self.article($0) + " " + $0 }, joiner: "or")).") }
        // What it is part of.
        let wholes = synset.targets("#p").compactMap(database.synset(at:)).compactMap(name).prefix(3).map { $0 }
        if !wholes.isEmpty { add("\(subject.capitalized) \(subject.be) part of \(Self.list(wholes.map { Self.article($0) + " " + $0 }, joiner: "or")).") }
        // Common kinds of it (tagged in the concordances), never kinds of people.
        if !isPerson(synset) {
            let kinds = synset.targets("~").compactMap(database.synset(at:)).filter(isCommon)
                .compactMap(name).prefix(3).map { $0 }
            if !kinds.isEmpty { add("Common kinds of \(subject.pluralPhrase) include \(Self.list(kinds)).") }
        }
        // Other names for the same thing.
        let ownForms = Set(database.lemmas(for: subject.singular) + database.lemmas(for: label.displayName) + [WordNetDatabase.key(subject.singular)])
        let otherNames = synset.words.map(\.word).filter {
            $0.first?.isLowercase == true && !excluded.contains($0.lowercased()) && !ownForms.contains(WordNetDatabase.key($0))
        }
        if !otherNames.isEmpty {
            add("\(subject.capitalized) \(subject.be) also called \(Self.list(otherNames.prefix(3).map { $0 }, joiner: "or")).")
        }
        return Array(out.prefix(count))
    }

    /// The gloss's definition clauses as sentences about `subject`; examples, usage notes and quotes dropped.
    func definitionSentences(_ synset: WordNetDatabase.Synset, subject: Subject) -> [String] {
        let clauses = synset.gloss.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        var sentences: [String] = []
        for (index, raw) in clauses.enumerated() {
            var clause = raw
            // A usage note after a colon (`female of domestic cattle: "moo-cow" is a child's term`) goes.
            if let colon = clause.range(of: ": "), clause[colon.upperBound...].contains(where: { $0 == "'" || $0 == "\"" || $0 == "`" }) {
                clause = String(clause[..<colon.lowerBound])
            }
            for note in ["(usually in the plural) ", "(usually plural) ", "(plural) "] { clause = clause.replacingOccurrences(of: note, with: "") }
            clause = clause.replacingOccurrences(of: ": ", with: ", ")
            // What is left with quotes is one of WordNet's examples, not a description.
            while clause.hasSuffix(".") { clause.removeLast() }  // "… or railway etc." ends with our own period
            guard !clause.isEmpty, !clause.contains("\""), !clause.contains("`") else { continue }
            let sentence = index == 0 ? definition(clause, subject: subject) : followUp(clause, subject: subject)
            if let sentence { sentences.append(sentence) }
        }
        return sentences
    }

    /// "A giraffe is the tallest living quadruped.", "Birds are warm-blooded egg-laying vertebrates …", "Grass is …"
    func definition(_ clause: String, subject: Subject) -> String? {
        var text = clause
        let words = text.split(separator: " ").map(String.init)
        guard let first = words.first?.lowercased() else { return nil }
        // "any of various X" → "X": the plural head carries the meaning.
        for prefix in ["any of several ", "any of various ", "any of numerous ", "any of a number of ", "any of the ", "any of "] where text.lowercased().hasPrefix(prefix) {
            text = String(text.dropFirst(prefix.count))
            return "\(subject.pluralCapitalized) are \(text)."
        }
        // Self-definition: "a keyboard that is a data input device…" → "a data input device…".
        let selfPattern = "\(Self.article(subject.head)) \(subject.head) that is "
        if text.lowercased().hasPrefix(selfPattern) { text = String(text.dropFirst(selfPattern.count)) }
        if let head = definitionHead(text), head.lowercased() == subject.singular.lowercased() {
            return nil  // "A keyboard is a keyboard …" says nothing
        }
        if ["a", "an"].contains(first) || Self.determiners.contains(first) || first.first?.isNumber == true {
            return "\(subject.capitalized) \(subject.be) \(text)."
        }
        if first.hasSuffix("est"), first.count > 4 {  // a superlative: "the tallest living quadruped"
            return "\(subject.capitalized) \(subject.be) the \(text)."
        }
        if let head = definitionHead(text), database.isPlural(head) {
            if subject.isMass { return "\(subject.capitalized) consists of \(text)." }
            return "\(Subject.capitalize(subject.isPluralOrMass ? subject.singular : subject.plural)) are \(text)."
        }
        if subject.isMass { return "\(subject.capitalized) \(subject.be) \(text)." }
        if subject.isPluralOrMass { return "\(subject.capitalized) \(subject.be) \(Self.article(text)) \(text)." }
        // A singular countable definition without a determiner: add the article.
        return "\(subject.capitalized) is \(Self.article(text)) \(text)."
    }

    /// A later clause of the gloss: "having a spotted coat …" → "A giraffe has a spotted coat …".
    func followUp(_ clause: String, subject: Subject) -> String? {
        let words = clause.split(separator: " ").map(String.init)
        guard let first = words.first?.lowercased() else { return nil }
        let rest = words.dropFirst().joined(separator: " ")
        switch first {
        case "having": return "\(subject.capitalized) \(subject.have) \(rest)."
        case "of": return "\(subject.capitalized) \(subject.be) found in \(rest)."
        case "used", "usually", "often", "especially", "found", "sometimes", "typically", "made", "worn", "grown", "covered":
            return "\(subject.capitalized) \(subject.be) \(clause)."
        default:
            // A bare noun phrase or a sentence fragment of unclear grammar: leave it out rather than guess.
            return nil
        }
    }

    /// The head noun of a definition's first noun phrase ("warm-blooded egg-laying vertebrates characterized by…"
    /// → vertebrates).
    func definitionHead(_ text: String) -> String? {
        let breaks: Set<String> = ["that", "which", "who", "with", "of", "for", "in", "on", "having", "used", "characterized",
                                   "consisting", "made", "where", "when", "to", "by", "from", "as", "especially", "usually",
                                   "often", "typically", "and", "or", "resembling", "shaped", "containing", "designed"]
        var head: String?
        for token in text.split(separator: " ") {
            let word = token.lowercased().trimmingCharacters(in: CharacterSet.letters.inverted)
            if breaks.contains(word) || token.hasPrefix("(") { break }
            if !word.isEmpty { head = word }
            if token.hasSuffix(",") || token.hasSuffix(":") { break }
        }
        return head
    }

    static let determiners: Set<String> = ["the", "any", "one", "two", "some", "each", "either", "several", "many", "all", "this", "that"]

    /// Lexicographer files of things with a body: animals, artifacts, the body, food, objects, plants, substances.
    static let physicalLexFiles: Set<Int> = [5, 6, 8, 13, 17, 20, 27]

    /// Tagged at least once in the semantic concordances: a word people actually use.
    func isCommon(_ synset: WordNetDatabase.Synset) -> Bool {
        synset.words.contains { database.tagCount(lemma: $0.word.replacingOccurrences(of: " ", with: "_"), synset: synset) > 0 }
    }

    /// Parts no camera sees: organs and inner structures.
    static func isInternal(_ synset: WordNetDatabase.Synset) -> Bool {
        let gloss = synset.gloss.lowercased()
        return ["internal", "stomach", "compartment", "gland", "bone", "skeleton", "cavity", "organ ", "tissue", "vein",
                "artery", "nerve", "muscle", "duct", "intestine", "marrow", "cartilage", "ligament", "membrane", "inside"].contains { gloss.contains($0) }
    }

    static func wordCount(_ text: String) -> Int { text.split(separator: " ").count }

    /// "a" or "an" by sound, not spelling: "a usually paved area", "a unicorn", "a one-piece garment", "an hour".
    static func article(_ word: String) -> String {
        let w = word.lowercased()
        guard let first = w.first else { return "a" }
        if ["uni", "use", "usu", "uti", "ure", "uri", "eu", "one", "once", "ubi"].contains(where: w.hasPrefix) { return "a" }
        if ["hour", "honest", "honor", "honour", "heir"].contains(where: w.hasPrefix) { return "an" }
        return "aeiou".contains(first) ? "an" : "a"
    }

    static func list(_ items: [String], joiner: String = "and") -> String {
        switch items.count {
        case 0: return ""
        case 1: return items[0]
        default: return items.dropLast().joined(separator: ", ") + " \(joiner) " + items[items.count - 1]
        }
    }

    /// How to speak of the label: "a bird" / "birds", "scissors", "grass".
    struct Subject {
        /// The singular name ("bird" for the label "birds").
        var singular: String
        /// Its last word, the head noun.
        var head: String
        /// "scissors", "jeans": plural in form, no article.
        var isPluralOrMass: Bool
        /// "grass", "water": no article, no plural.
        var isMass: Bool
        var plural: String

        init(label: Label, sense: SensePicker.Choice, database: WordNetDatabase) {
            let display = sense.viaHeadNoun || Self.namesAnotherKind(label, sense: sense, database: database) ? sense.matchedName : label.displayName
            let lower = display.lowercased()
            let usuallyPlural = ["(usually plural)", "(usually in the plural)", "(plural)"].contains(where: sense.synset.gloss.contains)
            // A plural display name ("whales") speaks of one whale; pluralia tantum ("scissors", "jeans") stay.
            var singular = display
            if !usuallyPlural, WordNetDatabase.key(display) != sense.lemma, database.lemmas(for: display).contains(sense.lemma) {
                singular = sense.lemma.replacingOccurrences(of: "_", with: " ")
            } else if !usuallyPlural, !sense.synset.words.contains(where: { $0.word.lowercased() == lower }),
                      let last = display.split(separator: " ").last.map(String.init),
                      let base = database.lemmas(for: last).first(where: { $0 != last.lowercased() && !$0.contains("_") }),
                      last.lowercased().hasSuffix("s"), !base.hasSuffix("s") {
                // A regular plural the sense does not spell that way ("sports shoes" for the sneaker): one of them.
                singular = (display.split(separator: " ").dropLast().map(String.init) + [base]).joined(separator: " ")
            }
            self.singular = singular
            head = String(singular.split(separator: " ").last ?? Substring(singular)).lowercased()
            let pluraleTantum = lower.hasSuffix("s") && !lower.hasSuffix("ss") && !lower.hasSuffix("us") && !lower.hasSuffix("is")
                && singular == display
            // Substances, and foods and plants defined without an article ("narrow-leaved green herbage"), are mass nouns.
            let definition = sense.synset.definition.lowercased()
            let startsCountable = ["a ", "an ", "one ", "two ", "any "].contains(where: definition.hasPrefix)
            isMass = !pluraleTantum && (sense.synset.lexFile == 27 || ([13, 19, 20].contains(sense.synset.lexFile) && !startsCountable
                && !(definition.split(separator: " ").first.map { String($0).hasSuffix("s") } ?? false)
                && !definition.hasPrefix("the "))) || (!pluraleTantum && definition.hasPrefix("the ") && sense.synset.lexFile != 6)
            isPluralOrMass = pluraleTantum || isMass
            plural = isPluralOrMass ? singular : Self.pluralize(singular, database: database)
        }

        /// Whether the display name is about something other than the sense its synonym reached: its head is a
        /// generic word for a thing or a garment ("thin-striped upper-body clothing", "short-sleeved top", "patterned
        /// item") that names neither the sense nor a kind above it, so "A thin-striped upper-body clothing is a very
        /// thin stripe" would be neither English nor true. The synonym that reached the sense ("pinstripes") is then
        /// what the sentences are about. The generic words of aerial images are left out: "industrial area" is the
        /// works WordNet describes, seen from above, and a better name for it than "works".
        static func namesAnotherKind(_ label: Label, sense: SensePicker.Choice, database: WordNetDatabase) -> Bool {
            guard sense.matchedName.lowercased() != label.displayName.lowercased(),
                  let head = [SensePicker.Domain.natural, .pedestrian].lazy.compactMap({ SensePicker.genericHead(of: label, domain: $0) }).first
            else { return false }
            let ancestors = database.ancestors(of: sense.synset.offset)
            return !database.lemmas(for: head).flatMap(database.offsets(ofLemma:)).contains { ancestors[$0] != nil }
        }

        var withArticle: String { isPluralOrMass ? singular : WordNetSentences.article(singular) + " " + singular }
        var capitalized: String { Self.capitalize(withArticle) }
        var pluralCapitalized: String { Self.capitalize(plural) }
        var pluralPhrase: String { plural }
        var be: String { isPluralOrMass && isPluralForm ? "are" : "is" }
        var have: String { isPluralOrMass && isPluralForm ? "have" : "has" }
        var isPluralForm: Bool { singular.lowercased().hasSuffix("s") && !singular.lowercased().hasSuffix("ss") }

        static func capitalize(_ text: String) -> String {
            guard let first = text.first else { return text }
            return first.uppercased() + text.dropFirst()
        }

        /// English plural of the last word ("wine glass" → "wine glasses", "mouse" → "mice" from noun.exc).
        static func pluralize(_ phrase: String, database: WordNetDatabase) -> String {
            var words = phrase.split(separator: " ").map(String.init)
            guard let last = words.popLast() else { return phrase }
            let plural: String
            if let irregular = database.irregularPlural(of: last.lowercased()) {
                plural = irregular
            } else if ["s", "x", "z", "ch", "sh"].contains(where: last.hasSuffix) {
                plural = last + "es"
            } else if last.hasSuffix("y"), let before = last.dropLast().last, !"aeiou".contains(before) {
                plural = last.dropLast() + "ies"
            } else {
                plural = last + "s"
            }
            return (words + [plural]).joined(separator: " ")
        }
    }
}
