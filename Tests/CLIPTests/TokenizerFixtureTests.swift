import Foundation
import Testing

@testable import CLIP

/// The tokenizer parity fixtures written by scripts/make_clip_fixtures.py, and a tokenizer on the real CLIP vocabulary.
enum TokenizerFixtures {
    struct Case: Decodable {
        var text: String
        var category: String
        var ids: [Int32]
        var idsTruncated77: [Int32]
        var tokens: [String]

        enum CodingKeys: String, CodingKey {
            case text, category, ids, tokens
            case idsTruncated77 = "ids_truncated77"
        }
    }

    static let directory: URL = {
        if let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) { return url }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    }()

    static let checkpoint = directory.appendingPathComponent("checkpoints/tiny-quickgelu")

    /// Loaded once: the vocabulary takes a noticeable fraction of a second to read.
    static let shared = Result { try CLIP.Tokenizer(directory: checkpoint) }

    static func tokenizer() throws -> CLIP.Tokenizer { try shared.get() }

    static func cases() throws -> [Case] {
        let data = try Data(contentsOf: directory.appendingPathComponent("tokenizer_cases.json"))
        return try JSONDecoder().decode([Case].self, from: data)
    }

    /// Fixture texts whose reference ids need ftfy's mojibake repair (`fix_encoding`), which this tokenizer does not
    /// reproduce: ftfy guesses that the text is UTF-8 that was decoded as Windows-1252 and re-decodes it. The
    /// heuristic (ftfy's "badness" score over character classes) is large and wrong on some real text, so these are
    /// tokenized as written.
    static let mojibakeExceptions: [String: String] = [
        "caf\u{C3}\u{A9}": "ftfy re-decodes \"cafÃ©\" to \"café\"",
        "\u{E2}\u{20AC}\u{153}mojibake\u{E2}\u{20AC}\u{FFFD}":
            "ftfy re-decodes the curly-quote mojibake \"â€œ\" to a quote mark: \"\\\"mojibake\u{FFFD}\"",
    ]
}

@Suite("Tokenizer parity with OpenAI clip.tokenize")
struct TokenizerFixtureTests {
    @Test("every fixture case gets the reference ids, untruncated and truncated to 77")
    func allFixtureCases() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        let cases = try TokenizerFixtures.cases()
        #expect(cases.count >= 1000)

        var mismatches: [String] = []
        var exceptionsSeen = 0
        for testCase in cases {
            let ids = tokenizer.tokenize(testCase.text, contextLength: nil)
            let truncated = tokenizer.tokenize(testCase.text)
            if let reason = TokenizerFixtures.mojibakeExceptions[testCase.text] {
                exceptionsSeen += 1
                // Still an exception: if this starts to match, drop it from the list.
                #expect(ids != testCase.ids, "\(testCase.text.debugDescription) now matches; remove it (\(reason))")
                continue
            }
            if ids != testCase.ids || truncated != testCase.idsTruncated77 {
                mismatches.append(
                    "[\(testCase.category)] \(testCase.text.debugDescription): expected \(testCase.ids), got \(ids)")
            }
        }
        #expect(exceptionsSeen == TokenizerFixtures.mojibakeExceptions.count)
        let exact = cases.count - exceptionsSeen - mismatches.count
        print("tokenizer parity: \(exact) of \(cases.count) fixture cases exact, \(exceptionsSeen) mojibake exceptions")
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches:\n\(mismatches.prefix(20).joined(separator: "\n"))")
    }

    @Test("token strings match the reference's BPE tokens")
    func tokenStrings() throws {
        let tokenizer = try TokenizerFixtures.tokenizer()
        for testCase in try TokenizerFixtures.cases() where TokenizerFixtures.mojibakeExceptions[testCase.text] == nil {
            let tokens = tokenizer.tokenStrings(tokenizer.encode(testCase.text))
            #expect(tokens == testCase.tokens, "\(testCase.text.debugDescription)")
        }
    }

    @Test("every category is covered, and some cases exceed the context length")
    func coverage() throws {
        let cases = try TokenizerFixtures.cases()
        let categories = Set(cases.map(\.category))
        #expect(categories.isSuperset(of: ["label", "label-display-like", "description", "long", "edge"]))
        #expect(cases.filter { $0.ids.count > CLIP.Tokenizer.contextLength }.count >= 5)
    }
}
