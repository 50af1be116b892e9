import Foundation
import Tensor
import Testing
@testable import Knowledge
import TestSupport

@Suite("Label files")
struct LabelFileTests {
    /// The byte-wise trimming and search the parser uses read every line as Foundation's `trimmingCharacters(in:
    /// .whitespaces)` and `range(of:)` did: Unicode spaces trimmed, zero-width and other characters kept.
    @Test(arguments: ["  dog  ", "\tcat\t", "\u{00A0}nbsp\u{3000}", "\u{2003}em space\u{2009}", "\u{200B}zero width\u{200B}",
                      " \u{301}combining", "中文 标签 ", "", "   ", "a => b => c", "x @ dog%1:05:00::", "=>", " @ ", "e\u{301}=>f"])
    func trimmingAndSearchAreFoundations(_ text: String) {
        #expect(FastText.trimmedSpaces(Substring(text)) == text.trimmingCharacters(in: .whitespaces))
        for (needle, last) in [("=>" as StaticString, false), (" @", true)] {
            let mine = FastText.range(of: needle, in: Substring(text), last: last)
            let foundation = text.range(of: needle.description, options: last ? [.backwards, .literal] : [.literal])
            #expect(mine.map { text.utf8.distance(from: text.startIndex, to: $0.lowerBound) }
                    == foundation.map { text.utf8.distance(from: text.startIndex, to: $0.lowerBound) }, "\(needle) in \(text)")
        }
    }

    @Test func synonymsAreStoredAsJSONEncoderWroteThem() {
        let tricky = [["plain", "two words"], [], ["quote \" and \\ backslash", "tab\there", "a/b", "café 中文 😀", "e\u{301}"]]
        for list in tricky { #expect(KnowledgeStore.json(strings: list) == KnowledgeStore.json(list), "\(list)") }
    }

    func parse(_ text: String, name: String = "test") throws -> LabelSet {
        try LabelFile.parse(Data(text.utf8), file: "labels.txt", name: name)
    }

    func error(_ text: String) -> LabelFileError? {
        do {
            _ = try parse(text)
            return nil
        } catch let error as LabelFileError {
            return error
        } catch {
            return nil
        }
    }

    @Test func readsEveryForm() throws {
        let set = try parse("""
            # VOC-like
            # template: natural
            aeroplane => airplane | aircraft, plane
            bicycle

            diningtable => dining table   # a comment after the label
            tvmonitor | television, monitor
            """)
        #expect(set.labels.map(\.rawName) == ["aeroplane", "bicycle", "diningtable", "tvmonitor"])
        #expect(set.labels.map(\.displayName) == ["airplane", "bicycle", "dining table", "tvmonitor"])
        #expect(set.labels[0].synonyms == ["aircraft", "plane"])
        #expect(set.labels[3].synonyms == ["television", "monitor"])
        #expect(set.labels[2].line == 6)
        #expect(set.templateHint == "natural")
        #expect(set.name == "test")
    }

    @Test func acceptsCRLFAndByteOrderMark() throws {
        let bytes = Data([0xEF, 0xBB, 0xBF]) + Data("dog\r\ncat => house cat\r\n\r\n".utf8)
        let set = try LabelFile.parse(bytes, file: "crlf.txt", name: "crlf")
        #expect(set.labels.map(\.rawName) == ["dog", "cat"])
        #expect(set.labels[1].displayName == "house cat")
    }

    @Test func anyUnicodeLabelWorks() throws {
        let set = try parse("café\n自行车 => 自行车 | bicycle\n🐕 => dog emoji\nnaïve résumé\n")
        #expect(set.labels.map(\.rawName) == ["café", "自行车", "🐕", "naïve résumé"])
        #expect(set.labels[2].displayName == "dog emoji")
    }

    @Test func duplicateRawNameNamesBothLines() {
        let e = error("dog\ncat\ndog => hound\n")
        #expect(e?.line == 3)
        #expect(e?.description == "labels.txt:3: duplicate raw name 'dog' (first on line 1). Each label may appear once.")
    }

    @Test func duplicateDisplayNameIsCaseInsensitive() {
        let e = error("tvmonitor => TV\ntelevision => tv\n")
        #expect(e?.line == 2)
        #expect(e?.message.contains("duplicate display name") == true)
    }

    @Test func emptyNameAndEmptyDisplayName() {
        #expect(error(" => dining table\n")?.message.contains("empty label name") == true)
        #expect(error("dog =>\n")?.message.contains("'=>' must be followed by a display name") == true)
        #expect(error("dog =>   # nothing\n")?.line == 1)
        #expect(error("dog |\n")?.message.contains("synonyms") == true)
    }

    @Test func notUTF8NamesTheLine() {
        let bytes = Data("dog\ncat\n".utf8) + Data([0x63, 0xFF, 0x0A])
        do {
            _ = try LabelFile.parse(bytes, file: "latin1.txt", name: "x")
            Issue.record("expected an error")
        } catch let error as LabelFileError {
            #expect(error.line == 3)
            #expect(error.description.hasPrefix("latin1.txt:3: the file is not valid UTF-8"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func emptyFileIsAnError() {
        #expect(error("# only comments\n\n")?.message.contains("no labels") == true)
    }

    @Test func missingFileSaysSo() {
        #expect(throws: LabelFileError.self) { try LabelFile.load("/nonexistent/labels.txt") }
    }

    @Test func setIsNamedAfterTheStemUnlessNamed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("my-domain.txt").path
        try "a\nb\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try LabelFile.load(path).name == "my-domain")
        #expect(try LabelFile.load(path, name: "other").name == "other")
        #expect(try LabelFile.load(path).sourceSHA256 == SHA256.hex(Data("a\nb\n".utf8)))
    }

    @Test func sha256MatchesKnownVectors() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let million = String(repeating: "a", count: 1_000_000)
        #expect(SHA256.hex(million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// The shipped label files: every benchmark dataset, raw names exactly as the datasets spell them.
    @Test func shippedLabelFilesMatchTheDatasets() throws {
        guard let shared = Repo.shared else {
            loudSkip("../shared/data/label-sets.json is not beside this checkout, so the shipped label files cannot be compared with it")
            return
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: shared + "/data/label-sets.json"))
        let sets = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let files = [
            "voc2007": "voc", "coco2014": "coco", "nuswide": "nuswide", "pa100k": "pa100k", "rapv1": "rapv1", "peta": "peta",
            "mlrsnet": "mlrsnet", "multiscene-clean": "multiscene-clean", "ucm-aid-multilabel": "ucm-aid-multilabel",
        ]
        for (key, file) in files {
            let entry = try #require(sets[key] as? [String: Any], "\(key) missing from label-sets.json")
            let classes = try #require(entry["classes"] as? [String])
            let set = try LabelFile.load(Repo.path("labels/\(file).txt"))
            #expect(set.labels.map(\.rawName) == classes, "labels/\(file).txt differs from \(key)")
            #expect(set.templateHint == (entry["domain"] as? String), "labels/\(file).txt names the wrong template")
        }
    }

    @Test func shippedDisplayNamesReadWell() throws {
        func display(_ file: String, _ raw: String) throws -> String? {
            try LabelFile.load(Repo.path("labels/\(file).txt")).labels.first { $0.rawName == raw }?.displayName
        }
        #expect(try display("voc", "diningtable") == "dining table")
        #expect(try display("peta", "upperBodyLogo") == "logo on upper-body clothing")
        #expect(try display("rapv1", "Pusing") == "pushing")
        #expect(try display("mlrsnet", "habor") == "harbor")
    }

    /// issue 10 C9: "dog\0cat" was stored as "dog" and the run stayed failed; control characters are refused.
    @Test func controlCharactersAreRefusedWithTheLine() throws {
        for bad in ["dog\u{0}cat", "dog\u{1B}[31m", "do\rg", "dog\u{7F}"] {
            let failure = error("cat\n\(bad)\nbird\n")
            #expect(failure?.line == 2, "\(bad.debugDescription)")
            #expect(failure?.message.contains("control character") == true)
        }
        #expect(try parse("dog\t=> big dog\n").labels[0].displayName == "big dog")
    }
}
