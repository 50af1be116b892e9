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
