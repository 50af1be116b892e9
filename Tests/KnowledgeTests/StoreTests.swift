import Foundation
import GRDB
import Tensor
import Testing
@testable import Knowledge
import TestSupport

/// Store tests run on an in-memory database and on a file, as GRDB's own tests do.
@Suite("Knowledge store")
struct StoreTests {
    enum Kind: String, CaseIterable { case memory, file }

    func makeStore(_ kind: Kind) throws -> (KnowledgeStore, URL?) {
        switch kind {
        case .memory: return (try KnowledgeStore(inMemory: ()), nil)
        case .file:
            let dir = try temporaryDirectory()
            return (try KnowledgeStore(path: dir.appendingPathComponent("knowledge.db").path), dir)
        }
    }

    static let set = LabelSet(name: "pets", labels: [
        Label(rawName: "dog", displayName: "dog"), Label(rawName: "cat", displayName: "house cat", synonyms: ["kitty"]),
    ], templateHint: "natural", source: "pets.txt", sourceSHA256: "abc")

    static let spec = RunSpec(
        labelSet: "pets", provider: "openai", endpoint: "http://127.0.0.1:1", model: "m", templateName: "natural",
        templateSHA256: "t", sampling: Sampling(temperature: 0.5, seed: 3, maxTokens: 100, n: 1), descriptionsWanted: 2,
        demos: 3, demoSelection: .fixed, structured: .auto)

    func outcome(_ label: Label, _ texts: [String], state: LabelState = .complete) -> LabelOutcome {
        let prompt = RenderedPrompt(messages: [ChatMessage(role: .user, content: "Describe \(label.displayName)")], demonstrations: ["keyboard"])
        let response = KnowledgeResponse(
            .choices([.init(content: "{}", finishReason: "stop")]), promptTokens: 10, completionTokens: 20,
            systemFingerprint: "fp_1", raw: "{\"raw\":true}", httpStatus: 200, latency: 0.25, metadata: ["structured": "json_object"])
        let request = RequestRecord(attempt: 1, prompt: prompt, sampling: Self.spec.sampling, response: response, parseFormat: "json-object")
        return LabelOutcome(label: label, requests: [request], descriptions: texts.map { (0, $0, QualityVerdict()) }, state: state, wanted: 2)
    }

    /// The label inserts bind through SQLite's C interface: every kind of value lands with its type (an empty string
    /// is text, not NULL; a missing value is NULL), and a broken constraint is a `DatabaseError` that rolls the group back.
    @Test func labelRowsStoreEachValueWithItsTypeAndAConstraintStopsTheGroup() throws {
        let (store, dir) = try makeStore(.file)
        defer { dir.map { try? FileManager.default.removeItem(at: $0) } }
        let (setID, ids) = try store.saveLabelSet(Self.set)
        let run = try store.beginRun(Self.spec, labelSetID: setID, force: false, toolVersion: "test")
        var dog = outcome(Self.set.labels[0], ["A dog barks.", "Ünïcödé 🐕 \"quoted\"\n\ttext."])
        dog.requests[0].flag = ""
        dog.requests[0].response?.httpStatus = nil
        try store.saveOutcomes([(dog, ids[0])], runID: run)
        let row = try store.queue.read { db in
            try Row.fetchOne(db, sql: """
                SELECT typeof(attempt) a, typeof(flag) f, flag, typeof(http_status) h, typeof(latency_ms) l, latency_ms, typeof(error) e,
                       json_valid(params) p, prompt_tokens FROM requests WHERE run_id = ?
                """, arguments: [run])!
        }
        #expect(row["a"] as String == "integer" && row["f"] as String == "text" && row["flag"] as String == "")
        #expect(row["h"] as String == "null" && row["e"] as String == "null" && row["l"] as String == "real")
        #expect(row["latency_ms"] as Double == 250 && row["p"] as Int == 1 && row["prompt_tokens"] as Int == 10)
        let texts = try store.queue.read { try String.fetchAll($0, sql: "SELECT text FROM descriptions WHERE run_id = ? ORDER BY position", arguments: [run]) }
        #expect(texts == dog.descriptions.map(\.text))

        // A description the schema refuses (blank) fails the whole group, the good label with it, and says why.
        let cat = outcome(Self.set.labels[1], ["A cat naps.", "   "])
        let good = outcome(Self.set.labels[0], ["A dog runs."])
        do {
            try store.saveOutcomes([(good, ids[0]), (cat, ids[1])], runID: run)
            Issue.record("a blank description was stored")
        } catch let error as DatabaseError {
            #expect(error.resultCode == .SQLITE_CONSTRAINT, "\(error)")
            #expect(error.sql?.contains("INSERT INTO descriptions") == true)
        }
        #expect(try store.labelStates(runID: run) == ["dog": .complete], "the failed group changed nothing")
        #expect(try store.queue.read { try String.fetchAll($0, sql: "SELECT text FROM descriptions WHERE run_id = ? ORDER BY position", arguments: [run]) } == texts)
    }

    /// In a run the build opened empty, labels are written without looking for rows to replace; a label handed over
    /// twice still ends with its last outcome only, and a run that was not empty has its labels' rows replaced.
    @Test func aRunOpenedEmptyStoresEachLabelOnceAndALabelWrittenAgainReplacesItself() async throws {
        let (store, dir) = try makeStore(.file)
        defer { dir.map { try? FileManager.default.removeItem(at: $0) } }
        let (setID, ids) = try store.saveLabelSet(Self.set)
        let opened = try store.openRun(Self.spec, labelSetID: setID, force: false, toolVersion: "test")
        #expect(opened.empty)
        func texts() throws -> [String] {
            try store.queue.read { try String.fetchAll($0, sql: "SELECT text FROM descriptions WHERE run_id = ? ORDER BY label_id, position", arguments: [opened.id]) }
        }
        func requests() throws -> Int {
            try store.queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM requests WHERE run_id = ?", arguments: [opened.id])! }
        }
        let writer = OutcomeWriter(store: store, linger: .zero, fullGroup: 1) { _ in }
        writer.register { .init(runID: opened.id, labelIDs: ids, startedEmpty: opened.empty) }
        writer.submit(outcome(Self.set.labels[0], ["A dog barks.", "A dog runs."]), position: 0)
        #expect(await writer.drain() == nil)
        writer.submit(outcome(Self.set.labels[0], ["A dog sits.", "A dog naps."]), position: 0)
        writer.submit(outcome(Self.set.labels[1], ["A cat naps."]), position: 1)
        #expect(await writer.drain() == nil)
        #expect(try texts() == ["A dog sits.", "A dog naps.", "A cat naps."])
        #expect(try requests() == 2)

        // The same run opened again is not empty (its labels' rows are replaced); with `force` it is emptied first.
        let again = try store.openRun(Self.spec, labelSetID: setID, force: false, toolVersion: "test")
        #expect(again.id == opened.id && !again.empty)
        #expect(try texts().count == 3, "opening the run again keeps its rows")
        let forced = try store.openRun(Self.spec, labelSetID: setID, force: true, toolVersion: "test")
        #expect(forced.id == opened.id && forced.empty)
        #expect(try texts().isEmpty && requests() == 0)
    }

    @Test(arguments: Kind.allCases)
    func migrationsAreNamedAndApplyOnce(kind: Kind) throws {
        let (store, dir) = try makeStore(kind)
        defer { dir.map { try? FileManager.default.removeItem(at: $0) } }
        let names = try store.appliedMigrations()
        #expect(names == ["v1-label-sets", "v1-runs-and-descriptions", "v1-descriptions-view", "v2-embeddings", "v3-encoder-identity", "v4-endpoint-credentials-removed", "v5-description-flags", "v6-batch-requests", "v7-remote-batches"])
        if let dir {
            // Reopening an existing file applies nothing new and keeps the data.
            try store.saveLabelSet(Self.set)
            let again = try KnowledgeStore(path: dir.appendingPathComponent("knowledge.db").path)
            #expect(try again.appliedMigrations() == names)
            #expect(try again.labelSetNames() == ["pets"])
        }
    }

    /// The build's writer waits for more labels before a commit (a wave of answers in one transaction), but a build
    /// that ends or stops does not wait: `drain` writes what is pending at once, and every label handed over is stored.
    @Test func theGroupWriterStoresEveryLabelAtOnceWhenDrainedDespiteItsLinger() async throws {
        let (store, dir) = try makeStore(.file)
        defer { dir.map { try? FileManager.default.removeItem(at: $0) } }
        let (setID, ids) = try store.saveLabelSet(Self.set)
        let run = try store.beginRun(Self.spec, labelSetID: setID, force: false, toolVersion: "test")
        let saved = LockedCounter()
        // A linger far longer than the test may take: only the drain can end the wait. The time of each store is
        // taken on the writer's thread (the test's own task may wait long for a thread while other tests run).
        let writer = OutcomeWriter(store: store, linger: .seconds(600), fullGroup: 64) { _ in saved.increment(at: .now) }
        writer.register { .init(runID: run, labelIDs: ids) }
        writer.submit(outcome(Self.set.labels[0], ["A dog barks.", "A dog runs."]), position: 0)
        writer.submit(outcome(Self.set.labels[1], ["A cat naps.", "A cat purrs."]), position: 1)
        let drained = ContinuousClock.now
        #expect(await writer.drain() == nil)
        #expect(saved.value == 2)
        #expect(saved.last.map { $0 - drained < .seconds(60) } == true, "the labels were stored only after the linger")
        #expect(try store.labelStates(runID: run) == ["dog": .complete, "cat": .complete])

        // A full group is written without waiting for the linger either.
        let full = OutcomeWriter(store: store, linger: .seconds(600), fullGroup: 2) { _ in saved.increment() }
        full.register { .init(runID: run, labelIDs: ids) }
        full.submit(outcome(Self.set.labels[0], ["A dog sits.", "A dog naps."]), position: 0)
        full.submit(outcome(Self.set.labels[1], ["A cat sits.", "A cat jumps."]), position: 1)
        for _ in 0..<600 where saved.value < 4 { try await Task.sleep(nanoseconds: 50_000_000) }
        #expect(saved.value == 4, "a full group waited for the linger")
        #expect(await full.drain() == nil)
    }

    /// Groups linger long while labels are still starting (fewer, larger commits), but once the last label has
    /// started, what waits longer than the final linger is written without waiting for the rest of the build.
    @Test func onceTheLastLabelHasStartedTheWriterStopsLingering() async throws {
        let (store, dir) = try makeStore(.file)
        defer { dir.map { try? FileManager.default.removeItem(at: $0) } }
        let (setID, ids) = try store.saveLabelSet(Self.set)
        let run = try store.beginRun(Self.spec, labelSetID: setID, force: false, toolVersion: "test")
        let saved = LockedCounter()
        let writer = OutcomeWriter(store: store, linger: .seconds(600), finalLinger: .milliseconds(40), fullGroup: 64) { _ in
            saved.increment()
        }
        #expect(writer.finalLinger == .milliseconds(40))
        writer.register { .init(runID: run, labelIDs: ids) }
        writer.submit(outcome(Self.set.labels[0], ["A dog barks.", "A dog runs."]), position: 0)
        writer.submit(outcome(Self.set.labels[1], ["A cat naps.", "A cat purrs."]), position: 1)
        try await Task.sleep(nanoseconds: 200_000_000)
        #expect(saved.value == 0, "a group was written before its linger ended")
        writer.lastLabelStarted()
        for _ in 0..<600 where saved.value < 2 { try await Task.sleep(nanoseconds: 50_000_000) }
        #expect(saved.value == 2, "the waiting group was not written when the last label started")
        #expect(try store.labelStates(runID: run) == ["dog": .complete, "cat": .complete])
        #expect(await writer.drain() == nil)
        // The final linger is never longer than the linger.
        #expect(OutcomeWriter(store: store, linger: .zero, finalLinger: .seconds(1)) { _ in }.finalLinger == .zero)
    }

    @Test(arguments: Kind.allCases)
    func outcomesAreSavedWithProvenanceAndReplacedNotDuplicated(kind: Kind) throws {
        let (store, dir) = try makeStore(kind)
        defer { dir.map { try? FileManager.default.removeItem(at: $0) } }
        let (setID, ids) = try store.saveLabelSet(Self.set)
        let run = try store.beginRun(Self.spec, labelSetID: setID, force: false, toolVersion: "test")
        try store.saveOutcome(outcome(Self.set.labels[0], ["A dog barks.", "A dog runs."]), runID: run, labelID: ids[0])
        try store.saveOutcome(outcome(Self.set.labels[0], ["A dog sits.", "A dog naps."]), runID: run, labelID: ids[0])
        let knowledge = try store.knowledge(labelSet: "pets", runID: run)
        #expect(knowledge.map(\.descriptions) == [["A dog sits.", "A dog naps."], []])
        #expect(knowledge.map(\.state) == ["complete", nil])
        try store.queue.read { db in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM requests") == 1)
            let row = try #require(try Row.fetchOne(db, sql: "SELECT * FROM descriptions_view WHERE label = 'dog' AND position = 0"))
            #expect(row["description"] == "A dog sits.")
            #expect(row["provider"] == "openai")
            #expect(row["model"] == "m")
            #expect(row["seed"] == 3)
            #expect(row["temperature"] == 0.5)
            #expect(row["template_sha256"] == "t")
            let request = try #require(try Row.fetchOne(db, sql: "SELECT * FROM requests"))
            #expect(request["system_fingerprint"] == "fp_1")
            #expect(request["prompt_tokens"] == 10)
            #expect(request["finish_reason"] == "stop")
            #expect((request["prompt"] as String).contains("Describe dog"))
        }
    }

    @Test(arguments: Kind.allCases)
    func theSameSpecResumesTheSameRunAndForceClearsIt(kind: Kind) throws {
        let (store, dir) = try makeStore(kind)
        defer { dir.map { try? FileManager.default.removeItem(at: $0) } }
        let (setID, ids) = try store.saveLabelSet(Self.set)
        let first = try store.beginRun(Self.spec, labelSetID: setID, force: false, toolVersion: "test")
        try store.saveOutcome(outcome(Self.set.labels[0], ["A dog barks."], state: .short), runID: first, labelID: ids[0])
        #expect(try store.beginRun(Self.spec, labelSetID: setID, force: false, toolVersion: "test") == first)
        #expect(try store.labelStates(runID: first) == ["dog": .short])
        var other = Self.spec
        other.sampling.seed = 4
        #expect(try store.beginRun(other, labelSetID: setID, force: false, toolVersion: "test") != first)
        #expect(try store.beginRun(Self.spec, labelSetID: setID, force: true, toolVersion: "test") == first)
        #expect(try store.labelStates(runID: first).isEmpty)
    }

    @Test(arguments: Kind.allCases)
    func aChangedLabelFileUpdatesButNeverDropsKnowledge(kind: Kind) throws {
        let (store, dir) = try makeStore(kind)
        defer { dir.map { try? FileManager.default.removeItem(at: $0) } }
        let (setID, ids) = try store.saveLabelSet(Self.set)
        let run = try store.beginRun(Self.spec, labelSetID: setID, force: false, toolVersion: "test")
        try store.saveOutcome(outcome(Self.set.labels[1], ["A house cat purrs."]), runID: run, labelID: ids[1])

        var reordered = Self.set
        reordered.labels = [Label(rawName: "cat", displayName: "cat"), Label(rawName: "dog"), Label(rawName: "bird")]
        let (_, newIDs) = try store.saveLabelSet(reordered)
        #expect(newIDs[0] == ids[1], "an existing label keeps its id, and so its knowledge")
        #expect(try store.labelSet(named: "pets")?.labels.map(\.displayName) == ["cat", "dog", "bird"])

        var shrunk = Self.set
        shrunk.labels = [Label(rawName: "dog")]
        #expect(throws: StoreError.self) { try store.saveLabelSet(shrunk) }
        #expect(try store.labelSet(named: "pets")?.labels.count == 3, "a refused update changes nothing")
    }

    /// A new store gets its schema from one script (`StoreSchema.current`) instead of replaying every migration; the
    /// script must be exactly what the migrations build. After adding a migration, rewrite it with
    /// `SSPA_WRITE_SCHEMA=1 swift test --filter aNewStoreGetsTheSchemaTheMigrationsBuild`.
    @Test func aNewStoreGetsTheSchemaTheMigrationsBuild() throws {
        let migrated = try DatabaseQueue()
        try StoreSchema.migrator.migrate(migrated)
        let schema = try migrated.read(StoreSchema.currentSchema)
        if ProcessInfo.processInfo.environment["SSPA_WRITE_SCHEMA"] == "1" {
            let file = """
                // Written by `SSPA_WRITE_SCHEMA=1 swift test --filter aNewStoreGetsTheSchemaTheMigrationsBuild` from the
                // migrations in StoreSchema.swift, which the test checks it equals. Do not edit by hand.
                extension StoreSchema {
                    /// The schema every migration together builds, for a new store (`StoreSchema.migrate`).
                    static let current = #\"\"\"
                \(schema)
                \"\"\"#
                }

                """
            try file.write(toFile: Repo.path("Sources/Knowledge/Store/StoreSchema+Current.swift"), atomically: true, encoding: .utf8)
        }
        #expect(StoreSchema.current == schema, "StoreSchema+Current.swift is not what the migrations build: rewrite it (see this test's comment)")

        // Statements a new store runs to get its schema, and the schema and migrations it ends with.
        func created(_ migrate: (DatabaseQueue) throws -> Void) throws -> (statements: Int, schema: [Row], applied: [String]) {
            var configuration = Configuration()
            let counter = LockedCounter()
            configuration.prepareDatabase { db in db.trace(options: .statement) { _ in counter.increment() } }
            let queue = try DatabaseQueue(configuration: configuration)
            let before = counter.value
            try migrate(queue)
            let statements = counter.value - before
            return try queue.read { db in
                (statements, try Row.fetchAll(db, sql: "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"),
                 try StoreSchema.migrator.appliedMigrations(db))
            }
        }
        let oneByOne = try created { try StoreSchema.migrator.migrate($0) }
        let script = try created { try StoreSchema.migrate($0) }
        #expect(script.schema == oneByOne.schema)
        #expect(script.applied == oneByOne.applied && script.applied == StoreSchema.migrator.migrations)
        #expect(oneByOne.schema.count > 20)
        #expect(script.statements * 2 < oneByOne.statements, "the new store took the one-script path (\(script.statements) statements against \(oneByOne.statements))")
    }

    @Test func readingAnOlderStoreMigratesItOnce() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("old.db").path
        try StoreSchema.migrator.migrate(DatabaseQueue(path: path), upTo: "v1-descriptions-view")
        let store = try KnowledgeStore(path: path, readOnly: true)
        #expect(try store.appliedMigrations().last == "v7-remote-batches")
        #expect(try store.labelSetNames().isEmpty)
    }

    @Test func aFileThatIsNotSQLiteGetsAClearError() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("notes.db").path
        try String(repeating: "not a database\n", count: 100).write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try KnowledgeStore(path: path)
            Issue.record("opened a text file as a store")
        } catch let error as StoreError {
            #expect(error.message.contains("is not a SQLite database"))
            #expect(error.message.contains(path))
        }
        do {
            _ = try KnowledgeStore(path: dir.appendingPathComponent("missing.db").path, readOnly: true)
            Issue.record("opened a missing store read-only")
        } catch let error as StoreError {
            #expect(error.message.contains("sspa-knowledge build"))
        }
    }

    @Test func aSecondBuildLockFailsAtOnceAndTheLockDiesWithItsHolder() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("knowledge.db").path
        let first = try BuildLock(path: path)
        do {
            _ = try BuildLock(path: path)
            Issue.record("two locks on one store")
        } catch let error as StoreError {
            #expect(error.message.contains("another sspa-knowledge build is writing to it"))
        }
        first.release()
        _ = try BuildLock(path: path)
    }

    @Test func exportsKeepLabelOrderAndEscape() {
        let knowledge = [
            LabelKnowledge(label: "z", displayName: "zebra", synonyms: [], runID: 1, state: "complete", descriptions: ["A zebra has \"stripes\", black and white."]),
            LabelKnowledge(label: "a", displayName: "ant", synonyms: [], runID: 1, state: "complete", descriptions: ["An ant is tiny.\nReally."]),
        ]
        let cupl = KnowledgeExporter.render(knowledge, labelSet: "s", format: .cupl)
        #expect(cupl.range(of: "zebra")!.lowerBound < cupl.range(of: "ant")!.lowerBound)
        let object = try? JSONSerialization.jsonObject(with: Data(cupl.utf8)) as? [String: [String]]
        #expect(object?["zebra"] == ["A zebra has \"stripes\", black and white."])
        let csv = KnowledgeExporter.render(knowledge, labelSet: "s", format: .csv)
        #expect(csv.contains("s,z,zebra,0,\"A zebra has \"\"stripes\"\", black and white.\""))
        let jsonl = KnowledgeExporter.render(knowledge, labelSet: "s", format: .jsonl).split(separator: "\n")
        #expect(jsonl.count == 2)
        #expect(jsonl.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })
    }
}

/// A counter the writer's thread increments and a test reads.
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var lastTime: ContinuousClock.Instant?
    func increment(at time: ContinuousClock.Instant? = nil) { lock.withLock { count += 1; lastTime = time ?? lastTime } }
    var value: Int { lock.withLock { count } }
    /// When the last increment that said its time happened.
    var last: ContinuousClock.Instant? { lock.withLock { lastTime } }
}
