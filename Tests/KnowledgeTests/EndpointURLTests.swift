import Foundation
import GRDB
@testable import Knowledge
import Testing
import TestSupport

/// issue 10 B4: what of an endpoint URL may be shown and stored, and what may only be sent.
@Suite("Endpoint URLs")
struct EndpointURLTests {
    @Test func credentialsAreSplitFromWhatIsShown() throws {
        let url = try EndpointURL("https://alice:p%40ss-word@api.example.com:8443/v1/?api_key=K-123456&team=vision&sig=S-987654")
            .stripping(suffix: "/v1")
        #expect(url.display == "https://api.example.com:8443?team=vision")
        #expect(url.requestURL(path: "/v1/chat/completions")?.absoluteString
                == "https://api.example.com:8443/v1/chat/completions?team=vision&api_key=K-123456&sig=S-987654")
        #expect(url.basicAuthorization == "Basic " + Data("alice:p@ss-word".utf8).base64EncodedString())
        #expect(Set(url.secrets).isSuperset(of: ["p@ss-word", "K-123456", "S-987654"]))
        #expect(url.redact("echo K-123456 and p@ss-word") == "echo [redacted] and [redacted]")
        #expect(EndpointURL.shown(try #require(URL(string: "http://u:pw@h:1/x?token=T&a=b"))) == "http://h:1/x?a=b")
        // A token given as the user name is a secret too.
        #expect(try EndpointURL("http://ghp_TOKEN123@host/").secrets == ["ghp_TOKEN123"])
    }

    @Test func anythingButAnHTTPURLWithAHostIsRefusedWithoutEchoingCredentials() {
        for bad in ["not a url", "ftp://host/", "http://", "file:///etc/passwd", "127.0.0.1:8080"] {
            #expect(throws: ProviderError.self, "\(bad)") { try EndpointURL(bad) }
        }
        do {
            _ = try EndpointURL("ftp://carol:SECRET-pw@host")
        } catch {
            #expect(!"\(error)".contains("SECRET"))
        }
    }

    /// A store written before the fix keeps no credential once opened.
    @Test func aMigrationRemovesStoredCredentials() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("old.db").path
        let queue = try DatabaseQueue(path: path)
        try StoreSchema.migrator.migrate(queue, upTo: "v3-encoder-identity")
        try queue.write { db in
            try db.execute(sql: "INSERT INTO label_sets (name, source, source_sha256, created_at, updated_at) VALUES ('s', 'f', 'x', 't', 't')")
            try db.execute(sql: "INSERT INTO labels (label_set_id, position, raw_name, display_name) VALUES (1, 0, 'dog', 'dog')")
            try db.execute(sql: """
                INSERT INTO runs (run_key, label_set_id, provider, endpoint, model, template_name, template_sha256, temperature, seed, n,
                    max_tokens, descriptions_wanted, demos, demo_selection, structured, status, tool_version, created_at, updated_at)
                VALUES ('k', 1, 'openai', 'http://bob:hunter2-PW@127.0.0.1:9/?api_key=QKEY-77', 'm', 't', 'x', 0.7, 0, 1, 400, 5, 3,
                    'fixed', 'auto', 'failed', '0.1.0', 't', 't')
                """)
            try db.execute(sql: """
                INSERT INTO requests (run_id, label_id, attempt, prompt, demonstrations, params, error, created_at)
                VALUES (1, 1, 1, '[]', '[]', '{}', 'cannot talk to http://bob:hunter2-PW@127.0.0.1:9/v1/chat/completions?api_key=QKEY-77', 't')
                """)
        }
        try queue.close()
        let store = try KnowledgeStore(path: path)
        #expect(try store.appliedMigrations().last == "v7-remote-batches")
        let dump = try sqlite3Dump(path)
        #expect(!dump.contains("hunter2") && !dump.contains("QKEY-77"), "\(dump)")
        #expect(try store.runs().first?.endpoint == "http://127.0.0.1:9")
    }

    func sqlite3Dump(_ path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [path, ".dump"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
