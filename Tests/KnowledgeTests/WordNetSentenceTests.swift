import Foundation
import GRDB
import Testing
@testable import Knowledge
import TestSupport

/// The sentence rules, checked on every description of the committed knowledge.db (built from WordNet by the README
/// command; a CLI test keeps it equal to what the code builds).
@Suite("WordNet sentences a person would write", .enabled(if: wordnetAvailable, "wordnet-base is not installed (apt-get install wordnet-base)"))
struct WordNetSentenceTests {
    struct Row {
        var labelSet: String
        var label: String
        var text: String
    }

    static func committedDescriptions() throws -> [Row] {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: Repo.path("knowledge.db"), configuration: configuration)
        return try queue.read { db in
            try GRDB.Row.fetchAll(db, sql: "SELECT label_set, label, description FROM descriptions_view").map {
                Row(labelSet: $0["label_set"], label: $0["label"], text: $0["description"])
            }
        }
    }

    @Test func everyDescriptionIsOneWholeShortSentence() throws {
        let rows = try Self.committedDescriptions()
        #expect(rows.count > 1000)
        var bad: [String] = []
        for row in rows {
            let t = row.text
            let words = t.split(separator: " ").count
            if t.contains("…") || t.contains("...") || t.hasSuffix("..") { bad.append("cut: \(t)") }
            if t.contains("\"") || t.contains("`") { bad.append("quote: \(t)") }
            if !t.hasSuffix(".") || t.first?.isUppercase != true { bad.append("not a sentence: \(t)") }
            if words > WordNetSentences.maxWords { bad.append("too long (\(words) words): \(t)") }
        }
        #expect(bad.isEmpty, "\(bad.count) bad descriptions:\n\(bad.prefix(40).joined(separator: "\n"))")
    }

    @Test func grammarAgreesAndNothingDefinesItself() throws {
        let rows = try Self.committedDescriptions()
        let superlatives = ["largest", "tallest", "smallest", "biggest", "highest", "longest", "oldest", "greatest", "fastest", "heaviest"]
        let determiners = ["a", "an", "the", "two", "three", "one", "some", "any"]
        let massNouns: Set = ["clothing", "footwear", "headwear", "furniture", "equipment", "luggage", "baggage", "jewelry",
                              "jewellery", "vegetation", "scenery", "traffic", "clothes"]
        var bad: [String] = []
        for row in rows {
            let t = row.text
            let lower = " " + t.lowercased() + " "
            // "A bird are …": a subject with an article takes "is"/"has".
            if t.hasPrefix("A ") || t.hasPrefix("An ") {
                let verbs = [" is ", " are ", " has ", " have ", " consists "]
                let first = verbs.compactMap { v in lower.range(of: v).map { ($0.lowerBound, v) } }.min { $0.0 < $1.0 }?.1
                if first == " are " || first == " have " { bad.append("agreement: \(t)") }
            }
            for s in superlatives where lower.contains(" a \(s) ") || lower.contains(" an \(s) ") { bad.append("a superlative: \(t)") }
            // "A striped upper-body clothing is …": a mass noun takes no article.
            if t.hasPrefix("A ") || t.hasPrefix("An "), let verb = lower.range(of: " is ") ?? lower.range(of: " has "),
               let head = lower[..<verb.lowerBound].split(separator: " ").last, massNouns.contains(String(head)) {
                bad.append("an article before a mass noun: \(t)")
            }
            // "an usually paved area", "a apple": the article follows the sound.
            let tokens = lower.split(separator: " ").map(String.init)
            for (article, next) in zip(tokens, tokens.dropFirst()) {
                guard let c = next.first else { continue }
                if article == "an", "bcdfgjklmnpqrstvwxyz".contains(c) || next.hasPrefix("usu") || next.hasPrefix("uni") { bad.append("an + consonant sound: \(t)") }
                if article == "a", "aio".contains(c), !next.hasPrefix("one") { bad.append("a + vowel: \(t)") }
            }
            for a in ["a", "an"] { for d in determiners where lower.contains(" \(a) \(d) ") { bad.append("doubled determiner: \(t)") } }
            // "A keyboard is a keyboard …"
            for verb in [" is ", " are "] {
                guard let range = lower.range(of: verb) else { continue }
                let subject = lower[..<range.lowerBound].split(separator: " ").filter { !["a", "an", "the"].contains($0) }.joined(separator: " ")
                let predicate = lower[range.upperBound...].split(separator: " ").prefix(while: { !["that", "which", "who", "of", "with", "for", "used"].contains($0) })
                    .filter { !["a", "an", "the"].contains($0) }.joined(separator: " ")
                if !subject.isEmpty, subject == predicate { bad.append("self-definition: \(t)") }
                break
            }
        }
        #expect(bad.isEmpty, "\(bad.count) bad descriptions:\n\(bad.prefix(40).joined(separator: "\n"))")
    }

    @Test func aDisplayNameAboutAnotherKindGivesWayToTheSynonym() throws {
        // "thin-striped upper-body clothing | pinstripes": WordNet's sense is the thin stripe, so the sentences are
        // about a pinstripe, not "a thin-striped upper-body clothing".
        let rows = try Self.committedDescriptions()
        let stripes = rows.filter { $0.labelSet == "peta" && $0.label == "upperBodyThinStripes" }.map(\.text)
        #expect(!stripes.isEmpty && stripes.allSatisfy { !$0.contains("clothing is") }, "\(stripes)")
        #expect(stripes.contains { $0.hasPrefix("A pinstripe is a very thin stripe") }, "\(stripes)")
        // A display name whose generic head is a kind above the sense keeps it: an old person is a person.
        let old = rows.filter { $0.labelSet == "peta" && $0.label == "personalLarger60" }.map(\.text)
        #expect(old.contains { $0.hasPrefix("A person over 60 years old ") }, "\(old)")
    }

    @Test func noDescriptionListsOtherLabelsOfItsSet() throws {
        let rows = try Self.committedDescriptions()
        var names: [String: [String: Set<String>]] = [:]  // set → label → its names
        for file in try FileManager.default.contentsOfDirectory(atPath: Repo.path("labels")) where file.hasSuffix(".txt") {
            let set = try LabelFile.load(Repo.path("labels/\(file)"))
            names[set.name] = Dictionary(uniqueKeysWithValues: set.labels.map { ($0.rawName, Set($0.allNames.map { $0.lowercased() })) })
        }
        var bad: [String] = []
        for row in rows {
            guard let labels = names[row.labelSet], let own = labels[row.label] else { continue }
            // Lists, not definitions: "a beach is an area of sand sloping down to the water of a sea" relates, and stays.
            guard [" include ", " similar to ", " are parts of ", " is a part of ", " also called ", " often seen in "].contains(where: row.text.contains) else { continue }
            // The listed items, whole: "beach wagon" is not the label "beach".
            let items = Self.listItems(row.text)
            let others = labels.filter { $0.key != row.label }.filter { other in
                other.value.contains { name in !own.contains(name) && items.contains { $0 == name || $0 == name + "s" || $0 + "s" == name } }
            }
            if !others.isEmpty { bad.append("\(row.labelSet)/\(row.label) lists \(others.keys.sorted()): \(row.text)") }
        }
        #expect(bad.isEmpty, "\(bad.count) descriptions list other labels:\n\(bad.prefix(30).joined(separator: "\n"))")
    }

    /// The items of a list sentence ("Common kinds of X include a, b and c.", "The a and b are parts of X.").
    static func listItems(_ sentence: String) -> [String] {
        let text = sentence.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        var list = ""
        for marker in [" include ", " also called ", " often seen in ", " part of "] {
            if let range = text.range(of: marker) { list = String(text[range.upperBound...]); break }
        }
        for verb in [" are parts of ", " is a part of "] {
            if let range = text.range(of: verb) { list = String(text[..<range.lowerBound]); break }
        }
        return list.replacingOccurrences(of: " and ", with: ", ").replacingOccurrences(of: " or ", with: ", ")
            .split(separator: ",").map { item in
                item.split(separator: " ").filter { !["a", "an", "the"].contains($0) }.joined(separator: " ")
            }.filter { !$0.isEmpty }
    }

    @Test func noTermWordNetMarksOffensiveIsEverWritten() throws {
        let database = try WordNetDatabase(directory: wordnetDirectory)
        let writer = WordNetSentences(database: database)
        #expect(writer.offensiveDomains.count >= 4, "the usage domains (ethnic slur, disparagement, obscenity, profanity) were not found")
        // Words every noun sense of which WordNet marks as offensive.
        var offensive = Set<String>()
        for domain in writer.offensiveDomains {
            for member in database.synset(at: domain)?.targets("-u") ?? [] {
                for word in database.synset(at: member)?.words.map(\.word) ?? [] {
                    let senses = database.lemmas(for: word).filter { $0 == WordNetDatabase.key(word) }.flatMap(database.offsets(ofLemma:))
                    if !senses.isEmpty, senses.allSatisfy({ database.synset(at: $0).map(writer.isOffensive) ?? false }) {
                        offensive.insert(word.lowercased())
                    }
                }
            }
        }
        #expect(offensive.count > 50)
        var bad: [String] = []
        for row in try Self.committedDescriptions() {
            let text = " " + row.text.lowercased().replacingOccurrences(of: ",", with: " ").replacingOccurrences(of: ".", with: " ") + " "
            for word in offensive where text.contains(" \(word) ") { bad.append("\(row.labelSet)/\(row.label): '\(word)' in \(row.text)") }
        }
        #expect(bad.isEmpty, "\(bad.joined(separator: "\n"))")
        // Kinds of people are never listed ("Kinds of woman include …").
        let woman = try #require(WordNetKnowledge(database: database).sense(for: Label(rawName: "woman"), domain: "pedestrian surveillance images"))
        let sentences = WordNetKnowledge(database: database).describe(Label(rawName: "woman"), sense: woman, count: 10)
        #expect(!sentences.isEmpty && !sentences.contains { $0.lowercased().contains("kinds of") }, "\(sentences)")
    }
}
