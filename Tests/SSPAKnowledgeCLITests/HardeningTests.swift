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
}
