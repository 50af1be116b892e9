import CLIP
import Foundation
import GRDB
import Testing
@testable import Knowledge
import TestSupport

/// The quality flags every stored description carries (issue: knowledge you can trust, section 3).
@Suite("Description quality flags")
struct DescriptionQualityTests {
    static let dog = Label(rawName: "dog", synonyms: ["puppy"])
    static let set = [dog, Label(rawName: "cat"), Label(rawName: "sports ball"), Label(rawName: "ball"), Label(rawName: "bus")]
    static let giraffe = [
        "A giraffe is a very tall animal with a long neck, long thin legs and small horn-like ossicones.",
        "Giraffes have a tan coat covered with large brown patches separated by pale lines.",
    ].map { (label: "giraffe", text: $0) }

    func assess(_ text: String, label: Label = dog, demos: [(label: String, text: String)] = [], earlier: [String] = [],
                onTopic: Bool = true, cutOff: Bool = false) -> QualityVerdict {
        DescriptionQuality.assess(text, context: .init(label: label, in: Self.set), demonstrations: demos, earlier: earlier,
                                  answerOnTopic: onTopic, cutOff: cutOff)
    }

    @Test func aDemonstrationCopiedWithTheLabelSwappedIsCopied() {
        let copied = assess("A dog is a very tall animal with a long neck, long thin legs and small horn-like ossicones.", demos: Self.giraffe)
        #expect(copied.flags == [.copied])
        #expect(copied.copiedShare == 1)
        // Half the trigrams taken over is the threshold.
        let half = assess("Dogs have a tan coat covered with large brown patches and a wagging tail that never stops.", demos: Self.giraffe)
        #expect(half.copiedShare >= 0.5 && half.flags.contains(.copied), "\(half.copiedShare)")
        // Sharing the frame "a dog is a" is not copying.
        let own = assess("A dog is a four-legged animal with a wet nose, floppy ears and a wagging tail.", demos: Self.giraffe)
        #expect(own.copiedShare < 0.3 && own.flags.isEmpty, "\(own)")
        // Without demonstrations (an offline source) nothing is copied.
        #expect(assess(Self.giraffe[0].text).copiedShare == 0)
    }

    @Test func aNearRepeatOfAnEarlierDescriptionIsTheDuplicate() {
        let earlier = ["A dog has a wet black nose and floppy ears.", "Dogs are often walked on a leash in a park."]
        let repeat_ = assess("A dog has floppy ears and a wet, black nose!", earlier: earlier)
        #expect(repeat_.flags == [.duplicate] && repeat_.duplicateOf == 1)
        #expect(assess("A dog chases a stick across green grass in a garden.", earlier: earlier).flags.isEmpty)
        // The first of two near-twins stays clean.
        #expect(assess(earlier[0], earlier: []).flags.isEmpty)
    }

    @Test func offTopicIsJudgedPerAnswer() {
        let context = DescriptionQuality.Context(label: Self.dog, in: Self.set)
        #expect(DescriptionQuality.onTopic(["A dog is a loyal animal.", "It has four legs."], context))
        #expect(!DescriptionQuality.onTopic(["It has four legs.", "The sky is blue."], context))
        #expect(DescriptionQuality.onTopic(["Puppies chew shoes."], context), "a synonym names the label")
        let related = DescriptionQuality.Context(label: Self.dog, in: Self.set, related: ["canine"])
        #expect(DescriptionQuality.onTopic(["A canine has sharp teeth."], related), "a WordNet relation names it")
        #expect(assess("It has four legs.", onTopic: false).flags == [.offTopic])
        #expect(assess("It has four legs.", onTopic: true).flags.isEmpty)
    }

    @Test(.enabled(if: wordnetAvailable, "wordnet-base is not installed"))
    func wordNetRelationsCountAsNamingTheLabel() throws {
        let wordnet = try WordNetDatabase(directory: wordnetDirectory)
        let dog = wordnet.relatedWords(for: Label(rawName: "dog"))
        #expect(dog.contains("canine") && dog.contains("puppy") && dog.contains("corgi"), "hypernyms and hyponyms")
        let plane = wordnet.relatedWords(for: Label(rawName: "aeroplane", displayName: "airplane"))
        #expect(plane.contains("fuselage") || plane.contains("wing"), "parts")
        #expect(!dog.contains("thing") && !dog.contains("the"))
        let parsed = ResponseParser.parse(#"{"descriptions": ["A canine with a fluffy coat.", "It has four legs."]}"#,
                                          label: Label(rawName: "dog"), related: dog)
        #expect(parsed.flag == nil && parsed.descriptions.count == 2)
    }

    @Test func namingAnotherLabelIsReportedUnlessItContrasts() {
        let chase = assess("A dog often chases a cat across the yard.")
        #expect(chase.flags == [.namesOtherLabel] && chase.otherLabels == ["cat"])
        #expect(chase.usable, "names-other-label alone does not keep a description out")
        #expect(assess("Unlike a cat, a dog greets people at the door.").flags.isEmpty)
        #expect(assess("A dog is much smaller than a bus.").flags.isEmpty)
        // The label's own name is taken out first: "sports ball" does not name "ball".
        let ball = assess("A sports ball is round and often lies on a grass field.", label: Label(rawName: "sports ball"))
        #expect(ball.flags.isEmpty, "\(ball)")
    }

    @Test func fragmentsAreIncomplete() {
        #expect(assess("A dog has a long tail and").flags == [.incomplete])
        #expect(assess("A dog has a long tail,").flags == [.incomplete])
        #expect(assess("Dog.").flags == [.incomplete])
        #expect(assess("A dog (a mammal is").flags == [.incomplete])
        // The last sentence of an answer cut at the token limit is incomplete unless it ends like a sentence.
        #expect(assess("A dog sits next to its owner on a wooden porch", cutOff: true).flags == [.incomplete])
        #expect(assess("A dog sits next to its owner on a wooden porch", cutOff: false).flags.isEmpty)
        #expect(assess("A dog sits next to its owner on a wooden porch.", cutOff: true).flags.isEmpty)
    }

    @Test func tooLongUsesATokenizerWhenOneIsAtHand() {
        let long = "A dog " + Array(repeating: "runs fast,", count: 30).joined(separator: " ") + " home."
        #expect(assess(long).flags.contains(.tooLong))
        #expect(!assess("A dog runs home.").flags.contains(.tooLong))
        let counted = DescriptionQuality.assess("A dog runs home.", context: .init(label: Self.dog, in: Self.set), demonstrations: [], earlier: [],
                                                answerOnTopic: true, cutOff: false, tokens: 80)
        #expect(counted.flags == [.tooLong] && counted.tokensCounted)
    }

    /// The estimate against the real CLIP tokenizer (the fixtures' vocabulary) on every description of the shipped
    /// knowledge.db: it must agree on over/under 77 for nearly all, and rarely pass what the tokenizer truncates.
    @Test func theTokenEstimateTracksCLIPsTokenizer() throws {
        let tokenizer = try CLIP.Tokenizer(directory: URL(fileURLWithPath: Repo.path("Tests/CLIPTests/Fixtures/checkpoints/tiny-gelu-fp16")))
        let texts = try DatabaseQueue(path: Repo.path("knowledge.db"), configuration: { var c = Configuration(); c.readonly = true; return c }())
            .read { try String.fetchAll($0, sql: "SELECT text FROM descriptions") }
        #expect(texts.count > 1000)
        var errors: [Double] = []
        var missedLong = 0
        for text in texts {
            let exact = tokenizer.tokenCount(text)
            let estimate = DescriptionQuality.estimatedTokens(text)
            errors.append(Double(estimate - exact) / Double(exact))
            if exact > 77, estimate <= 77 { missedLong += 1 }
        }
        errors.sort()
        let median = errors[errors.count / 2]
        print("token estimate vs CLIP tokenizer over \(texts.count) descriptions: median relative error \(String(format: "%+.3f", median)), 5th–95th percentile \(String(format: "%+.3f", errors[errors.count / 20]))…\(String(format: "%+.3f", errors[errors.count * 19 / 20])), \(missedLong) over 77 passed by the estimate")
        #expect(abs(median) < 0.1)
        #expect(errors[errors.count / 20] > -0.15, "the estimate rarely counts much less than the tokenizer")
        #expect(missedLong <= texts.count / 200)
    }

    @Test func theFlagColumnRoundTrips() {
        #expect(DescriptionFlag.column([.tooLong, .copied, .copied]) == "copied,too-long")
        #expect(DescriptionFlag.parse("copied,too-long,from-the-future") == [.copied, .tooLong])
        #expect(DescriptionFlag.parse("") == [] && DescriptionFlag.parse(nil) == [])
    }
}

/// The build loop with a fake provider: what it does with flagged answers (control flow only; what an LLM produces
/// is tested against SmolLM2 in LLMBuildTests).
@Suite("Building with quality flags")
struct QualityBuildTests {
    static let template = """
        name: t
        domain: natural images
        description_count: 2
        demonstration_count: 1
        system: Describe things.
        question: Describe {{display_name}} in {{count}} sentences.
        output_instruction: Answer in JSON.
        demonstrations:
          - label: giraffe
            descriptions:
              - A giraffe is a very tall animal with a long neck and long thin legs.
              - Giraffes have a tan coat covered with large brown patches.
          - label: keyboard
            descriptions:
              - A keyboard is a flat device covered with rows of plastic keys.
              - Keyboards are usually black or grey with a long space bar.
        """

    /// A provider that answers from a script, one answer per attempt (by seed), and counts its calls.
    func scripted(_ answers: [Int: String]) -> KnowledgeProvider {
        KnowledgeProvider(name: "openai", endpoint: "http://fake", model: "scripted") { request in
            let content = (answers[request.sampling.seed] ?? #"{"descriptions": []}"#)
                .replacingOccurrences(of: "Dog", with: request.label.rawName.capitalized).replacingOccurrences(of: "dog", with: request.label.rawName)
            return KnowledgeResponse(.choices([.init(content: content, finishReason: "stop")]), raw: content, latency: 0)
        }
    }

    func build(_ answers: [Int: String], attempts: Int = 3) async throws -> (KnowledgeStore, BuildSummary, URL) {
        let dir = try temporaryDirectory()
        let store = try KnowledgeStore(path: dir.appendingPathComponent("knowledge.db").path)
        let template = try PromptTemplate.parse(Self.template, source: "t.yaml", defaultName: "t")
        var options = BuildOptions()
        options.maxAttempts = attempts
        let set = LabelSet(name: "pets", labels: [Label(rawName: "dog"), Label(rawName: "cat")])
        let builder = KnowledgeBuilder(store: store, provider: scripted(answers), prompts: PromptBuilder(template: template),
                                       sampling: Sampling(seed: 1), options: options, toolVersion: "test")
        let summary = try await builder.run(set, structured: .auto) { _ in }
        return (store, summary, dir)
    }

    @Test func aCopiedAnswerIsAskedAgainAndKeptFlagged() async throws {
        let (store, summary, dir) = try await build([
            // Attempt 1 copies the demonstration with the label swapped.
            1: #"{"descriptions": ["A dog is a very tall animal with a long neck and long thin legs.", "Dogs have a tan coat covered with large brown patches."]}"#,
            // Attempt 2 answers in its own words.
            2: #"{"descriptions": ["A dog has floppy ears and a wet black nose.", "It often wags its tail beside its owner."]}"#,
        ])
        defer { try? FileManager.default.removeItem(at: dir) }
        let knowledge = try store.knowledge(labelSet: "pets", runID: summary.runID)
        let dog = try #require(knowledge.first { $0.label == "dog" })
        #expect(dog.state == "complete")
        #expect(dog.flags == [[.copied], [.copied], [], []], "\(dog.flags)")
        #expect(dog.used() == ["A dog has floppy ears and a wet black nose.", "It often wags its tail beside its owner."])
        #expect(summary.descriptions == 2 + 2 && summary.flagged == 2 + 2, "cat got the same answers: usable and flagged count apart")
        let attempts = try await store.queue.read { try Int.fetchOne($0, sql: "SELECT max(attempt) FROM requests q JOIN labels l ON l.id = q.label_id WHERE l.raw_name = 'dog'") }
        #expect(attempts == 2)
        // The view shows the flags to sqlite3 users.
        let viewFlags = try await store.queue.read { try String.fetchAll($0, sql: "SELECT flags FROM descriptions_view WHERE label = 'dog' ORDER BY position") }
        #expect(viewFlags == ["copied", "copied", "", ""])
        let quality = try await store.queue.read { try String.fetchOne($0, sql: "SELECT quality FROM descriptions WHERE flags = 'copied' LIMIT 1") }
        #expect(quality?.contains("\"copied_share\":1") == true, "\(quality ?? "nil")")
    }

    @Test func anAnswerThatNeverNamesTheLabelLeavesItShortAfterEveryAttempt() async throws {
        let offTopic = #"{"descriptions": ["The weather is nice today.", "Bananas are yellow."]}"#
        let (store, summary, dir) = try await build([1: offTopic, 2: offTopic], attempts: 2)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(summary.short.sorted() == ["cat", "dog"])
        let dog = try #require(try store.knowledge(labelSet: "pets", runID: summary.runID).first { $0.label == "dog" })
        #expect(dog.descriptions.count == 2, "kept once (the second answer repeats it exactly)")
        #expect(dog.flags.allSatisfy { $0.contains(.offTopic) } && dog.used().isEmpty)
        let report = KnowledgeValidator.validate(labelSet: "pets", runID: summary.runID, knowledge: try store.knowledge(labelSet: "pets", runID: summary.runID),
                                                 flagged: [], wanted: 2)
        #expect(report.rate(.offTopic) == 1 && report.usable == 0)
        #expect(report.findings.contains { $0.kind == "no-usable-descriptions" && $0.label == "dog" })
    }
}

/// A knowledge.db written before the flags existed gets them when it is opened.
@Suite("Flags for older stores")
struct QualityMigrationTests {
    @Test func anOlderStoreIsJudgedFromWhatItHolds() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("old.db").path
        let queue = try DatabaseQueue(path: path)
        try StoreSchema.migrator.migrate(queue, upTo: "v4-endpoint-credentials-removed")
        let prompt = #"[{"role":"system","content":"x"},{"role":"user","content":"giraffe?"},{"role":"assistant","content":"{\"descriptions\":[\"A giraffe is a very tall animal with a long neck and long thin legs.\"]}"},{"role":"user","content":"dog?"}]"#
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO label_sets VALUES (1, 'pets', 'pets.txt', 'x', NULL, 't', 't');
                INSERT INTO labels VALUES (1, 1, 0, 'dog', 'dog', '[]'), (2, 1, 1, 'cat', 'cat', '[]');
                INSERT INTO runs (id, run_key, label_set_id, provider, endpoint, model, template_name, template_sha256, temperature, seed, n,
                    max_tokens, descriptions_wanted, demos, demo_selection, structured, status, tool_version, created_at, updated_at)
                VALUES (1, 'k', 1, 'openai', 'http://h', 'm', 'natural', 'x', 0.7, 0, 1, 200, 3, 1, 'fixed', 'auto', 'complete', 'old', 't', 't');
                """)
            try db.execute(sql: """
                INSERT INTO requests (id, run_id, label_id, attempt, prompt, demonstrations, params, finish_reason, created_at)
                VALUES (1, 1, 1, 1, ?, '["giraffe"]', '{}', 'length', 't')
                """, arguments: [prompt])
            try db.execute(sql: """
                INSERT INTO descriptions (run_id, label_id, request_id, position, text, created_at) VALUES
                (1, 1, 1, 0, 'A dog is a very tall animal with a long neck and long thin legs.', 't'),
                (1, 1, 1, 1, 'A dog often sleeps next to a cat on the sofa.', 't'),
                (1, 1, 1, 2, 'A dog with a red collar sits on the', 't')
                """)
        }
        try queue.close()
        let store = try KnowledgeStore(path: path)
        let dog = try #require(try store.knowledge(labelSet: "pets", runID: 1).first)
        #expect(dog.flags == [[.copied], [.namesOtherLabel], [.incomplete]], "\(dog.flags)")
    }
}
