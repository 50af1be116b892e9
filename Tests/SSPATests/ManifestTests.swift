import Foundation
import Testing
@testable import SSPA

@Suite("Dataset manifests")
struct ManifestTests {
    let labels: [SSPA.Manifest.LabelNames] = [
        .init(raw: "diningtable", display: "dining table", synonyms: ["table"]),
        .init(raw: "dog", display: "dog"),
        .init(raw: "tvmonitor", display: "tv monitor", synonyms: ["television"]),
    ]
    let base = URL(fileURLWithPath: "/data/voc")

    @Test func jsonByNameIndexAndSynonym() throws {
        let json = #"{"classes": ["diningtable", "dog", "tvmonitor"], "images": [["a.jpg", ["dog", "Dining Table"]], ["sub/b.jpg", [2]], ["c.jpg", ["television", "-dog"]]]}"#
        let manifest = try SSPA.Manifest.parse(Data(json.utf8), json: true, base: base, labels: labels, partial: false, source: "m.json")
        #expect(manifest.entries.map(\.path.path) == ["/data/voc/a.jpg", "/data/voc/sub/b.jpg", "/data/voc/c.jpg"])
        #expect(manifest.entries.map(\.labels) == [[1, 1, 0], [0, 0, 1], [0, 0, 1]])
    }

    @Test func csvWithPartialLabels() throws {
        let csv = "path,labels\r\nimg 1.jpg,dog;-table\n/abs/x.png,\n# a comment\ny.png,tv monitor\n"
        let manifest = try SSPA.Manifest.parse(Data(csv.utf8), json: false, base: base, labels: labels, partial: true, source: "m.csv")
        #expect(manifest.entries.map(\.path.path) == ["/data/voc/img 1.jpg", "/abs/x.png", "/data/voc/y.png"])
        // Listed: 1; marked "-": 0; everything else unknown under --partial.
        #expect(manifest.entries.map(\.labels) == [[0, 1, -1], [-1, -1, -1], [-1, -1, 1]])
    }

    @Test func unknownLabelsAreListedWithWhereTheyAre() {
        let csv = "a.jpg,dog;unicorn\nb.jpg,dragon;unicorn\n"
        do {
            _ = try SSPA.Manifest.parse(Data(csv.utf8), json: false, base: base, labels: labels, partial: false, source: "m.csv")
            Issue.record("unknown labels were accepted")
        } catch let error as SSPA.ManifestError {
            #expect(error.message.hasPrefix("m.csv: 2 label(s) not in the label set: 'unicorn' (line 1), 'dragon' (line 2)"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func malformedManifestsSayWhatIsWrong() {
        func message(_ text: String, json: Bool) -> String? {
            do {
                _ = try SSPA.Manifest.parse(Data(text.utf8), json: json, base: base, labels: labels, partial: false, source: "m")
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(message(#"{"images": [["a.jpg"]]}"#, json: true)?.contains("image 1 is not [path, [label, ...]]") == true)
        #expect(message("[1, 2]", json: true)?.contains("not a JSON object") == true)
        #expect(message("a.jpg dog\n", json: false)?.contains("m:1: expected `path,label;label`") == true)
        #expect(message("\n\n", json: false)?.contains("no images listed") == true)
    }

    /// Issue 10 E16: RFC 4180 quoting in CSV manifests (a quoted path may hold commas and doubled quotes).
    @Test func csvQuotedFieldsAreUnescaped() throws {
        let csv = "\"say \"\"hi\"\", ok.jpg\",dog\n\"a,b.jpg\",\"dog;table\"\n"
        let manifest = try SSPA.Manifest.parse(Data(csv.utf8), json: false, base: base, labels: labels, partial: false, source: "m.csv")
        #expect(manifest.entries.map(\.path.path) == ["/data/voc/say \"hi\", ok.jpg", "/data/voc/a,b.jpg"])
        #expect(manifest.entries.map(\.labels) == [[0, 1, 0], [1, 1, 0]])
    }

    /// Issue 10 E16: `cat;-cat` and one image listed twice with other labels are errors naming the lines.
    @Test func contradictionsAreErrorsNamingTheLines() {
        func message(_ text: String, json: Bool = false) -> String? {
            do {
                _ = try SSPA.Manifest.parse(Data(text.utf8), json: json, base: base, labels: labels, partial: true, source: "m.csv")
                return nil
            } catch {
                return "\(error)"
            }
        }
        let both = message("a.jpg,cat;dog\nb.jpg,dog;-dog\n".replacingOccurrences(of: "cat;", with: ""))
        #expect(both?.contains("m.csv: line 2 lists both 'dog' and '-dog'") == true, "\(both ?? "accepted")")
        let twice = message("a.jpg,dog\nb.jpg,table\n./a.jpg,television\n")
        #expect(twice?.contains("lines 1 and 3 list the same image ./a.jpg with different labels") == true, "\(twice ?? "accepted")")
        #expect(message("a.jpg,dog\na.jpg,dog\n") == nil, "the same labels twice is no contradiction")
        let json = message(#"{"images": [["a.jpg", ["dog", "-Dog"]]]}"#, json: true)
        #expect(json?.contains("image 1 lists both 'dog' and '-Dog'") == true, "\(json ?? "accepted")")
    }
}
