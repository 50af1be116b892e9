import Foundation
import Testing
@testable import Knowledge
import TestSupport

/// The control flow of a build (attempts, resampling, stopping, resume) with a fake provider. What an LLM writes is
/// tested against SmolLM2 in LLMBuildTests; here only what the build does with answers and errors.
@Suite("Build control flow with a fake provider")
struct LabelWorkerTests {
    /// Every request a fake provider saw: label and seed.
    final class Calls: @unchecked Sendable {
        private let lock = NSLock()
        private var calls: [(label: String, seed: Int)] = []
        func add(_ label: String, _ seed: Int) { lock.withLock { calls.append((label, seed)) } }
        var all: [(label: String, seed: Int)] { lock.withLock { calls } }
        func count(_ label: String) -> Int { all.filter { $0.label == label }.count }
    }

    static let template = """
        name: t
        domain: natural images
        description_count: 2
        demonstration_count: 0
        system: Describe things.
        question: Describe {{display_name}} in {{count}} sentences.
        output_instruction: Answer in JSON.
        demonstrations:
          - label: keyboard
            descriptions:
              - A keyboard is a flat device covered with rows of plastic keys.
              - Keyboards are usually black or grey with a long space bar.
        """

    /// Two good sentences about the label.
    static func good(_ label: String, _ seed: Int) -> String {
        #"{"descriptions": ["A \#(label) stands on four legs in a green field (\#(seed)).", "The \#(label) has a short coat and a long tail (\#(seed))."]}"#
    }

    func provider(_ calls: Calls, kind: KnowledgeProvider.Kind = .model,
                  answer: @escaping @Sendable (Label, Int) throws -> KnowledgeAnswer) -> KnowledgeProvider {
        KnowledgeProvider(name: kind == .model ? "openai" : "offline-fake", endpoint: "http://fake", model: "fake", kind: kind) { request in
            calls.add(request.label.rawName, request.sampling.seed)
            let answer = try answer(request.label, request.sampling.seed)
            return KnowledgeResponse(answer, raw: "\(answer)", latency: 0)
        }
    }

    func worker(_ provider: KnowledgeProvider, attempts: Int = 3) throws -> LabelWorker {
        let template = try PromptTemplate.parse(Self.template, source: "t.yaml", defaultName: "t")
        return LabelWorker(provider: provider, prompts: PromptBuilder(template: template), sampling: Sampling(seed: 10), maxAttempts: attempts)
    }

    static let labels = ["dog", "cat", "cow", "horse"].map { Label(rawName: $0) }

    @Test func eachAttemptUsesTheNextSeedUntilEnoughUsableDescriptions() async throws {
        let calls = Calls()
        // Seed 10: one sentence; seed 11: two more; enough after the second attempt.
        let fake = provider(calls) { label, seed in
            seed == 10 ? .choices([.init(content: #"{"descriptions": ["A dog has a wet nose."]}"#, finishReason: "stop")])
                       : .choices([.init(content: Self.good(label.rawName, seed), finishReason: "stop")])
        }
        let outcome = try #require(await worker(fake).run(Self.labels[0], in: Self.labels))
        #expect(outcome.state == .complete)
        #expect(calls.all.map(\.seed) == [10, 11])
        #expect(outcome.requests.map(\.attempt) == [1, 2])
        #expect(outcome.descriptions.count == 2, "the second answer's second sentence is not needed")
    }

    @Test func aFatalErrorEndsTheLabelAtOnce() async throws {
        let calls = Calls()
        let fake = provider(calls) { _, _ in throw ProviderError(.authentication, "the key was refused (HTTP 401)") }
        let outcome = try #require(await worker(fake).run(Self.labels[0], in: Self.labels))
        #expect(outcome.state == .failed && outcome.fatal)
        #expect(calls.all.count == 1)
        #expect(outcome.requests.first?.error == "the key was refused (HTTP 401)")
    }

    @Test func aTransientErrorIsFollowedByTheNextAttempt() async throws {
        let calls = Calls()
        let fake = provider(calls) { label, seed in
            if seed == 10 { throw ProviderError(.server, "HTTP 503", httpStatus: 503) }
            return .choices([.init(content: Self.good(label.rawName, seed), finishReason: "stop")])
        }
        let outcome = try #require(await worker(fake).run(Self.labels[0], in: Self.labels))
        #expect(outcome.state == .complete && !outcome.fatal)
        #expect(outcome.requests.map(\.errorStatus) == [503, nil])
    }

    @Test func noKnowledgeIsRecordedAfterOneRequest() async throws {
        let calls = Calls()
        let fake = provider(calls) { _, _ in .none(reason: "no fitting sense") }
        let outcome = try #require(await worker(fake).run(Self.labels[0], in: Self.labels))
        #expect(outcome.state == .none && outcome.message?.contains("no fitting sense") == true)
        #expect(calls.all.count == 1)
    }

    @Test func readyDescriptionsAreJudgedLikeParsedOnes() async throws {
        let calls = Calls()
        let fake = provider(calls, kind: .offline) { label, _ in
            .descriptions(["A \(label.rawName) is a domestic animal.", "A \(label.rawName) often chases a cat.", "It barks"])
        }
        let outcome = try #require(await worker(fake, attempts: 1).run(Self.labels[0], in: Self.labels))
        #expect(outcome.descriptions.map(\.verdict.flags) == [[], [.namesOtherLabel], [.incomplete]], "flagged ones are kept, marked")
        #expect(outcome.usable == 2 && outcome.state == .complete)
        #expect(outcome.requests.first?.parseFormat == "ready")
        #expect(outcome.requests.first?.sourceInput?.contains("\"names\"") == true, "an offline source's log keeps what it read")
    }

    @Test func cancellationReturnsNothing() async throws {
        let calls = Calls()
        let fake = provider(calls) { label, seed in .choices([.init(content: Self.good(label.rawName, seed), finishReason: "stop")]) }
        let worker = try worker(fake)
        let task = Task { await worker.run(Self.labels[0], in: Self.labels) }
        task.cancel()
        #expect(await task.value == nil)
    }

    // MARK: - The build loop

    func build(_ provider: KnowledgeProvider, dir: URL, _ configure: (inout BuildOptions) -> Void = { _ in }) async throws -> Result<BuildSummary, BuildStopped> {
        let store = try KnowledgeStore(path: dir.appendingPathComponent("knowledge.db").path)
        let template = try PromptTemplate.parse(Self.template, source: "t.yaml", defaultName: "t")
        var options = BuildOptions()
        options.jobs = 1
        configure(&options)
        let builder = KnowledgeBuilder(store: store, provider: provider, prompts: PromptBuilder(template: template),
                                       sampling: Sampling(seed: 10), options: options, toolVersion: "test")
        do {
            return .success(try await builder.run(LabelSet(name: "farm", labels: Self.labels), structured: .auto) { _ in })
        } catch let stopped as BuildStopped {
            return .failure(stopped)
        }
    }

    @Test func aFatalErrorStopsTheRunAndTheNextRunResumesWhereItStopped() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let calls = Calls()
        // "cow" (the third label) hits an exhausted quota once.
        let quota = Calls()
        let fake = provider(calls) { label, seed in
            if label.rawName == "cow", quota.all.isEmpty { quota.add("cow", seed); throw ProviderError(.quota, "quota exhausted") }
            return .choices([.init(content: Self.good(label.rawName, seed), finishReason: "stop")])
        }
        guard case .failure(let stopped) = try await build(fake, dir: dir) else { Issue.record("the run should stop"); return }
        #expect(stopped.reason == "quota exhausted" && !stopped.interrupted)
        #expect(stopped.summary.done == 3 && stopped.summary.complete == 2, "dog and cat are saved; horse never starts")
        #expect(calls.count("horse") == 0)
        // The same command again asks only for what is left.
        guard case .success(let resumed) = try await build(fake, dir: dir) else { Issue.record("the resumed run should finish"); return }
        #expect(resumed.skipped == 2 && resumed.complete == 2 && resumed.status == .complete)
        #expect(calls.count("dog") == 1 && calls.count("cow") == 2 && calls.count("horse") == 1)
    }

    @Test func labelsFailingInARowStopTheRun() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let calls = Calls()
        let fake = provider(calls) { _, _ in throw ProviderError(.server, "HTTP 500", httpStatus: 500) }
        guard case .failure(let stopped) = try await build(fake, dir: dir, { $0.maxConsecutiveFailures = 2; $0.maxAttempts = 1 }) else {
            Issue.record("the run should stop"); return
        }
        #expect(stopped.reason.hasPrefix("2 labels in a row failed"))
        #expect(stopped.summary.failed == ["dog", "cat"] && calls.all.count == 2)
    }

    @Test func resampleShortAsksOnlyTheShortLabelsAgain() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let calls = Calls()
        let shortOnce = Calls()
        // "cat" answers one sentence the first time round (two attempts), two after that.
        let fake = provider(calls) { label, seed in
            if label.rawName == "cat", shortOnce.all.count < 2 {
                shortOnce.add("cat", seed)
                return .choices([.init(content: #"{"descriptions": ["A cat sleeps in the sun."]}"#, finishReason: "stop")])
            }
            return .choices([.init(content: Self.good(label.rawName, seed), finishReason: "stop")])
        }
        guard case .success(let first) = try await build(fake, dir: dir, { $0.maxAttempts = 2 }) else { Issue.record("first run"); return }
        #expect(first.short == ["cat"])
        guard case .success(let again) = try await build(fake, dir: dir, { $0.maxAttempts = 2; $0.resampleShort = true }) else { Issue.record("resample"); return }
        #expect(again.skipped == 3 && again.complete == 1 && again.short.isEmpty)
        #expect(calls.count("dog") == 1 && calls.count("cat") == 3)
    }

    @Test func anOfflineSourceIsAskedOncePerLabelOneAtATime() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let calls = Calls()
        let fake = provider(calls, kind: .offline) { label, _ in .descriptions(["A \(label.rawName) grazes."]) }
        guard case .success(let summary) = try await build(fake, dir: dir, { $0.maxAttempts = 3; $0.jobs = 4 }) else { Issue.record("run"); return }
        #expect(summary.short.count == 4, "one sentence of two wanted, and asking again would give the same")
        #expect(calls.all.map(\.label) == ["dog", "cat", "cow", "horse"])
    }
}
