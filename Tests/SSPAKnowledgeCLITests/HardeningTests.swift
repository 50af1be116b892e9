import Foundation
import Testing
import TestSupport

/// Hostile inputs and partial failures (issue 10, the `sspa-knowledge` items): each is refused with one line naming
/// the file, key or option, or handled as a careful user expects; nothing is lost and nothing traps.
@Suite("sspa-knowledge hardening")
struct HardeningTests {
    static let checkpoint = Repo.path("Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu")

    /// A store with the VOC label set built offline, in a fresh folder.
    func builtStore() throws -> (URL, String) {
        let dir = try temporaryDirectory()
        let db = dir.appendingPathComponent("knowledge.db").path
        let run = try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db, "--quiet"])
        #expect(run.status == 0, "\(run)")
        return (dir, db)
    }

    /// The one `error:` line of a failed run (ArgumentParser's usage errors say `Error:`).
    func errorLines(_ run: Run) -> [String] {
        run.stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("error: ") || $0.hasPrefix("Error: ") }
    }

    // MARK: - B4

    @Test func credentialsInTheEndpointAreSentButNeverStoredOrPrinted() throws {
        let server = try FaultServer(extra: ["--canned"])
        defer { server.stop() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let labels = try writeLabels("dog\n", in: dir)
        let db = dir.appendingPathComponent("knowledge.db").path
        let secretURL = "http://alice:hunter2-PASSWORD@127.0.0.1:\(server.port)/s/ok~creds?api_key=QUERY-SECRET-42&team=vision"
        // No --model: the model listing goes through the same credentials.
        let run = try CLI.run(["build", "--labels", labels, "--db", db, "--endpoint", secretURL, "--max-attempts", "1"])
        #expect(run.status == 0, "\(run)")
        let list = try CLI.run(["list", "--db", db, "--json"])
        let dump = try sqlite(db, ".dump")
        for secret in ["hunter2", "QUERY-SECRET", "alice:"] {
            for (place, text) in [("output", run.stdout + run.stderr), ("list --json", list.stdout), ("knowledge.db", dump)] {
                #expect(!text.contains(secret), "\(secret) leaked into \(place)")
            }
        }
        #expect(try sqlite(db, "select distinct endpoint from runs") == "http://127.0.0.1:\(server.port)/s/ok~creds?team=vision")
        // Sent as the request needs it: userinfo as basic authorization, the query parameter on the URL.
        let sent = try server.requests(scenario: "ok~creds")
        #expect(!sent.isEmpty)
        for request in sent {
            let headers = request["headers"] as? [String: String] ?? [:]
            #expect((headers["Authorization"] ?? headers["authorization"]) == "Basic " + Data("alice:hunter2-PASSWORD".utf8).base64EncodedString())
            #expect((request["path"] as? String)?.contains("api_key=QUERY-SECRET-42") == true)
        }
        // A failing endpoint prints its URL without them.
        let failed = try CLI.run(["build", "--labels", labels, "--db", dir.appendingPathComponent("k2.db").path, "--model", "m",
                                  "--endpoint", "http://bob:s3cret-PASS@127.0.0.1:\(server.port)/s/401?token=TOKEN-SECRET-9"])
        #expect(failed.status == 1, "\(failed)")
        #expect(failed.stderr.contains("127.0.0.1:\(server.port)/s/401"), "\(failed)")
        #expect(!failed.stderr.contains("s3cret") && !failed.stderr.contains("TOKEN-SECRET"), "\(failed)")
        // A malformed URL is refused first, without echoing a credential.
        let malformed = try CLI.run(["build", "--labels", labels, "--db", db, "--endpoint", "ftp://carol:pw-SECRET@host"])
        #expect(malformed.status == 64 && !malformed.stderr.contains("pw-SECRET"), "\(malformed)")
    }

    // MARK: - C5

    @Test func aFixedCheckpointFileIsANewEncoderAndForceEncodesAgain() throws {
        let (dir, db) = try builtStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        let clip = dir.appendingPathComponent("clip").path
        try FileManager.default.copyItem(atPath: Self.checkpoint, toPath: clip)
        let first = try CLI.run(["encode", "--clip", clip, "--db", db])
        #expect(first.status == 0, "\(first)")
        // Same weights, another merges.txt (here only an extra blank line): not the same encoder.
        let merges = clip + "/merges.txt"
        try (String(contentsOfFile: merges, encoding: .utf8) + "\n").write(toFile: merges, atomically: true, encoding: .utf8)
        let second = try CLI.run(["encode", "--clip", clip, "--db", db])
        #expect(second.status == 0, "\(second)")
        #expect(second.stderr.contains(", 0 already stored"), "a changed merges.txt reused the old vectors: \(second)")
        #expect(try sqlite(db, "select count(*) from encoders") == "2")
        let forced = try CLI.run(["encode", "--clip", clip, "--db", db, "--force"])
        #expect(forced.status == 0 && forced.stderr.contains(", 0 reused)"), "\(forced)")
    }

    // MARK: - C7

    @Test func validateFailsOnNonFiniteVectors() throws {
        let (dir, db) = try builtStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try CLI.run(["encode", "--clip", Self.checkpoint, "--db", db, "--quiet"]).status == 0)
        #expect(try CLI.run(["validate", "--db", db]).status == 0)
        // What an older version stored from NaN weights.
        _ = try sqlite(db, "update knowledge_vectors set vector = x'0000c07f' || substr(vector, 5) where label_id = (select id from labels where raw_name = 'dog')")
        let report = try CLI.run(["validate", "--db", db])
        #expect(report.status == 1, "\(report)")
        #expect(report.stdout.contains("FAIL non-finite: dog"), "\(report)")
    }

    // MARK: - C9

    @Test func aControlCharacterInALabelFileNamesTheLine() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let labels = try writeLabels("cat\ndog\u{0}cat\n", in: dir)
        let db = dir.appendingPathComponent("knowledge.db").path
        let run = try CLI.run(["build", "--labels", labels, "--db", db])
        #expect(run.status == 65, "\(run)")
        #expect(run.stderr.contains("\(labels):2: control character U+0000"), "\(run)")
        #expect(!FileManager.default.fileExists(atPath: db))
    }

    // MARK: - E14

    @Test func aStoreFromANewerVersionIsNotWrittenButCanBeRead() throws {
        let (dir, db) = try builtStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try sqlite(db, "insert into grdb_migrations (identifier) values ('v99-from-the-future')")
        let state = { try sqlite(db, "select count(*) from requests") + "/" + (try sqlite(db, "select max(updated_at) from runs")) }
        let before = try state()
        for arguments in [["build", "--labels", Repo.path("labels/voc.txt"), "--force"], ["encode", "--clip", Self.checkpoint]] {
            let run = try CLI.run(arguments + ["--db", db])
            #expect(run.status == 65, "\(run)")
            #expect(errorLines(run).first?.contains("written by a newer version of sspa-knowledge") == true, "\(run)")
            #expect(run.stderr.contains("Upgrade sspa-knowledge"))
        }
        #expect(try state() == before)
        let list = try CLI.run(["list", "--db", db])
        #expect(list.status == 0 && list.stdout.contains("voc"), "\(list)")
        #expect(list.stderr.contains("warning:") && list.stderr.contains("v99-from-the-future"), "\(list)")
    }

    // MARK: - E15

    @Test func aFileSizeLimitStopsCleanlyAndKeepsEveryFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("knowledge.db").path
        func limited(_ blocks: Int, _ arguments: [String]) throws -> Run {
            let quoted = ([CLI.binary] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
            let (process, out, err) = try Processes.start("/bin/bash", ["-c", "ulimit -f \(blocks); exec \(quoted)"])
            return Processes.finish(process, out, err)
        }
        let build = try limited(120, ["build", "--labels", Repo.path("labels/coco.txt"), "--db", db, "--quiet"])
        #expect(build.status == 74, "\(build)")
        #expect(build.stderr.contains("file-size limit"), "\(build)")
        #expect(errorLines(build).count == 1, "\(build)")
        #expect(try sqlite(db, "pragma integrity_check") == "ok")
        // The labels finished before the limit are kept, and a run without the limit resumes.
        let resumed = try CLI.run(["build", "--labels", Repo.path("labels/coco.txt"), "--db", db, "--quiet"])
        #expect(resumed.status == 0, "\(resumed)")

        // 40 KB: room for SQLite's 32 KB shared-memory file, not for the 66 KB JSON lines export.
        let out = dir.appendingPathComponent("coco.jsonl").path
        try Data("earlier export".utf8).write(to: URL(fileURLWithPath: out))
        let export = try limited(40, ["export", "--db", db, "--format", "jsonl", "-o", out])
        #expect(export.status == 74, "\(export)")
        #expect(export.stderr.contains("file-size limit") && export.stderr.contains(out), "\(export)")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "earlier export", "the earlier file was damaged")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains("partial") }.isEmpty)
    }

    // MARK: - E16

    @Test func smallerOnesSayWhatIsMeant() throws {
        let (dir, db) = try builtStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        let labels = try writeLabels("dog\n", in: dir)
        // A WordNet request keeps what the offline source used, not a 4 KB LLM prompt.
        let longest = Int(try sqlite(db, "select max(length(prompt)) from requests")) ?? .max
        #expect(longest < 400, "a WordNet request stores \(longest) bytes of prompt")
        #expect(try sqlite(db, "select json_extract(prompt, '$.names[0]') from requests r join labels l on l.id = r.label_id where l.raw_name = 'dog'") == "dog")

        let show = try CLI.run(["show", "dog", "--label-set", "nosuch", "--db", db])
        #expect(show.status == 66 && show.stderr.contains("no label set 'nosuch'") && show.stderr.contains("it holds: voc"), "\(show)")

        let nan = try CLI.run(["build", "--labels", labels, "--db", db, "--temperature", "nan"])
        #expect(nan.status == 64 && nan.stderr.contains("--temperature must be a finite number ≥ 0"), "\(nan)")

        let notURL = try CLI.run(["build", "--labels", labels, "--db", db, "--endpoint", "not a url"])
        #expect(notURL.status == 64 && notURL.stderr.contains("is not an http(s) URL with a host") && !notURL.stderr.contains("--model"), "\(notURL)")

        // A build that fails before any work leaves no store behind.
        let fresh = dir.appendingPathComponent("fresh.db").path
        let failed = try CLI.run(["build", "--labels", labels, "--db", fresh, "--endpoint", "http://127.0.0.1:9/", "--timeout", "2"])
        #expect(failed.status != 0, "\(failed)")
        #expect(!FileManager.default.fileExists(atPath: fresh), "a failed build left \(fresh)")
        let noWordNet = try CLI.run(["build", "--labels", labels, "--db", fresh, "--wordnet", "/nonexistent"])
        #expect(noWordNet.status != 0 && !FileManager.default.fileExists(atPath: fresh))
        // One that fails after creating the store (here a file-size limit during its schema) removes it, with its
        // journal files.
        let (process, out, err) = try Processes.start("/bin/bash", ["-c", "ulimit -f 8; exec \"$0\" \"$@\"", CLI.binary,
                                                                  "build", "--labels", labels, "--db", fresh, "--quiet"])
        let limited = Processes.finish(process, out, err)
        #expect(limited.status == 74, "\(limited)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("fresh.db") }.isEmpty, "\(limited)")
    }
}
