import Foundation
import Testing
import TestSupport

/// `batch export` → an engine → `batch import`. The engine is Tests/Support/replay_batch.py, which plays vLLM's
/// run-batch: against the fault server's canned answers for control flow, and against the real llama.cpp server for
/// what a model writes.
@Suite("Batch jobs")
struct BatchTests {
    func replay(_ input: String, _ output: String, baseURL: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Repo.path("Tests/Support/replay_batch.py"), "-i", input, "-o", output, "--base-url", baseURL]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "replay_batch.py failed")
    }

    func lines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    @Test func exportWritesBatchAPILinesAndImportIsIdempotent() throws {
        let server = try FaultServer(extra: ["--canned"])
        defer { server.stop() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let labels = try writeLabels("# template: natural\ndog\ncat\ndiningtable => dining table\n", in: dir, name: "pets.txt")
        let db = dir.appendingPathComponent("knowledge.db").path
        let requests = dir.appendingPathComponent("requests.jsonl").path

        let export = try CLI.run(["batch", "export", "--labels", labels, "--model", "m", "--db", db, "-o", requests, "--seed", "7"])
        #expect(export.status == 0, "\(export)")
        #expect(export.stderr.contains("prompt tokens"), "an estimate before anything is sent")
        let input = try lines(requests)
        #expect(input.count == 3)
        for (index, line) in input.enumerated() {
            #expect(line["custom_id"] as? String == "sspa-r1-l\(index)-a1")
            #expect(line["method"] as? String == "POST" && line["url"] as? String == "/v1/chat/completions")
            let body = try #require(line["body"] as? [String: Any])
            #expect(body["model"] as? String == "m" && body["seed"] as? Int == 7)
            #expect((body["messages"] as? [[String: Any]])?.first?["role"] as? String == "system")
        }
        // Exported, not answered: a second export has nothing to send.
        let again = try CLI.run(["batch", "export", "--labels", labels, "--model", "m", "--db", db, "-o", dir.appendingPathComponent("r2.jsonl").path, "--seed", "7"])
        #expect(again.stderr.contains("nothing to export") && again.stderr.contains("await"), "\(again)")

        let results = dir.appendingPathComponent("results.jsonl").path
        try replay(requests, results, baseURL: server.url("ok"))
        let imported = try CLI.run(["batch", "import", results, "--db", db])
        #expect(imported.status == 0, "\(imported)")
        #expect(imported.stderr.contains("3 imported"))
        #expect(try sqlite(db, "select count(*) from label_status where state = 'complete'") == "3")
        #expect(try sqlite(db, "select status from runs") == "complete")
        // Full provenance: the request, the raw response, the engine's ids.
        #expect(try sqlite(db, "select count(*) from requests where raw_response like '%chat.completion%' and json_extract(metadata, '$.engine_request_id') like 'replay-%' and json_extract(metadata, '$.custom_id') like 'sspa-r1-%' and prompt like '%\"role\":\"system\"%'") == "3")
        #expect(try sqlite(db, "select count(*) from descriptions_view where label = 'dog'") == "5")

        let before = try sqlite(db, ".dump")
        let twice = try CLI.run(["batch", "import", results, "--db", db])
        #expect(twice.status == 0 && twice.stderr.contains("0 imported, 3 already imported"), "\(twice)")
        #expect(try sqlite(db, ".dump") == before, "importing the same file twice changes nothing")
    }

    @Test func badLinesAreNamedAndTheRestImported() throws {
        let server = try FaultServer(extra: ["--canned"])
        defer { server.stop() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let labels = try writeLabels("dog\ncat\ncow\n", in: dir, name: "farm.txt")
        let db = dir.appendingPathComponent("knowledge.db").path
        let requests = dir.appendingPathComponent("requests.jsonl").path
        #expect(try CLI.run(["batch", "export", "--labels", labels, "--model", "m", "--db", db, "-o", requests]).status == 0)
        let results = dir.appendingPathComponent("results.jsonl").path
        try replay(requests, results, baseURL: server.url("ok"))
        var text = try String(contentsOfFile: results, encoding: .utf8).split(separator: "\n").map(String.init)
        // Line 2 (cat) becomes an engine error; then an unknown id, a line that is not JSON, and a truncated last line.
        text[1] = #"{"id":"batch_req_2","custom_id":"sspa-r1-l1-a1","response":null,"error":{"code":"server_error","message":"the engine fell over"}}"#
        text.insert(#"{"id":"x","custom_id":"not-ours-17","response":null,"error":null}"#, at: 2)
        text.insert("<html>oops</html>", at: 3)
        let cow = text.removeLast()
        text.append(String(cow.prefix(cow.count / 2)))
        try (text.joined(separator: "\n") + "\n").write(toFile: results, atomically: true, encoding: .utf8)

        let run = try CLI.run(["batch", "import", results, "--db", db])
        #expect(run.status == 65, "\(run)")
        #expect(run.stderr.contains("results.jsonl:3: custom_id 'not-ours-17' was not exported"), "\(run.stderr)")
        #expect(run.stderr.contains("results.jsonl:4: not a JSON object"))
        #expect(run.stderr.contains("results.jsonl:5: not a JSON object"))
        #expect(try sqlite(db, "select l.raw_name || ':' || s.state from label_status s join labels l on l.id = s.label_id order by l.position") == "dog:complete\ncat:failed")
        #expect(try sqlite(db, "select error from requests q join labels l on l.id = q.label_id where l.raw_name = 'cat'").contains("the engine fell over"))

        // cow's line was damaged, so it still awaits a result: the next export says so and leaves it out ...
        let waiting = try CLI.run(["batch", "export", "--labels", labels, "--model", "m", "--db", db, "-o", dir.appendingPathComponent("w.jsonl").path])
        #expect(waiting.stderr.contains("1 await the results") && waiting.stderr.contains("--resend"), "\(waiting)")
        // ... and --resend sends it again: cat with attempt 2 (the next seed), cow with attempt 1 once more.
        let next = dir.appendingPathComponent("next.jsonl").path
        #expect(try CLI.run(["batch", "export", "--labels", labels, "--model", "m", "--db", db, "-o", next, "--resend"]).status == 0)
        let ids = try lines(next).compactMap { $0["custom_id"] as? String }
        #expect(ids == ["sspa-r1-l1-a2", "sspa-r1-l2-a1"], "\(ids)")
        #expect(try lines(next).first.flatMap { ($0["body"] as? [String: Any])?["seed"] as? Int } == 1)
    }

    @Test(.enabled(if: LLM.available, "needs the real LLM (SSPA_TEST_LLM_URL)"))
    func aRoundTripThroughTheRealModel() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let labels = try writeLabels("# template: natural\nbicycle\nbird\nboat\nbottle\n", in: dir, name: "voc4.txt")
        let db = dir.appendingPathComponent("knowledge.db").path
        let requests = dir.appendingPathComponent("requests.jsonl").path
        // llama-cpp-python's server takes no json_schema response_format (vLLM and OpenAI do): plain text here.
        let options = ["--labels", labels, "--model", "smollm2", "--db", db, "--count", "3", "--max-tokens", "150", "--max-attempts", "2",
                       "--structured", "off"]
        #expect(try CLI.run(["batch", "export", "-o", requests] + options).status == 0)
        let results = dir.appendingPathComponent("results.jsonl").path
        try replay(requests, results, baseURL: LLM.url!)
        let imported = try CLI.run(["batch", "import", results, "--db", db])
        #expect(imported.status == 0, "\(imported)")
        #expect(try sqlite(db, "select count(*) from label_status where state in ('complete', 'short')") == "4")
        #expect(Int(try sqlite(db, "select count(*) from descriptions")) ?? 0 >= 4)
        // What SmolLM2 wrote was judged like a build's answers.
        #expect(try sqlite(db, "select count(*) from label_status s where s.descriptions <> (select count(*) from descriptions d where d.run_id = s.run_id and d.label_id = s.label_id and (d.flags = '' or d.flags = 'names-other-label'))") == "0")
        // A second round asks only for the short labels, with the next seed; after it nothing is left to export.
        let short = Int(try sqlite(db, "select count(*) from label_status where state = 'short'")) ?? 0
        let next = dir.appendingPathComponent("next.jsonl").path
        let export2 = try CLI.run(["batch", "export", "-o", next] + options)
        #expect(export2.status == 0)
        if short > 0 {
            #expect(try lines(next).allSatisfy { ($0["custom_id"] as? String)?.hasSuffix("-a2") == true })
            let results2 = dir.appendingPathComponent("results2.jsonl").path
            try replay(next, results2, baseURL: LLM.url!)
            #expect(try CLI.run(["batch", "import", results2, "--db", db]).status == 0)
        } else {
            #expect(export2.stderr.contains("nothing to export"))
        }
        let last = try CLI.run(["batch", "export", "-o", dir.appendingPathComponent("last.jsonl").path] + options)
        #expect(last.stderr.contains("nothing to export"), "\(last)")
    }
}
