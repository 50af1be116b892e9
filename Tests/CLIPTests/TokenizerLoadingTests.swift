import Foundation
import Testing

@testable import CLIP

@Suite("Tokenizer files: loading and clear errors")
struct TokenizerLoadingTests {
    /// A fresh temporary folder holding the given files; the test removes it.
    private func folder(_ files: [String: String]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("clip-tokenizer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, contents) in files {
            try contents.write(to: url.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return url
    }

    /// The real vocabulary as JSON text, to build broken variants of it.
    private func realVocabulary() throws -> String {
        try String(contentsOf: TokenizerFixtures.checkpoint.appendingPathComponent("vocab.json"), encoding: .utf8)
    }

    private func error(_ body: () throws -> CLIP.Tokenizer) -> CLIP.TokenizerError? {
        do {
            _ = try body()
            return nil
        } catch let error as CLIP.TokenizerError {
            return error
        } catch {
            Issue.record("unexpected error type: \(error)")
            return nil
        }
    }

    @Test("vocabURL/mergesURL and directory loading agree")
    func explicitURLs() throws {
        let byURL = try CLIP.Tokenizer(
            vocabURL: TokenizerFixtures.checkpoint.appendingPathComponent("vocab.json"),
            mergesURL: TokenizerFixtures.checkpoint.appendingPathComponent("merges.txt"))
        #expect(byURL.tokenize("a photo of a dog.") == [49406, 320, 1125, 539, 320, 1929, 269, 49407])
    }

    @Test("a folder without vocab.json names the missing file")
    func missingVocabulary() throws {
        let url = try folder(["merges.txt": "#version: 0.2\n"])
        defer { try? FileManager.default.removeItem(at: url) }
        let failure = try #require(error { try CLIP.Tokenizer(directory: url) })
        #expect(failure.file.lastPathComponent == "vocab.json")
        #expect(failure.description.contains("vocab.json: no such file"))
    }

    @Test("a vocab.json that is not a token → id object is refused")
    func malformedVocabulary() throws {
        let url = try folder(["vocab.json": "[1, 2, 3]", "merges.txt": "#version: 0.2\n"])
        defer { try? FileManager.default.removeItem(at: url) }
        let failure = try #require(error { try CLIP.Tokenizer(directory: url) })
        #expect(failure.file.lastPathComponent == "vocab.json")
        #expect(failure.reason.contains("not a JSON object"))
    }

    @Test("a vocabulary without the byte-level tokens is refused")
    func incompleteVocabulary() throws {
        let url = try folder(["vocab.json": #"{"a": 0, "b": 1}"#, "merges.txt": "#version: 0.2\n"])
        defer { try? FileManager.default.removeItem(at: url) }
        let failure = try #require(error { try CLIP.Tokenizer(directory: url) })
        #expect(failure.description.contains("byte-level base token missing"))
    }

    @Test("a merges line that is not two tokens names the line")
    func malformedMergesLine() throws {
        let url = try folder(["vocab.json": try realVocabulary(), "merges.txt": "#version: 0.2\ni n\nt h e\n"])
        defer { try? FileManager.default.removeItem(at: url) }
        let failure = try #require(error { try CLIP.Tokenizer(directory: url) })
        #expect(failure.file.lastPathComponent == "merges.txt")
        #expect(failure.reason.hasPrefix("line 3: expected two tokens"))
    }

    @Test("a merge of tokens the vocabulary lacks names the line and the token")
    func mergeOutsideVocabulary() throws {
        let url = try folder(["vocab.json": try realVocabulary(), "merges.txt": "#version: 0.2\ni n\n\u{2603} q\n"])
        defer { try? FileManager.default.removeItem(at: url) }
        let failure = try #require(error { try CLIP.Tokenizer(directory: url) })
        #expect(failure.description.contains("merges.txt: line 3: \"\u{2603}\" is not in vocab.json"))
    }

    @Test("merges.txt with CRLF line ends and no header loads")
    func lenientMergesFormat() throws {
        let url = try folder(["vocab.json": try realVocabulary(), "merges.txt": "i n</w>\r\nt h\r\n"])
        defer { try? FileManager.default.removeItem(at: url) }
        let tokenizer = try CLIP.Tokenizer(directory: url)
        // With only two merges, "thin" stays close to bytes: t h i n</w> → t h in</w> → th in</w>.
        #expect(tokenizer.tokenStrings(tokenizer.encode("thin")) == ["th", "in</w>"])
    }
}
