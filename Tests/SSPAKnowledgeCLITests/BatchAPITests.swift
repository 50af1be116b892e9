import Foundation
#if canImport(FoundationNetworking)
// `Data(contentsOf:)` on an http URL (the test servers' /_stats) needs FoundationNetworking loaded; the binaries under
// test no longer link it (their HTTP is libcurl, opened on first use).
import FoundationNetworking
#endif
import Testing
import TestSupport

/// The Batch API double (Tests/Support/batch_api.py), started per test on a free loopback port. It answers each
/// request through `upstream`: the fault server's canned answers for control flow, the real llama.cpp server for
/// what a model writes.
final class BatchAPIDouble: @unchecked Sendable {
    let process: Process
    let port: Int
    var base: String { "http://127.0.0.1:\(port)" }

    init(upstream: String, _ extra: [String] = []) throws {
        (process, port) = try startLoopbackServer("Tests/Support/batch_api.py", ["--upstream", upstream] + extra)
    }

    /// What the double saw: uploads, 429s, polls, downloads, and every batch as it stands.
    func stats() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(string: base + "/_stats")!)
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    func batches() throws -> [[String: Any]] { (try stats()["batches"] as? [[String: Any]]) ?? [] }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// `build --provider openai-batch` and `batch resume` against the double: upload, create, poll with backoff, download,
/// import; a 429 on upload, an expired batch, a refused batch, Ctrl-C and resume, and the key kept out of everything.
@Suite("Batch API round trip")
struct BatchAPITests {
    let labels = "# template: natural\ndog\ncat\ndiningtable => dining table\n"

    func build(_ double: BatchAPIDouble, labels: String, db: String, _ extra: [String] = [], environment: [String: String] = [:]) throws -> Run {
        try CLI.run(["build", "--labels", labels, "--provider", "openai-batch", "--endpoint", double.base, "--model", "m", "--db", db,
                     "--poll-interval", "0.05", "--poll-max", "0.2"] + extra, environment: environment)
    }

    @Test func aBuildRunsAsOneBatchThroughA429OnUploadAndIsResumable() throws {
        let server = try FaultServer(extra: ["--canned"])
        defer { server.stop() }
        let double = try BatchAPIDouble(upstream: server.url("ok"), ["--upload-429", "1", "--polls-per-status", "2", "--key", "sk-batch-secret-0123456789"])
        defer { double.stop() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try writeLabels(labels, in: dir, name: "pets.txt")
        let db = dir.appendingPathComponent("knowledge.db").path
        let key = ["OPENAI_API_KEY": "sk-batch-secret-0123456789"]

        let run = try build(double, labels: file, db: db, environment: key)
        #expect(run.status == 0, "\(run)")
        // The 429 was retried after its Retry-After; the statuses were shown as they changed.
        #expect(run.stderr.contains("retrying upload") && run.stderr.contains("429"), "\(run.stderr)")
        for status in ["in_progress", "finalizing", "completed, 3/3 done"] { #expect(run.stderr.contains(status), "\(status) shown") }
        #expect(run.stderr.contains("pets (run 1): 3 complete"), "\(run.stderr)")
        let stats = try double.stats()
        #expect(stats["uploads"] as? Int == 2 && stats["upload_429"] as? Int == 1)
        #expect(try double.batches().count == 1, "one batch for one label set")
        #expect((stats["polls"] as? Int ?? 0) >= 5, "polled until completed")

        #expect(try sqlite(db, "select status, requests, collected_at is not null from remote_batches") == "completed|3|1")
        #expect(try sqlite(db, "select count(*) from label_status where state = 'complete' and attempts = 1") == "3")
        #expect(try sqlite(db, "select status from runs") == "complete")
        #expect(try sqlite(db, "select provider || ' ' || endpoint from runs") == "openai-batch \(double.base)")
        // Full provenance per label: the request line, the engine's ids, the raw response.
        #expect(try sqlite(db, "select count(*) from requests where json_extract(metadata, '$.custom_id') like 'sspa-r1-l%-a1' and json_extract(metadata, '$.engine_request_id') like 'req_%' and raw_response like '%chat.completion%'") == "3")
        #expect(try sqlite(db, "select count(*) from descriptions_view where display_name = 'dining table'") == "5")
        // The key went only into the Authorization header.
        #expect(!run.stderr.contains("sk-batch-secret"))
        #expect(try sqlite(db, ".dump").contains("sk-batch-secret") == false)

        // The same build again: nothing to send, no upload, still exit 0.
        let again = try build(double, labels: file, db: db, environment: key)
        #expect(again.status == 0, "\(again)")
        #expect(try double.stats()["uploads"] as? Int == 2, "nothing uploaded again")
    }

    @Test func requestsAnExpiredBatchNeverRanGoOutAgainWithoutCountingAnAttempt() throws {
        let server = try FaultServer(extra: ["--canned"])
        defer { server.stop() }
        // The first batch expires after one request ran: the other two come back in its error file as batch_expired.
        let double = try BatchAPIDouble(upstream: server.url("ok"), ["--expire", "1:1"])
        defer { double.stop() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try writeLabels(labels, in: dir, name: "pets.txt")
        let db = dir.appendingPathComponent("knowledge.db").path

        let run = try build(double, labels: file, db: db)
        #expect(run.status == 0, "\(run)")
        #expect(run.stderr.contains("expired, 1/3 done") && run.stderr.contains("2 never ran"), "\(run.stderr)")
        #expect(try sqlite(db, "select id || ':' || status from remote_batches order by id") == "batch_0001:expired\nbatch_0002:completed")
        // The second round sent the same requests (attempt 1, same seed), and each label has one attempt.
        #expect(try sqlite(db, "select custom_id from batch_requests where remote_batch_id = 'batch_0002' order by custom_id") == "sspa-r1-l1-a1\nsspa-r1-l2-a1")
        #expect(try sqlite(db, "select count(*) from label_status where state = 'complete' and attempts = 1") == "3")
        let second = try #require(try double.batches().last)
        #expect((second["request_counts"] as? [String: Any])?["total"] as? Int == 2)
    }

    @Test func aRefusedBatchNamesTheAPIsReasonAndLosesNothing() throws {
        let server = try FaultServer(extra: ["--canned"])
        defer { server.stop() }
        let double = try BatchAPIDouble(upstream: server.url("ok"), ["--fail-batches", "1"])
        defer { double.stop() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try writeLabels(labels, in: dir, name: "pets.txt")
        let db = dir.appendingPathComponent("knowledge.db").path

        let failed = try build(double, labels: file, db: db)
        #expect(failed.status != 0, "\(failed)")
        #expect(failed.stderr.contains("batch batch_0001 failed: line 1: The batch was refused"), "\(failed.stderr)")
        // Nothing awaits the refused batch: the next build sends every label again, and the double takes it.
        #expect(try sqlite(db, "select count(*) from batch_requests where result is null") == "0")
        let retry = try build(double, labels: file, db: db)
        #expect(retry.status == 0, "\(retry)")
        #expect(try sqlite(db, "select count(*) from label_status where state = 'complete'") == "3")
    }

    @Test func aWrongKeyIsNamedWithoutBeingShown() throws {
        let server = try FaultServer(extra: ["--canned"])
        defer { server.stop() }
        let double = try BatchAPIDouble(upstream: server.url("ok"), ["--key", "sk-right-0123456789"])
        defer { double.stop() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try writeLabels(labels, in: dir, name: "pets.txt")
        let db = dir.appendingPathComponent("knowledge.db").path
        let run = try build(double, labels: file, db: db, environment: ["OPENAI_API_KEY": "sk-wrong-9876543210"])
        #expect(run.status == 69, "\(run)")
        #expect(run.stderr.contains("rejected the credentials") && run.stderr.contains("OPENAI_API_KEY"), "\(run.stderr)")
        #expect(!run.stderr.contains("sk-wrong-9876543210"))
        #expect(!FileManager.default.fileExists(atPath: db), "a build that sent nothing leaves no store behind")
    }

    @Test func ctrlCLeavesTheBatchRunningAndResumeCollectsIt() throws {
        let server = try FaultServer(extra: ["--canned"])
        defer { server.stop() }
        let double = try BatchAPIDouble(upstream: server.url("ok"), ["--polls-per-status", "40"])
        defer { double.stop() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try writeLabels(labels, in: dir, name: "pets.txt")
        let db = dir.appendingPathComponent("knowledge.db").path

        let (process, out, err) = try CLI.start(["build", "--labels", file, "--provider", "openai-batch", "--endpoint", double.base, "--model", "m",
                                                 "--db", db, "--poll-interval", "0.05", "--poll-max", "0.05"])
        let deadline = Date().addingTimeInterval(20)
        while try double.batches().isEmpty, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        Thread.sleep(forTimeInterval: 0.3)
        kill(process.processIdentifier, SIGINT)
        let interrupted = CLI.finish(process, out, err)
        #expect(interrupted.status == 130, "\(interrupted)")
        #expect(interrupted.stderr.contains("batch batch_0001 (3 requests") && interrupted.stderr.contains("keeps running"), "\(interrupted.stderr)")
        #expect(interrupted.stderr.contains("sspa-knowledge batch resume batch_0001 --db \(db)"), "\(interrupted.stderr)")
        #expect(try sqlite(db, "select count(*) from remote_batches where collected_at is null") == "1")

        let unknown = try CLI.run(["batch", "resume", "batch_nope", "--db", db])
        #expect(unknown.status == 65 && unknown.stderr.contains("batch 'batch_nope' was not created from"), "\(unknown)")

        let resumed = try CLI.run(["batch", "resume", "batch_0001", "--db", db, "--poll-interval", "0.05", "--poll-max", "0.05"])
        #expect(resumed.status == 0, "\(resumed)")
        #expect(resumed.stderr.contains("pets (run 1): 3 complete"), "\(resumed.stderr)")
        #expect(try double.batches().count == 1, "resume collected the batch instead of sending it again")
        #expect(try sqlite(db, "select count(*) from label_status where state = 'complete'") == "3")
        #expect(try sqlite(db, "select status from runs") == "complete")
        let nothing = try CLI.run(["batch", "resume", "--db", db])
        #expect(nothing.status == 0 && nothing.stderr.contains("no batch of"), "\(nothing)")
    }

    @Test(.enabled(if: LLM.available, "needs the real LLM (SSPA_TEST_LLM_URL)"))
    func aRoundTripThroughTheDoubleOnTheRealModel() throws {
        let double = try BatchAPIDouble(upstream: LLM.url!)
        defer { double.stop() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try writeLabels("# template: natural\nbicycle\nbird\nboat\nbottle\n", in: dir, name: "voc4.txt")
        let db = dir.appendingPathComponent("knowledge.db").path
        // llama-cpp-python's server takes no json_schema response_format (OpenAI's Batch API does): plain text here.
        let run = try build(double, labels: file, db: db, ["--count", "3", "--max-tokens", "150", "--max-attempts", "2", "--structured", "off"])
        #expect(run.status == 0, "\(run)")
        #expect(try sqlite(db, "select count(*) from label_status where state in ('complete', 'short')") == "4")
        #expect(Int(try sqlite(db, "select count(*) from descriptions")) ?? 0 >= 4)
        // Every batch the build created was collected; a short label went out again with the next seed.
        #expect(try sqlite(db, "select count(*) from remote_batches where collected_at is null or status <> 'completed'") == "0")
        #expect(try sqlite(db, "select count(*) from batch_requests b join label_status s on s.run_id = b.run_id and s.label_id = b.label_id where b.attempt > s.attempts") == "0")
    }
}
