import Foundation

extension WordNetDatabase {
    /// Content words WordNet relates to a label, lower-case and stemmed as `ResponseParser.stem` does: the words of
    /// every noun sense of each of its names (and of a compound's head noun), of their hypernyms, hyponyms, parts,
    /// members and substances, and of what they are parts or members of. The off-topic check accepts an answer that
    /// uses any of them ("a puppy…" for dog, "the fuselage…" for airplane).
    public func relatedWords(for label: Label) -> Set<String> {
        var offsets: [Int] = []
        for name in label.allNames + ResponseParser.splitCamelCase(label.rawName).suffix(1) {
            let words = ResponseParser.wordsOf(name)
            var lemmas = lemmas(for: name)
            if let head = words.last, words.count > 1 { lemmas += self.lemmas(for: head) }
            for lemma in lemmas { offsets += self.offsets(ofLemma: lemma) }
        }
        let symbols: Set<String> = ["@", "@i", "~", "~i", "%p", "%m", "%s", "#p", "#m", "#s"]
        var seen = Set<Int>()
        var words = Set<String>()
        for offset in offsets where seen.insert(offset).inserted {
            guard let synset = synset(at: offset) else { continue }
            var related = [synset]
            for pointer in synset.pointers where symbols.contains(pointer.symbol) {
                if let target = self.synset(at: pointer.offset) { related.append(target) }
            }
            for entry in related {
                for (word, _) in entry.words {
                    for part in ResponseParser.wordsOf(word.replacingOccurrences(of: "_", with: " "))
                    where part.count >= 3 && !ResponseParser.stopWords.contains(part) && !Self.tooGeneric.contains(part) {
                        words.insert(ResponseParser.stem(part))
                    }
                }
            }
        }
        return words
    }

    /// Words so general that using one says nothing about the label.
    static let tooGeneric: Set<String> = ["thing", "object", "entity", "whole", "unit", "part", "piece", "item", "kind", "type", "form", "being"]
}
