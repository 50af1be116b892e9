import Foundation
import Tensor
import Testing
@testable import Knowledge
import TestSupport

@Suite("Templates and prompts")
struct PromptTests {
    static let locator = TemplateLocator(searchDirectories: [Repo.path("templates")])

    func template(_ name: String) throws -> PromptTemplate { try Self.locator.load(name) }

    func label(_ file: String, _ raw: String) throws -> Label {
        try #require(try LabelFile.load(Repo.path("labels/\(file).txt")).labels.first { $0.rawName == raw })
    }

    @Test(arguments: ["natural", "pedestrian", "remote-sensing"])
    func shippedTemplatesAreComplete(name: String) throws {
        let t = try template(name)
        #expect(t.name == name)
        #expect(t.demonstrations.count >= 8)
        #expect(t.demonstrations.allSatisfy { $0.descriptions.count >= t.descriptionCount })
        #expect(t.demonstrationCount >= 1 && t.demonstrationCount < t.demonstrations.count)
        #expect(t.sha256 == SHA256.hex(try String(contentsOfFile: Repo.path("templates/\(name).yaml"), encoding: .utf8)))
    }

    /// Snapshots of exactly what is sent, one per domain. Re-record with SNAPSHOT_RECORD=1.
    @Test(arguments: [("natural", "voc", "dog"), ("pedestrian", "peta", "upperBodyLogo"), ("remote-sensing", "mlrsnet", "airport")])
    func renderedPromptsMatchSnapshots(templateName: String, file: String, raw: String) throws {
        let prompt = PromptBuilder(template: try template(templateName)).render(for: try label(file, raw))
        let text = prompt.messages.map { "[\($0.role.rawValue)]\n\($0.content)" }.joined(separator: "\n\n") + "\n"
        if let failure = assertSnapshot(text, named: "prompt-\(templateName)-\(raw)", in: "Tests/KnowledgeTests") { Issue.record(Comment(rawValue: failure)) }
    }

    @Test func demonstrationsAlternateBeforeTheQuery() throws {
        let prompt = PromptBuilder(template: try template("natural"), demos: 3).render(for: try label("voc", "dog"))
        #expect(prompt.messages.map(\.role) == [.system, .user, .assistant, .user, .assistant, .user, .assistant, .user])
        #expect(prompt.messages.last?.content.contains("\"dog\"") == true)
        // Each demonstration answer is the JSON the output instruction asks for.
        let answer = try #require(prompt.messages[2].content.data(using: .utf8))
        let object = try #require(try JSONSerialization.jsonObject(with: answer) as? [String: [String]])
        #expect(object["descriptions"]?.count == 5)
    }

    @Test func changingTheCountOrTemplateAfterwardsChangesTheDemonstrations() throws {
        let t = try template("natural")
        var builder = PromptBuilder(template: t, demos: 2)
        let dog = try label("voc", "dog")
        func answers(_ prompt: RenderedPrompt) throws -> [Int] {
            try prompt.messages.filter { $0.role == .assistant }.map { message in
                let object = try JSONSerialization.jsonObject(with: Data(message.content.utf8)) as? [String: [String]]
                return object?["descriptions"]?.count ?? -1
            }
        }
        #expect(try answers(builder.render(for: dog)) == [5, 5])
        builder.count = 2
        #expect(try answers(builder.render(for: dog)) == [2, 2])
        #expect(builder.render(for: dog) == PromptBuilder(template: t, demos: 2, count: 2).render(for: dog))
        var other = t
        other.demonstrations[0].descriptions[0] = "A changed first sentence."
        builder.template = other
        #expect(builder.render(for: dog).messages[2].content.contains("A changed first sentence."))
    }

    @Test func theQueriedLabelIsNeverItsOwnDemonstration() throws {
        let t = try template("natural")
        let demoLabel = t.demonstrations[0].label
        for selection in DemoSelection.allCases {
            let builder = PromptBuilder(template: t, demos: t.demonstrations.count, selection: selection, seed: 7)
            let shown = builder.render(for: Label(rawName: demoLabel)).demonstrations
            #expect(!shown.contains(demoLabel), "\(selection) showed \(demoLabel) for itself")
            #expect(shown.count == t.demonstrations.count - 1)
            // A synonym naming the demonstration excludes it too.
            let viaSynonym = builder.render(for: Label(rawName: "x1", displayName: "something", synonyms: [demoLabel])).demonstrations
            #expect(!viaSynonym.contains(demoLabel))
        }
    }

    /// A prompt's JSON is joined from pieces written once per demonstration; it must be the bytes of its messages
    /// written whole, for every template, selection, count and label (names that need escaping, a demonstration's
    /// own label, no system prompt, no demonstrations).
    @Test func aPromptsJSONJoinedFromPiecesIsItsMessagesWrittenWhole() throws {
        var cases = 0
        for name in ["natural", "pedestrian", "remote-sensing"] {
            var t = try template(name)
            let labels = [Label(rawName: "dog"), Label(rawName: "a \"quoted\"\\label\twith\ncontrols é 🐕", displayName: "odd"),
                          Label(rawName: t.demonstrations[0].label), Label(rawName: "x", displayName: "y", synonyms: ["z", "w"])]
            for system in [t.system, ""] {
                t.system = system
                for selection in DemoSelection.allCases {
                    for demos in [0, 1, t.demonstrations.count] {
                        let builder = PromptBuilder(template: t, demos: demos, selection: selection, seed: 3, count: 2)
                        for label in labels {
                            let prompt = builder.render(for: label)
                            #expect(prompt.encoded == Array(try JSONValue.messages(prompt.messages).data()), "\(name) \(selection) \(demos) \(label.rawName)")
                            #expect(prompt.encoded == RenderedPrompt(messages: prompt.messages, demonstrations: prompt.demonstrations).encoded)
                            // A build indexes the demonstrations' answers by the labels the prompt names.
                            #expect(prompt.demonstrations == builder.chooseDemonstrations(for: label).map(\.label))
                            cases += 1
                        }
                    }
                }
            }
        }
        #expect(cases == 3 * 2 * DemoSelection.allCases.count * 3 * 4)
    }

    @Test func renderingIsDeterministicAndSeeded() throws {
        let t = try template("natural")
        let dog = try label("voc", "dog")
        let a = PromptBuilder(template: t, demos: 3, selection: .random, seed: 1).render(for: dog)
        let b = PromptBuilder(template: t, demos: 3, selection: .random, seed: 1).render(for: dog)
        #expect(a == b)
        let draws = Set((0..<8).map { PromptBuilder(template: t, demos: 3, selection: .random, seed: UInt64($0)).render(for: dog).demonstrations })
        #expect(draws.count > 1, "random selection ignores the seed")
    }

    @Test func similarSelectionPrefersCloseNames() throws {
        var t = try template("natural")
        t.demonstrations = [
            .init(label: "kettle", descriptions: ["A kettle is metal."]),
            .init(label: "sports car", descriptions: ["A sports car is low."]),
            .init(label: "teapot", descriptions: ["A teapot is round."]),
        ]
        let shown = PromptBuilder(template: t, demos: 1, selection: .similar).render(for: Label(rawName: "car")).demonstrations
        #expect(shown == ["sports car"])
    }

    @Test func unknownVariablesAndMissingKeysAreErrors() throws {
        let base = try String(contentsOfFile: Repo.path("templates/natural.yaml"), encoding: .utf8)
        let typo = base.replacingOccurrences(of: "{{display_name}}", with: "{{display}}")
        #expect(throws: TemplateError.self) { try PromptTemplate.parse(typo, source: "typo.yaml", defaultName: "typo") }
        do {
            _ = try PromptTemplate.parse(typo, source: "typo.yaml", defaultName: "typo")
        } catch let error as TemplateError {
            #expect(error.description.contains("typo.yaml: unknown variable {{display}}"))
        }
        do {
            _ = try PromptTemplate.parse("name: x\ndomain: y\n", source: "short.yaml", defaultName: "x")
            Issue.record("a template without its keys loaded")
        } catch let error as TemplateError {
            #expect(error.description.contains("missing key"))
        }
    }

    /// Templates are read without a YAML decoder: each shipped one reads as before, and each kind of mistake gets a
    /// message naming the key, the line and what was expected.
    @Test func templateMistakesNameTheKeyTheLineAndWhatWasExpected() throws {
        let base = try String(contentsOfFile: Repo.path("templates/natural.yaml"), encoding: .utf8)
        let natural = try PromptTemplate.parse(base, source: "natural.yaml", defaultName: "x")
        #expect(natural.descriptionCount > 0 && natural.demonstrations.count > 2 && natural.demonstrations.allSatisfy { !$0.descriptions.isEmpty })
        #expect(!natural.system.isEmpty && !natural.question.isEmpty && natural.name != "x")
        func message(_ text: String) -> String {
            do {
                _ = try PromptTemplate.parse(text, source: "t.yaml", defaultName: "fallback")
                return "loaded"
            } catch let error as TemplateError {
                return error.description
            } catch {
                return "unexpected \(error)"
            }
        }
        func replacing(_ line: String, with new: String) -> String {
            let lines = base.components(separatedBy: "\n")
            let index = lines.firstIndex { $0.hasPrefix(line) }!
            return (lines[..<index] + [new] + lines[(index + 1)...]).joined(separator: "\n")
        }
        let countLine = base.components(separatedBy: "\n").firstIndex { $0.hasPrefix("description_count:") }! + 1
        #expect(message(replacing("description_count:", with: "description_count: five"))
                == "t.yaml: wrong type at 'description_count' (line \(countLine)): expected a whole number, found 'five'.")
        #expect(message(replacing("domain:", with: "domain: [a, b]")).hasPrefix("t.yaml: wrong type at 'domain' (line "))
        #expect(message(replacing("domain:", with: "domain: [a, b]")).hasSuffix("expected text, found a list."))
        #expect(message("- just\n- a list\n") == "t.yaml: wrong type at '' (line 1): expected a mapping of keys to values, found a list.")
        #expect(message("") == "t.yaml: wrong type at '': expected a mapping of keys to values, found nothing.")
        #expect(message("key: [unclosed\n").hasPrefix("t.yaml: not valid YAML: "))
        #expect(message(base.replacingOccurrences(of: "descriptions:", with: "sentences:")).contains("missing key 'descriptions'"))
        // A null or missing name falls back to the file's; a quoted "null" is a name.
        for name in ["name: null", "name: ~", "name:"] {
            #expect(try PromptTemplate.parse(replacing("name:", with: name), source: "t.yaml", defaultName: "fallback").name == "fallback", "\(name)")
        }
        #expect(try PromptTemplate.parse(replacing("name:", with: "name: 'null'"), source: "t.yaml", defaultName: "fallback").name == "null")
    }

    @Test func aNameThatIsNoTemplateListsTheAvailableOnes() {
        do {
            _ = try Self.locator.path(for: "medical")
            Issue.record("found a template that does not exist")
        } catch let error as TemplateError {
            #expect(error.message.contains("Available: natural, pedestrian, remote-sensing"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
