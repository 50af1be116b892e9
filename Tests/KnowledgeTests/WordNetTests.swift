import Foundation
import Testing
@testable import Knowledge
import TestSupport

/// These read Debian's wordnet-base, which .ci/run installs.
let wordnetDirectory = "/usr/share/wordnet"
let wordnetAvailable: Bool = {
    let ok = FileManager.default.fileExists(atPath: wordnetDirectory + "/data.noun")
    if !ok { loudSkip("WordNet tests: \(wordnetDirectory)/data.noun is missing; install wordnet-base") }
    return ok
}()

@Suite("WordNet knowledge", .enabled(if: wordnetAvailable, "wordnet-base is not installed (apt-get install wordnet-base)"))
struct WordNetTests {
    static let directory = wordnetDirectory

    let knowledge = WordNetKnowledge(database: try! WordNetDatabase(directory: WordNetTests.directory))

    @Test func picksTheAnimalSenseOfDogInNaturalImages() throws {
        let sense = try #require(knowledge.sense(for: Label(rawName: "dog"), domain: "natural images"))
        #expect(sense.synset.words.first?.word == "dog")
        #expect(sense.synset.lexFile == 5) // noun.animal
        #expect(sense.synset.senseKey(for: "dog") == "dog%1:05:00::")
        let sentences = knowledge.describe(Label(rawName: "dog"), sense: sense, count: 5)
        #expect(sentences.count == 5)
        #expect(sentences.allSatisfy { ResponseParser.mentions($0, Label(rawName: "dog")) })
        #expect(sentences[0].hasPrefix("A dog is a member of the genus Canis"))
    }

    @Test func synonymsSteerTheSense() throws {
        let monitor = Label(rawName: "tvmonitor", displayName: "tv monitor", synonyms: ["television", "monitor"])
        let sense = try #require(knowledge.sense(for: monitor, domain: "natural images"))
        #expect(sense.synset.lexFile == 6, "expected an artifact sense, got \(sense.synset.words.map(\.word))")
    }

    @Test func theDomainSteersTheSense() throws {
        // "apron" is clothing for pedestrians and paved ground at an airport from above (the MultiScene label line).
        let line = Label(rawName: "Apron", displayName: "airport apron", synonyms: ["apron", "aircraft parking area"])
        let aerial = try #require(knowledge.sense(for: line, domain: "aerial and satellite images"))
        #expect(aerial.synset.definition.contains("airport") || aerial.synset.definition.contains("aircraft"), "\(aerial.synset.definition)")
        let worn = try #require(knowledge.sense(for: Label(rawName: "apron"), domain: "pedestrian surveillance images"))
        #expect(worn.synset.definition.contains("garment"), "\(worn.synset.definition)")
    }

    @Test func camelCaseAndHeadNounsAreTried() throws {
        let logo = Label(rawName: "upperBodyLogo", displayName: "logo on upper-body clothing")
        let sense = try #require(knowledge.sense(for: logo, domain: "pedestrian surveillance images"))
        #expect(sense.synset.words.contains { $0.word == "logo" })
        let sentences = knowledge.describe(logo, sense: sense, count: 5)
        #expect(!sentences.isEmpty)
        #expect(sentences.allSatisfy { ResponseParser.mentions($0, logo) })
    }

    @Test func unknownLabelsGetNoKnowledgeNotInventedKnowledge() async throws {
        let provider = try KnowledgeProvider.wordnet(directory: Self.directory)
        let label = Label(rawName: "qwzxv", displayName: "qwzxv blorft")
        let request = KnowledgeRequest(label: label, prompt: RenderedPrompt(messages: [], demonstrations: []), sampling: Sampling(), count: 5, domain: "natural images")
        let response = try await provider.describe(request)
        guard case .none(let reason) = response.answer else { Issue.record("expected no knowledge, got \(response.answer)"); return }
        #expect(reason.contains("qwzxv blorft"))
    }

    @Test func pluralRawNamesFindTheirBaseForm() {
        #expect(!knowledge.database.synsets(for: "buildings").isEmpty)
        #expect(knowledge.database.isPlural("buildings"))
        #expect(!knowledge.database.isPlural("building"))
        #expect(!knowledge.database.synsets(for: "mice").isEmpty) // noun.exc
    }

    @Test func aMissingDatabaseSaysHowToInstallIt() {
        do {
            _ = try WordNetDatabase(directory: "/nonexistent/wordnet")
            Issue.record("opened a missing database")
        } catch let error as WordNetError {
            #expect(error.message.contains("apt-get install wordnet-base"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
