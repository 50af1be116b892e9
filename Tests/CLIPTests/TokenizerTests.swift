import Foundation
import Testing
import Tensor

@testable import CLIP

@Suite("CLIP tokenizer behaviour")
struct TokenizerTests {
    let tokenizer: CLIP.Tokenizer

    init() throws {
        tokenizer = try TokenizerFixtures.tokenizer()
    }

    @Test("the real CLIP vocabulary and special ids")
    func vocabulary() {
        #expect(tokenizer.vocabularySize == 49408)
        #expect(tokenizer.startOfTextID == 49406)
        #expect(tokenizer.endOfTextID == 49407)
    }

    @Test("a prompt tokenizes to the ids clip.tokenize gives")
    func prompt() {
        #expect(tokenizer.tokenize("a photo of a dog.") == [49406, 320, 1125, 539, 320, 1929, 269, 49407])
        #expect(tokenizer.encode("a photo of a dog.") == [320, 1125, 539, 320, 1929, 269])
        #expect(tokenizer.tokenize("") == [49406, 49407])
        #expect(tokenizer.tokenize(" \t\n ") == [49406, 49407])
    }

    @Test("corners of the cleanup and the pattern match the reference", arguments: TokenizerReferenceCase.all)
    func referenceCorners(_ reference: TokenizerReferenceCase) {
        #expect(tokenizer.encode(reference.text) == reference.ids)
    }

    @Test("special tokens in the text become their ids, in any case")
    func specialTokens() {
        #expect(tokenizer.encode("<|startoftext|>") == [49406])
        #expect(tokenizer.encode("<|ENDOFTEXT|>") == [49407])
        #expect(tokenizer.tokenize("a photo <|endoftext|> of a dog") == [49406, 320, 1125, 49407, 539, 320, 1929, 49407])
        #expect(!tokenizer.encode("startoftext endoftext").contains { $0 >= 49406 })
    }

    @Test("truncation keeps the first 76 ids and ends with <|endoftext|>")
    func truncation() {
        let text = Array(repeating: "dog", count: 100).joined(separator: " ")
        let full = tokenizer.tokenize(text, contextLength: nil)
        #expect(full.count == 102)
        let cut = tokenizer.tokenize(text)
        #expect(cut.count == 77)
        #expect(Array(cut.prefix(76)) == Array(full.prefix(76)))
        #expect(cut.last == 49407)
        #expect(tokenizer.tokenize(text, truncate: false) == full)
        #expect(tokenizer.tokenize(text, contextLength: 5) == [49406, 1929, 1929, 1929, 49407])
        #expect(tokenizer.tokenize(text, contextLength: 1) == [49407])
        #expect(tokenizer.tokenCount(text) == 102)
        // Exactly 77 is not cut.
        let exact = Array(repeating: "a", count: 75).joined(separator: " ")
        #expect(tokenizer.tokenize(exact) == tokenizer.tokenize(exact, contextLength: nil))
    }

    @Test("batch helpers give the same ids as one text at a time")
    func batches() {
        let texts = ["a photo of a dog.", "", "東京は日本の首都", "🇫🇷 and 👩🏽‍💻"]
        #expect(tokenizer.tokenize(texts) == texts.map { tokenizer.tokenize($0) })
        #expect(tokenizer.encode(texts) == texts.map { tokenizer.encode($0) })
    }

    @Test("long inputs: a 20,000-letter word and a 200 kB text")
    func longInputs() {
        let word = String(repeating: "abcdefghij", count: 2000)
        let ids = tokenizer.encode(word)
        #expect(!ids.isEmpty)
        #expect(tokenizer.decode(ids) == word)
        let text = Array(repeating: "A dog is a four-legged animal with fur, a tail, and pointed or floppy ears.", count: 2700)
            .joined(separator: " ")
        #expect(text.utf8.count > 200_000)
        let tokenized = tokenizer.tokenize(text)
        #expect(tokenized.count == 77)
        #expect(tokenized.last == 49407)
    }

    @Test("decode reverses encode on cleaned text")
    func decode() {
        #expect(tokenizer.decode(tokenizer.tokenize("A photo of a Dog.")) == "a photo of a dog .")
        #expect(tokenizer.decode([49406, 320, 49407], skipSpecialTokens: false) == "<|startoftext|>a <|endoftext|>")
        #expect(tokenizer.decode([-1, 99999]) == "\u{FFFD}\u{FFFD}")
        #expect(tokenizer.decode(tokenizer.encode("一只狗 🐕‍🦺")) == "一只狗 🐕‍🦺")
    }

    @Test("random Unicode never crashes, stays in the vocabulary, and loses no character")
    func randomUnicode() {
        var generator = SplitMix64(seed: 0x5EED_C11B)
        let pools: [ClosedRange<UInt32>] = [
            0x20...0x7E, 0xA0...0x17F, 0x300...0x36F, 0x370...0x3FF, 0x400...0x4FF, 0x590...0x6FF, 0x900...0x97F,
            0xE00...0xE7F, 0x1100...0x11FF, 0x2000...0x206F, 0x3040...0x30FF, 0x4E00...0x9FFF, 0xAC00...0xD7A3,
            0xFE00...0xFFFF, 0x1F300...0x1FAFF, 0xE0000...0xE007F, 0x0...0x10FFFF,
        ]
        for _ in 0..<3000 {
            var text = ""
            for _ in 0..<Int.random(in: 0...24, using: &generator) {
                let pool = pools.randomElement(using: &generator)!
                if let scalar = Unicode.Scalar(UInt32.random(in: pool, using: &generator)) {
                    text.unicodeScalars.append(scalar)
                }
            }
            let ids = tokenizer.tokenize(text, contextLength: nil)
            #expect(ids.first == 49406 && ids.last == 49407)
            #expect(ids.allSatisfy { (0..<49408).contains($0) })
            #expect(tokenizer.encode(text) == Array(ids.dropFirst().dropLast()), "cache gave different ids")
            // Every scalar of the cleaned text comes back, except the spaces between words and U+0345, which CLIP's
            // pattern skips.
            let cleaned = CLIP.Tokenizer.clean(text).unicodeScalars.filter { $0 != " " && $0 != "\u{345}" }
            let decoded = tokenizer.decode(ids).unicodeScalars.filter { $0 != " " }
            #expect(Array(decoded) == Array(cleaned), "\(text.debugDescription)")
        }
    }

    @Test("one tokenizer serves concurrent tasks")
    func concurrentUse() async throws {
        let cases = try TokenizerFixtures.cases().map(\.text)
        let expected = cases.map { tokenizer.encode($0) }
        let fresh = try CLIP.Tokenizer(directory: TokenizerFixtures.checkpoint)
        let results = await withTaskGroup(of: [[Int32]].self) { group in
            for _ in 0..<4 {
                group.addTask { cases.map { fresh.encode($0) } }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        for result in results {
            #expect(result == expected)
        }
    }

    @Test("cleanup: whitespace, case, HTML and ftfy's fixes")
    func cleanup() {
        #expect(CLIP.Tokenizer.clean("  Multiple\u{3000}SPACES\r\n\there ") == "multiple spaces here")
        #expect(CLIP.Tokenizer.clean("&amp;amp;amp; &lt;b&gt;") == "& <b>")
        #expect(CLIP.Tokenizer.clean("ＡＢＣ１２３ ﬁsh “quoted” it’s") == "abc123 fish \"quoted\" it's")
        #expect(CLIP.Tokenizer.clean("\u{39F}\u{394}\u{39F}\u{3A3}") == "\u{3BF}\u{3B4}\u{3BF}\u{3C2}")
        #expect(CLIP.Tokenizer.clean("İ") == "i\u{307}")
        #expect(CLIP.Tokenizer.clean("cafe\u{301}").unicodeScalars.map(\.value) == [0x63, 0x61, 0x66, 0xE9])
    }
}

/// A case beyond the fixtures, with ids from the reference SimpleTokenizer in scripts/make_clip_fixtures.py.
struct TokenizerReferenceCase: CustomTestStringConvertible, Sendable {
    var text: String
    var ids: [Int32]

    /// Escaped, so control characters in the text do not reach the terminal.
    var testDescription: String { text.debugDescription }

    static let all: [TokenizerReferenceCase] = [
        // IGNORECASE: long s matches 's and the special token, which is then BPE-encoded as text.
        .init(text: "x'\u{17F} <|\u{17F}tartoftext|>", ids: [343, 6, 129, 379, 27, 91, 129, 123, 2002, 6659, 18169, 91, 285]),
        // U+0345 matches no alternative under IGNORECASE, so findall skips it.
        .init(text: "a\u{345}b !\u{345}!", ids: [320, 321, 256, 256]),
        // html.unescape's legacy names and prefixes; ftfy's all-caps entities.
        .init(
            text: "&copy2020 &amp &ampx; &#59; &EACUTE; &SZLIG;",
            ids: [5811, 273, 271, 273, 271, 261, 261, 343, 282, 282, 4166, 632]),
        // ftfy unescapes the lines before the first "<", and none after it.
        .init(text: "&EACUTE;\n<b>", ids: [4166, 283, 321, 285]),
        .init(text: "<b>\n&EACUTE;", ids: [283, 321, 285, 261, 68, 19734, 282]),
        .init(text: "\u{149} \u{1C4} \u{FB05}", ids: [262, 333, 67, 129, 378, 129, 123, 339]),
        .init(text: "\u{1B}[\u{663}mred", ids: [736]),
        .init(text: "&#x80;&#150; &#0;&#xD800;&#1114112;&#65535;&#1;x", ids: [34919, 1224, 47356, 47356, 39802, 343]),
        .init(text: "\u{91}quoted\u{92} \u{81}", ids: [262, 27706, 262, 126, 479]),
        .init(text: "\u{FF76}\u{FF9E}\u{FF77}\u{FF9E} \u{FFE6}", ids: [3909, 105, 3909, 362, 5227, 358]),
        // Python's str.lower(): capital sigma is final sigma at the end of a word only.
        .init(
            text: "\u{3A3}\u{391}\u{3A3} \u{3A3} a\u{3A3}b \u{391}\u{3A3}'\u{3A3}",
            ids: [139, 225, 138, 109, 139, 480, 139, 481, 64, 139, 225, 321, 138, 109, 139, 481, 262, 139, 480]),
        .init(text: "&lang;&rang;", ids: [158, 253, 101, 158, 253, 358]),
        .init(text: "\u{FEFF}bom \u{206A}x \u{FFFC}y", ids: [19469, 343, 344]),
        // A special token inside a punctuation run is text.
        .init(
            text: "<<|endoftext|> a.<|endoftext|>",
            ids: [24588, 347, 40786, 4160, 91, 285, 320, 13, 27, 347, 40786, 4160, 91, 285]),
        .init(text: "!'s 'S' ''ll", ids: [13222, 338, 568, 262, 8445, 865]),
        .init(text: "\u{1E9B}\u{323}", ids: [157, 118, 505, 136, 352]),
    ]
}
