import Foundation
import GRDB
import Testing
@testable import Knowledge
import Tensor
import TestSupport

/// The byte-wise fast paths of the per-request work (issue: the LLM stage at scale, client CPU) give exactly what
/// the general code gives: token estimates, JSON strings, lower case, template substitution.
@Suite("Per-request fast paths")
struct FastPathTests {
    static let samples = [
        "A dog is a domesticated carnivore.", "UPPER case, digits 12345 and symbols $+<=>^`|~ and @#%&*",
        "tabs\tand\r\nwindows line ends\nand a DEL \u{7F} and NUL \u{0} byte", "   ", "", "ÉCOLE: naïve café (non-ASCII)",
        "quotes \" and back\\slashes \\\" and ’curly’ ones", "emoji 🐕 and CJK 犬 in a sentence.",
    ]

    static func committedDescriptions() throws -> [String] { try committed.get() }

    /// Read once for every test of the suite: parallel tests opening the file read-only at the same moment could
    /// find it locked while one of them set up its shared memory.
    private static let committed = Result {
        try DatabaseQueue(path: Repo.path("knowledge.db"), configuration: {
            var c = Configuration(); c.readonly = true; c.busyMode = .timeout(10); return c
        }()).read { try String.fetchAll($0, sql: "SELECT text FROM descriptions") }
    }

    /// The key redaction that every raw answer passes through, scanned on bytes, redacts exactly what the regular
    /// expression it replaced does, on keys, near-keys, keys in JSON, in URLs and beside non-ASCII text.
    @Test func keyRedactionEqualsTheRegularExpression() throws {
        let pattern = try NSRegularExpression(pattern: "(sk|pk|key)-[A-Za-z0-9_*.\\-]{6,}")
        func oracle(_ text: String) -> String {
            pattern.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "[redacted]")
        }
        var texts = Self.samples + [
            "sk-abcdef", "sk-abcde", "sk-", "pk-123456789", "key-******", "key-*****", "ksk-abcdefgh", "desk-lamp12",
            "Bearer sk-proj-AbC_12.3*xyz-!", "{\"error\": \"Incorrect API key provided: sk-live-1234567890abcdef\"}",
            "sk-sk-sk-abcdefg", "skk-abcdefgh", "s k-abcdefg", "SK-ABCDEFGH", "key-abc-def-ghi and pk-12 and sk-123456",
            "https://host/v1?api_key=key-abcdefgh&x=1", "sk-ééééééé", "sk-abc😀defghij", "café sk-abcdefgh café", "pk-",
            "k", "sk", "key", "key-", "the-key-abcdefg", "asksk-abcdefg-",
        ]
        // Random strings over the characters that matter, from a fixed-seed generator (a failure reproduces).
        let alphabet = Array("skpey-_*.aZ9 é")
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        for _ in 0..<3000 { texts.append(String((0..<next(25)).map { _ in alphabet[next(alphabet.count)] })) }
        for text in texts {
            #expect(JSONPoster.redactingKeyShapes(text) == oracle(text), "\(text)")
        }
    }

    @Test func theASCIITokenEstimateEqualsTheGeneralOne() throws {
        let texts = try Self.committedDescriptions() + Self.samples
        #expect(texts.count > 1000)
        for text in texts {
            #expect(DescriptionQuality.estimatedTokens(text) == DescriptionQuality.estimatedTokensUnicode(text), "\(text)")
        }
        #expect(DescriptionQuality.estimatedTokensASCII("naïve") == nil, "non-ASCII text takes the general path")
    }

    @Test func jsonStringsRoundTripThroughJSONSerialization() throws {
        var texts = Self.samples
        texts.append(String(decoding: (0..<128).map { UInt8($0) }, as: UTF8.self))
        for text in texts {
            var bytes: [UInt8] = []
            JSONValue.writeString(text, into: &bytes)
            let decoded = try JSONSerialization.jsonObject(with: Data(bytes), options: .fragmentsAllowed) as? String
            #expect(decoded == text, "\(text.debugDescription) → \(String(decoding: bytes, as: UTF8.self))")
        }
        var escaped: [UInt8] = []
        JSONValue.writeString("a\"b\\c\nd\u{1}", into: &escaped)
        #expect(String(decoding: escaped, as: UTF8.self) == #""a\"b\\c\nd\u0001""#)
    }

    @Test func asciiLowerCaseIsLowercasedAndOnlyForASCII() {
        for text in Self.samples where text.utf8.allSatisfy({ $0 < 0x80 }) {
            #expect(FastText.asciiLowercased(text) == text.lowercased())
        }
        #expect(FastText.asciiLowercased("ÉCOLE") == nil)
        #expect(ResponseParser.isRefusal("I’M SORRY, but as an AI I can’t help.") && ResponseParser.isRefusal("I CANNOT do that"))
        #expect(!ResponseParser.isRefusal("A dog has four legs."))
    }

    @Test func templateSubstitutionKeepsWhatItDoesNotKnow() {
        let values = ["label": "dining table", "count": "5"]
        #expect(TemplateText.render("Describe {{label}} in {{ count }} sentences.", values) == "Describe dining table in 5 sentences.")
        #expect(TemplateText.render("{{unknown}}x{{label}}", values) == "xdining table")
        #expect(TemplateText.render("café {{label}} {{ unclosed", values) == "café dining table {{ unclosed")
        #expect(TemplateText.render("no variables at all", values) == "no variables at all")
        #expect(TemplateText.render("{{label}}", values) == "dining table")
        #expect(TemplateText.render("{", values) == "{" && TemplateText.render("", values) == "")
    }
}

extension FastPathTests {
    @Test func whitespaceCollapsesAsTheGeneralSplitDoes() throws {
        let texts = try Self.committedDescriptions() + Self.samples + ["  a \t b\r\n\r\nc  ", "\u{0B}x\u{0C}y\u{0D}", " é  ü ", "a\u{A0}b"]
        for text in texts {
            #expect(FastText.collapsingWhitespace(text) == text.split(whereSeparator: { $0.isWhitespace }).joined(separator: " "), "\(text.debugDescription)")
        }
    }
}

/// The quality checks' shortcuts (issue 12 §1, client CPU): each gives what the plain computation gives.
extension FastPathTests {
    static func shippedLabels() throws -> [Label] {
        let folder = Repo.path("labels")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".txt") }.sorted()
        return try files.flatMap { try LabelFile.load(folder + "/" + $0).labels }
    }

    @Test func namedLabelsArePrunedByPrefixWithoutLosingAny() throws {
        let labels = try Self.shippedLabels()
        #expect(labels.count > 100)
        let names = DescriptionQuality.NameIndex(labels)
        let texts = try Self.committedDescriptions() + Self.samples + ["the dining table beside a potted plant and a tv monitor", "a traffic light"]
        var found = 0
        for (index, text) in texts.enumerated() {
            let context = DescriptionQuality.Context(label: labels[index % labels.count], names: names)
            let words = DescriptionQuality.masked(text, names: context.label.allNames)
            let pruned = DescriptionQuality.otherLabelsNamed(words, context)
            #expect(pruned == DescriptionQuality.otherLabelsNamed(words, context, pruned: false), "\(text)")
            found += pruned.count
        }
        #expect(found > 0, "the texts name other labels, so the comparison means something")
    }

    @Test func duplicateCheckOnWordSetsEqualsUnionAndIntersection() throws {
        let texts = Array(try Self.committedDescriptions().prefix(300)) + ["A dog runs.", "a DOG runs!", "Dogs run", ""]
        let context = DescriptionQuality.Context(label: Label(rawName: "dog"), in: [Label(rawName: "dog")])
        let shown = DescriptionQuality.Shown([])
        for (index, text) in texts.enumerated() {
            let other = texts[(index * 7 + 3) % texts.count]
            let a = DescriptionQuality.wordSet(text), b = DescriptionQuality.wordSet(other)
            let union = a.union(b).count
            let plain = union > 0 && Double(a.intersection(b).count) / Double(union) >= DescriptionQuality.duplicateOverlap
            let verdict = DescriptionQuality.assess(text, context: context, shown: shown, earlier: [other], answerOnTopic: true, cutOff: false)
            #expect((verdict.duplicateOf != nil) == plain, "\(text) / \(other)")
        }
    }

    @Test func incompleteWithTheCallersWordsEqualsWithout() throws {
        for text in try Self.committedDescriptions() + Self.samples + ["A dog with", "Three words,", "A dog (brown", "  padded text.  "] {
            for cutOff in [false, true] {
                #expect(DescriptionQuality.isIncomplete(text, cutOff: cutOff, words: ResponseParser.wordsOf(text))
                        == DescriptionQuality.isIncomplete(text, cutOff: cutOff), "\(text)")
            }
        }
    }

    /// The byte path of the incomplete check gives what the check on characters gives, on every ASCII text, and
    /// steps aside for any other.
    @Test func incompleteOnBytesEqualsOnCharacters() throws {
        let endings = ["", ".", "!", "?", "\"", "'", ")", ",", ";", ":", "-", "(", " the", " with", " dog", " 42", " (brown",
                       " (brown)", "\r\n", " \t", "...", "”", "–", "é", "\u{85}", "\u{1C}"]
        var texts = try Self.committedDescriptions() + Self.samples + ["", " ", "\r\n", "a b", "A dog (brown"]
        texts += try Self.committedDescriptions().prefix(200).flatMap { text in
            endings.map { String(FastText.trimmed(text).dropLast()) + $0 }
        }
        var byBytes = 0, incomplete = 0
        for text in texts {
            let words = ResponseParser.wordsOf(text)
            for cutOff in [false, true] {
                let characters = DescriptionQuality.isIncompleteCharacters(text, cutOff: cutOff, words: words)
                if let bytes = DescriptionQuality.isIncompleteASCII(text, cutOff: cutOff, words: words) {
                    #expect(bytes == characters, "\(text.debugDescription) cut off: \(cutOff)")
                    byBytes += 1
                } else {
                    #expect(text.utf8.contains { $0 >= 0x80 }, "\(text.debugDescription) is ASCII but took the slow path")
                }
                #expect(DescriptionQuality.isIncomplete(text, cutOff: cutOff, words: words) == characters)
                if characters { incomplete += 1 }
            }
        }
        #expect(byBytes > texts.count, "most texts are ASCII")
        #expect(incomplete > texts.count / 4 && incomplete < texts.count * 2, "both verdicts occur: \(incomplete)")
    }

    @Test func removingCharactersEqualsFiltering() throws {
        let texts = try Self.committedDescriptions() + Self.samples + ["`code` and **bold**", "varia \u{1FEF} is `", "e\u{301}`", "*"]
        for text in texts {
            for set: Set<Character> in [["`"], ["*"], ["`", "*"], ["é"]] {
                #expect(FastText.removing(set, from: text) == String(text.filter { !set.contains($0) }), "\(text.debugDescription)")
            }
        }
    }
}

/// The judging's byte paths (issue 12 §1, client CPU at 200 labels): each gives what the Unicode path gives.
extension FastPathTests {
    static func wordsOfEveryKind() throws -> [String] {
        let texts = try Self.committedDescriptions() + Self.samples
        let labels = try Self.shippedLabels().flatMap(\.allNames)
        let edges = ["", "s", "ss", "ies", "pies", "ponies", "boxes", "xes", "dishes", "glasses", "bus", "gas", "glass", "is",
                     "café", "cafés", "naïves", "a\r\nies", "ab\r\ns", "DOGS", "dogs"]
        return texts.flatMap(ResponseParser.wordsOf) + labels + labels.flatMap(ResponseParser.wordsOf) + edges
    }

    /// A sentence the byte check passes is exactly what cleaning gives back; the check passes most real sentences.
    @Test func sentencesTheByteCheckPassesAreWhatCleaningGives() throws {
        let descriptions = try Self.committedDescriptions()
        var texts = descriptions + Self.samples + [
            "- a bullet", "* star", "+ plus", "12. numbered", "1) x", "\"quoted\"", "'single'", "“curly”", "trailing,",
            " leading space", "trailing space ", "double  space", "tab\there", "line\nbreak", "`code`", "**bold** text",
            "__under__ text", "snake_case word", "a * b", "2x zoom", "x", "-", "\"", ",", "ok.", "a\r\nb", "non-breaking\u{A0}space",
            "é", "dog —", "5 legs", "A \"quote\" inside", "it's", "end'", "under_ score_", "star*", "a  ", "__", "**",
        ]
        // Each real sentence with something cleaning removes added at either end, or inside.
        for text in descriptions.prefix(300) {
            texts += ["- " + text, text + ",", "\"" + text + "\"", text + "  ", text.replacingOccurrences(of: " ", with: "  "),
                      "3. " + text, text.replacingOccurrences(of: " ", with: "\t")]
        }
        var passed = 0
        for text in texts {
            if ResponseParser.isCleanASCII(text) {
                passed += 1
                #expect(ResponseParser.cleanUnicode(text) == text, "\(text.debugDescription) passed the byte check but cleaning changes it")
            }
            #expect(ResponseParser.clean(text) == ResponseParser.cleanUnicode(text), "\(text.debugDescription)")
        }
        #expect(passed > descriptions.count / 2, "most stored sentences need no cleaning and take the byte path")
        #expect(!ResponseParser.isCleanASCII("") && !ResponseParser.isCleanASCII("naïve") && !ResponseParser.isCleanASCII("- x"))
    }

    @Test func stemmingOnBytesEqualsStemmingOnCharacters() throws {
        let words = try Self.wordsOfEveryKind()
        #expect(words.count > 10_000)
        var changed = 0
        for word in words {
            let stem = ResponseParser.stem(word)
            #expect(stem == ResponseParser.stemUnicode(word), "\(word.debugDescription)")
            if stem != word { changed += 1 }
        }
        #expect(changed > 1000, "plurals were among the words, so the comparison covers each rule")
        #expect(ResponseParser.stem("ponies") == "pony" && ResponseParser.stem("benches") == "bench" && ResponseParser.stem("glass") == "glass")
    }

    @Test func mentionsStemsTheTextOnceAndFindsWhatComparingEveryPairFinds() throws {
        // The comparison it replaced: every word of the text stemmed again for each content word of each name.
        func reference(_ text: String, _ label: Label) -> Bool {
            let haystack = ResponseParser.wordsOf(text)
            let joined = " " + haystack.joined(separator: " ") + " "
            func found(_ word: String) -> Bool { haystack.contains { ResponseParser.stem($0) == ResponseParser.stem(word) } }
            for name in label.allNames {
                let words = ResponseParser.wordsOf(name)
                if !words.isEmpty, FastText.contains(joined, " " + words.joined(separator: " ") + " ") { return true }
                if words.contains(where: { $0.count >= 3 && !ResponseParser.stopWords.contains($0) && found($0) }) { return true }
            }
            return ResponseParser.splitCamelCase(label.rawName).contains { $0.count >= 3 && !ResponseParser.stopWords.contains($0) && found($0) }
        }
        let labels = try Self.shippedLabels()
        let texts = Array(try Self.committedDescriptions().prefix(400)) + Self.samples
        var mentioned = 0
        for (index, text) in texts.enumerated() {
            for label in [labels[index % labels.count], labels[(index * 31 + 7) % labels.count]] {
                let mentions = ResponseParser.mentions(text, label)
                #expect(mentions == reference(text, label), "\(text) / \(label.rawName)")
                if mentions { mentioned += 1 }
            }
        }
        #expect(mentioned > 0)
    }

    @Test func judgingGivesTheWordSetTheDuplicateCheckUses() throws {
        let labels = try Self.shippedLabels()
        let names = DescriptionQuality.NameIndex(labels)
        let shown = DescriptionQuality.Shown([("giraffe", "A giraffe is a tall animal with a long neck.")])
        for (index, text) in (try Self.committedDescriptions().prefix(300) + Self.samples).enumerated() {
            let context = DescriptionQuality.Context(label: labels[index % labels.count], names: names)
            let judged = DescriptionQuality.judge(text, context: context, shown: shown, earlierWords: [], answerOnTopic: true, cutOff: false)
            #expect(judged.words == DescriptionQuality.wordSet(text), "\(text)")
            #expect(judged.verdict == DescriptionQuality.assess(text, context: context, shown: shown, earlierWords: [], answerOnTopic: true, cutOff: false))
        }
    }

    @Test func theRefusalPrefilterRulesOutOnlyTextsWithNoMarker() throws {
        #expect(ResponseParser.refusalMarkers.allSatisfy { $0.hasPrefix("i ") || $0.hasPrefix("i'") || $0.hasPrefix("as a") },
                "the prefilter looks only for where these markers can start")
        let refusals = ResponseParser.refusalMarkers.flatMap { [$0, $0.uppercased(), "Well, \($0.capitalized), but", "x" + $0] }
        let texts = try Self.committedDescriptions() + Self.samples + refusals + ["I", "i", "as", "as a", "AS A", "i'", "Hi there", "a"]
        var ruledOut = 0, refusing = 0
        for text in texts {
            let full = ResponseParser.refusalMarkers.contains {
                FastText.contains(FastText.asciiLowercased(text) ?? String(text.lowercased().map { $0 == "’" ? "'" : $0 }), $0)
            }
            #expect(ResponseParser.isRefusal(text) == full, "\(text)")
            if ResponseParser.mayRefuse(text) == false {
                #expect(!full, "\(text)")
                ruledOut += 1
            }
            if full { refusing += 1 }
        }
        #expect(ruledOut > texts.count / 2, "most descriptions are ruled out without lower-casing")
        #expect(refusing >= refusals.count)
    }

    @Test func openParenthesesCountOnBytesAsOnCharacters() throws {
        let texts = try Self.committedDescriptions() + Self.samples + ["a (b", "(a) b)", "((", "é (", "(\u{301} x", "a\r\n(b"]
        var open = 0
        for text in texts {
            var depth = 0
            for c in text { if c == "(" { depth += 1 } else if c == ")" { depth -= 1 } }
            #expect(DescriptionQuality.parenthesesLeftOpen(text) == (depth > 0), "\(text.debugDescription)")
            if depth > 0 { open += 1 }
        }
        #expect(open >= 3)
    }

    @Test func headerNamesCompareWithoutASCIICaseAndNothingElse() {
        let names = ["Content-Type", "content-type", "CONTENT-TYPE", "Accept", "X-SSPA-Label", "x-sspa-label", "Authorization",
                     "Retry-After", "retry-after", "a", "A", "", "@", "`", "[", "{", "Ä", "ä", "content-typ", "content-types"]
        for a in names {
            for b in names {
                let ascii = a.allSatisfy(\.isASCII) && b.allSatisfy(\.isASCII)
                // For ASCII names this is Foundation's case-insensitive equality; beyond ASCII, only the same bytes.
                let expected = ascii ? a.caseInsensitiveCompare(b) == .orderedSame : a == b
                #expect(FastText.equalsIgnoringASCIICase(a, b) == expected, "\(a) vs \(b)")
            }
        }
        // "@" (0x40) and "`" (0x60) differ only in the case bit, and are not letters.
        #expect(!FastText.equalsIgnoringASCIICase("@", "`"))
        var request = HTTPRequest(url: URL(string: "http://127.0.0.1/")!)
        request.setValue("text/plain", forHTTPHeaderField: "content-type")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        #expect(request.headers.count == 1)
        #expect(request.value(forHTTPHeaderField: "CONTENT-TYPE") == "application/json")
        #expect(HTTPResponse(statusCode: 429, headers: ["retry-after": "3"]).value(forHTTPHeaderField: "Retry-After") == "3")
    }

    @Test func theLabelHeaderIsPlainASCIIAndDecodesBackToTheLabel() {
        for label in Self.samples + ["dog", "traffic light", "T-shirt/top", "café crème", "100%", "a+b=c", "犬"] {
            let header = FastText.percentEncodingAllButASCIIAlphanumerics(label)
            #expect(header.utf8.allSatisfy { $0 >= 0x21 && $0 < 0x7F } || header.isEmpty, "\(header)")
            #expect(header.removingPercentEncoding == label)
            // Letters and digits stay readable; everything else is escaped.
            let alphanumerics = label.unicodeScalars.filter { $0.isASCII && CharacterSet.alphanumerics.contains($0) }
            #expect(header.unicodeScalars.filter { $0 != "%" && CharacterSet.alphanumerics.contains($0) }.count >= alphanumerics.count)
        }
        #expect(FastText.percentEncodingAllButASCIIAlphanumerics("café crème") == "caf%C3%A9%20cr%C3%A8me")
    }

    @Test func timestampsAndHexDigitsAreWhatStringFormatWrites() {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let parts = [Int.random(in: 1...12_000, using: &random), Int.random(in: 1...12, using: &random), Int.random(in: 1...31, using: &random),
                         Int.random(in: 0...23, using: &random), Int.random(in: 0...59, using: &random), Int.random(in: 0...60, using: &random),
                         Int.random(in: 0...999, using: &random)]
            let expected = String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6])
            #expect(KnowledgeStore.timestamp(year: parts[0], month: parts[1], day: parts[2], hour: parts[3], minute: parts[4],
                                             second: parts[5], millisecond: parts[6]) == expected)
        }
        #expect(KnowledgeStore.now().count == 24)
        let bytes = (0...255).map { UInt8($0) }
        #expect(SHA256.lowercaseHex(bytes) == bytes.map { String(format: "%02x", $0) }.joined())
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    /// The copied share on word numbers is the share of the sentence's word trigrams (as strings) that occur in a
    /// demonstration answer: on real stored sentences as demonstrations, on them copied whole, in part and with
    /// another label's name, and on texts of fewer than three words.
    @Test func theCopiedShareOnWordNumbersIsTheShareOfStringTrigrams() throws {
        let descriptions = try Self.committedDescriptions()
        func reference(_ mine: [String], _ demos: [(label: String, text: String)]) -> Double {
            guard !demos.isEmpty else { return 0 }
            let shown = demos.map { DescriptionQuality.masked($0.text, names: [$0.label]) }
            if mine.count < 3 { return shown.contains(mine) ? 1 : 0 }
            func grams(_ words: [String]) -> [String] {
                words.count < 3 ? [] : (0...(words.count - 3)).map { words[$0..<($0 + 3)].joined(separator: " ") }
            }
            let known = Set(shown.flatMap(grams))
            let mine = grams(mine)
            return Double(mine.filter(known.contains).count) / Double(mine.count)
        }
        var checked = 0
        for start in stride(from: 0, to: min(descriptions.count, 600), by: 6) {
            let demos = descriptions[start..<min(start + 3, descriptions.count)].map { (label: "dog", text: $0) }
            let shown = DescriptionQuality.Shown(demos)
            let others = descriptions[min(start + 3, descriptions.count - 1)...].prefix(3)
            var texts = Array(others) + demos.map(\.text) + ["dog", "a dog", "", "dog dog dog dog"]
            if let first = demos.first?.text {
                let words = first.split(separator: " ")
                texts += [words.prefix(words.count / 2).joined(separator: " ") + " " + (others.first ?? ""),
                          first.replacingOccurrences(of: "dog", with: "giraffe"), String(words.prefix(2).joined(separator: " "))]
            }
            for text in texts {
                let mine = DescriptionQuality.masked(text, names: ["cat"])
                let share = DescriptionQuality.copiedShare(mine, shown: shown)
                #expect(share == reference(mine, demos), "\(text.debugDescription)")
                checked += 1
            }
            // A demonstration copied whole (with its own label's name masked, as a request shows it) is all copied.
            let copy = DescriptionQuality.masked(demos[0].text, names: ["dog"])
            if copy.count >= 3 { #expect(DescriptionQuality.copiedShare(copy, shown: shown) == 1) }
        }
        #expect(checked > 500)
        #expect(DescriptionQuality.copiedShare(["a", "b", "c"], shown: DescriptionQuality.Shown([])) == 0)
    }
}
