import Foundation
import Testing
import TestSupport

/// Faults from the fault-injecting server (Tests/Support/fault_server.py). Those that end in success pass the
/// request on to the real LLM, so they need it; the others do not.
@Suite("Endpoint faults")
struct FaultTests {
    static let key = "sk-test-THIS-KEY-MUST-NEVER-LEAK-0123456789"

    func build(_ endpoint: String, labels: String, db: String, _ extra: [String] = []) throws -> Run {
        try CLI.run(["build", "--labels", labels, "--db", db, "--endpoint", endpoint, "--model", "smollm2", "--quiet", "--max-attempts", "1"] + extra,
                    environment: ["OPENAI_API_KEY": Self.key])
    }

    func scratch(_ labels: String = "dog\n") throws -> (URL, String, String) {
        let dir = try temporaryDirectory()
        return (dir, try writeLabels(labels, in: dir), dir.appendingPathComponent("knowledge.db").path)
    }

    /// The key must appear nowhere: not in output, not anywhere in the store.
    func expectNoKey(_ run: Run, db: String) throws {
        #expect(!run.stdout.contains(Self.key) && !run.stderr.contains(Self.key), "the API key leaked into the output")
        if FileManager.default.fileExists(atPath: db) {
            let dump = try sqlite(db, ".dump")
            #expect(!dump.contains(Self.key), "the API key leaked into knowledge.db")
            #expect(!dump.contains("THIS-KEY"), "part of the API key leaked into knowledge.db")
        }
    }

    @Test func unauthorizedStopsTheRunWithoutEchoingTheKey() throws {
        let server = try FaultServer()
        defer { server.stop() }
        let (dir, labels, db) = try scratch("dog\ncat\nbird\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try build(server.url("401"), labels: labels, db: db)
        #expect(run.status == 1, "\(run)")
        #expect(run.stderr.contains("rejected the credentials"))
        #expect(run.stderr.contains("OPENAI_API_KEY"))
        try expectNoKey(run, db: db)
        // It stopped at the first label instead of trying every one.
        #expect(try server.requests(scenario: server.lastScenario).count <= 4)
        // The key was sent, as a bearer token, only in the Authorization header.
        let sent = try server.stats()["requests"] as? [[String: Any]] ?? []
        let headers = sent.compactMap { $0["headers"] as? [String: String] }
        #expect(headers.contains { ($0["Authorization"] ?? $0["authorization"]) == "Bearer \(Self.key)" })
    }

    /// HTTPS through libcurl against a local TLS server (Python's ssl module, HTTP/1.1; HTTP/2 cannot be served by
    /// Python's standard library, so multiplexing is not verified here). A certificate no trusted CA signed is refused
    /// with libcurl's reason; naming its CA in SSL_CERT_FILE, as OpenSSL and Python users do, makes it trusted.
    @Test func httpsIsVerifiedAgainstTheSystemStoreOrSSLCertFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0, "openssl could not make a test certificate")
        let server = try FaultServer(extra: ["--canned", "--tls", cert, key])
        defer { server.stop() }
        let labels = try writeLabels("dog\ncat\n", in: dir)
        let endpoint = "https://127.0.0.1:\(server.port)/s/ok"

        let untrusted = try CLI.run(["build", "--labels", labels, "--db", dir.appendingPathComponent("a.db").path, "--endpoint", endpoint,
                                     "--model", "m", "--quiet", "--max-attempts", "1", "--retries", "0"], environment: ["SSL_CERT_FILE": ""])
        #expect(untrusted.status != 0, "\(untrusted)")
        #expect(untrusted.stderr.lowercased().contains("certificate"), "\(untrusted.stderr)")

        let trusted = try CLI.run(["build", "--labels", labels, "--db", dir.appendingPathComponent("b.db").path, "--endpoint", endpoint,
                                   "--model", "m", "--quiet", "--max-attempts", "1"], environment: ["SSL_CERT_FILE": cert])
        #expect(trusted.status == 0, "\(trusted)")
        #expect(try sqlite(dir.appendingPathComponent("b.db").path, "select count(*) from label_status where state = 'complete'") == "2")
    }

    @Test func insufficientQuotaStopsTheRun() throws {
        let server = try FaultServer()
        defer { server.stop() }
        let (dir, labels, db) = try scratch("dog\ncat\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try build(server.url("quota"), labels: labels, db: db)
        #expect(run.status == 1)
        #expect(run.stderr.contains("insufficient_quota"), "\(run)")
        try expectNoKey(run, db: db)
    }

    /// `--jobs N` bounds the requests in flight. The build keeps more labels ready than that (their requests wait in
    /// the HTTP client, in order, and one goes out the moment another ends), yet the server never sees more than N
    /// at once, and sees N: the slots are used.
    @Test func jobsBoundsTheRequestsInFlightWhileMoreLabelsWaitReady() throws {
        let server = try FaultServer(extra: ["--canned", "--latency-ms", "150"])
        defer { server.stop() }
        let names = ["dog", "cat", "bird", "horse", "sheep", "cow", "bottle", "chair", "sofa", "train", "boat", "bus"]
        let (dir, labels, db) = try scratch(names.joined(separator: "\n") + "\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        let tag = "jobs\(UInt32.random(in: 0...UInt32.max))"
        let run = try build(server.url("ok", tag: tag), labels: labels, db: db, ["--jobs", "3"])
        #expect(run.status == 0, "\(run)")
        let stats = try server.stats()
        #expect((stats["counts"] as? [String: Int])?["ok~\(tag)"] == names.count, "\(stats["counts"] ?? "")")
        #expect((stats["peak_in_flight"] as? [String: Int])?["ok~\(tag)"] == 3, "\(stats["peak_in_flight"] ?? "")")
        #expect(try sqlite(db, "select count(*) from label_status where state = 'complete'") == "\(names.count)")
    }

    @Test func aHangIsCutByTheTimeoutAndRepeatedFailuresStopTheRun() throws {
        let server = try FaultServer()
        defer { server.stop() }
        let (dir, labels, db) = try scratch("dog\ncat\nbird\nhorse\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        let started = Date()
        let run = try build(server.url("hang"), labels: labels, db: db, ["--timeout", "1", "--retries", "1", "--max-failures", "2", "--jobs", "1"])
        #expect(run.status == 1, "\(run)")
        #expect(run.stderr.contains("timed out after 1 s"), "\(run)")
        #expect(run.stderr.contains("2 labels in a row failed"))
        #expect(Date().timeIntervalSince(started) < 15)
        // The failed labels are recorded as failed, with the error, and the file is sound.
        #expect(try sqlite(db, "select count(*) from label_status where state = 'failed'") == "2")
        #expect(try sqlite(db, "select count(*) from requests where error like '%timed out%'") == "2")
        #expect(try sqlite(db, "pragma integrity_check") == "ok")
    }

    @Test(arguments: ["html", "garbage", "truncated"])
    func bodiesThatAreNotCompletionsFailClearly(scenario: String) throws {
        let server = try FaultServer()
        defer { server.stop() }
        let (dir, labels, db) = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try build(server.url(scenario), labels: labels, db: db, ["--retries", "1", "--timeout", "5"])
        #expect(run.status == 1, "\(run)")
        #expect(run.stderr.contains("1 failed"), "\(run)")
        let error = try sqlite(db, "select error from requests")
        switch scenario {
        case "truncated": #expect(!error.isEmpty)
        default: #expect(error.contains("not JSON"), "\(error)")
        }
        #expect(try sqlite(db, "select count(*) from descriptions") == "0")
        try expectNoKey(run, db: db)
    }

    // MARK: With the real LLM behind the fault server

    @Test(.enabled(if: LLM.available, "needs the real LLM (SSPA_TEST_LLM_URL)"), arguments: ["429-2", "429date-1", "500-1", "503-1"])
    func transientErrorsAreRetriedUntilTheyPass(scenario: String) throws {
        let server = try FaultServer(upstream: LLM.url)
        defer { server.stop() }
        let (dir, labels, db) = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try build(server.url(scenario), labels: labels, db: db, ["--max-attempts", "2"])
        #expect(run.status == 0, "\(run)")
        let faults = Int(scenario.split(separator: "-").last!)!
        // Every fault was retried, and the answer after them was used.
        #expect(try server.requests(scenario: server.lastScenario).count >= faults + 1)
        #expect(Int(try sqlite(db, "select count(*) from descriptions")) ?? 0 > 0)
        try expectNoKey(run, db: db)
    }

    @Test(.enabled(if: LLM.available, "needs the real LLM (SSPA_TEST_LLM_URL)"))
    func aServerWithoutStructuredOutputFallsBackToPlainText() throws {
        let server = try FaultServer(upstream: LLM.url)
        defer { server.stop() }
        let (dir, labels, db) = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try build(server.url("noschema"), labels: labels, db: db, ["--max-attempts", "2"])
        #expect(run.status == 0, "\(run)")
        #expect(try sqlite(db, "select distinct json_extract(metadata, '$.structured') from requests") == "none")
        let sent = try server.requests(scenario: server.lastScenario)
        #expect(sent.contains { (($0["body"] as? [String: Any])?["response_format"]) != nil }, "it asked for the schema first")
    }

    @Test(.enabled(if: LLM.available, "needs the real LLM (SSPA_TEST_LLM_URL)"))
    func ollamaSpeaksTheOllamaChatAPI() throws {
        // There is no Ollama server here: the fault server speaks Ollama's documented /api/chat format and translates
        // to the real llama.cpp server behind it.
        let server = try FaultServer(upstream: LLM.url)
        defer { server.stop() }
        let (dir, labels, db) = try scratch("dog\ncat\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try build(server.url("ok"), labels: labels, db: db, ["--provider", "ollama", "--max-attempts", "2", "--seed", "11", "--temperature", "0.3"])
        #expect(run.status == 0, "\(run)")
        let sent = try server.requests(scenario: server.lastScenario)
        let body = try #require(sent.first?["body"] as? [String: Any])
        #expect((sent.first?["path"] as? String)?.hasSuffix("/api/chat") == true)
        #expect(body["stream"] as? Bool == false)
        #expect(body["format"] is [String: Any])
        let options = try #require(body["options"] as? [String: Any])
        #expect(options["seed"] as? Int == 11)
        #expect(options["temperature"] as? Double == 0.3)
        #expect(options["num_predict"] as? Int == 400)
        #expect(try sqlite(db, "select distinct provider from descriptions_view") == "ollama")
        #expect(Int(try sqlite(db, "select count(*) from descriptions")) ?? 0 > 0)
    }

    @Test(.enabled(if: LLM.available, "needs the real LLM (SSPA_TEST_LLM_URL)"))
    func refusalsAreLoggedButNotUsed() throws {
        let server = try FaultServer(upstream: LLM.url)
        defer { server.stop() }
        let (dir, labels, db) = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try build(server.url("refuse"), labels: labels, db: db, ["--max-attempts", "2"])
        #expect(run.status == 0, "\(run)")
        #expect(try sqlite(db, "select distinct flag from requests") == "refusal")
        #expect(try sqlite(db, "select state from label_status") == "short")
        #expect(try sqlite(db, "select count(*) from descriptions") == "0")
        let validate = try CLI.run(["validate", "--db", db])
        #expect(validate.stdout.contains("warn short: dog"))
        #expect(validate.stdout.contains("warn refusal: dog"))
    }
}

extension FaultServer {
    /// The scenario name (with its tag) of the last `url(_:)` call on this server.
    var lastScenario: String {
        let requests = ((try? stats()["requests"]) as? [[String: Any]]) ?? []
        return (requests.last?["scenario"] as? String) ?? ""
    }
}
