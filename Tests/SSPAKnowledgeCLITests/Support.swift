import Foundation
#if canImport(FoundationNetworking)
// `Data(contentsOf:)` on an http URL (the test servers' /_stats) needs FoundationNetworking loaded; the binaries under
// test no longer link it (their HTTP is libcurl, opened on first use).
import FoundationNetworking
#endif
import Testing
import TestSupport

/// The result of running a command.
typealias Run = ProcessResult

/// Runs the real `sspa-knowledge` binary that `swift test` built next to the test bundle.
enum CLI {
    static let binary: String = ProcessInfo.processInfo.environment["SSPA_KNOWLEDGE_BIN"] ?? Processes.locate("sspa-knowledge")

    static func start(_ arguments: [String], environment: [String: String] = [:], cwd: URL? = nil) throws -> (Process, Pipe, Pipe) {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "SSPA_LLM_URL")
        env.removeValue(forKey: "SSPA_LLM_MODEL")
        env.removeValue(forKey: "OPENAI_API_KEY")
        for (k, v) in environment { env[k] = v }
        return try Processes.start(binary, arguments, environment: env, cwd: cwd)
    }

    /// Runs to completion, reading both pipes while it runs.
    static func run(_ arguments: [String], environment: [String: String] = [:], cwd: URL? = nil) throws -> Run {
        let (process, out, err) = try start(arguments, environment: environment, cwd: cwd)
        return finish(process, out, err)
    }

    static func finish(_ process: Process, _ out: Pipe, _ err: Pipe) -> Run { Processes.finish(process, out, err) }
}

/// Runs `sqlite3` (the CLI a person would use) on a store.
func sqlite(_ db: String, _ sql: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
    process.arguments = [db, sql]
    let out = Pipe()
    process.standardOutput = out
    process.standardError = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// The real LLM server CI starts (llama.cpp on SmolLM2-135M), from SSPA_TEST_LLM_URL.
enum LLM {
    static let url: String? = {
        guard let url = ProcessInfo.processInfo.environment["SSPA_TEST_LLM_URL"], !url.isEmpty else {
            loudSkip("SSPA_TEST_LLM_URL is not set, so every test that needs the real LLM server is skipped. Run scripts/test.sh (CI does) to start llama.cpp's server on SmolLM2 and run them.")
            return nil
        }
        return url
    }()
    static var available: Bool { url != nil }
}

/// Starts one of the Python test servers in Tests/Support on a free loopback port (`--port 0`) and returns it with
/// the port from the one line, "PORT <n>", it prints once it listens.
func startLoopbackServer(_ script: String, _ arguments: [String]) throws -> (Process, Int) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", Repo.path(script), "--port", "0"] + arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    var line = Data()
    while !line.contains(0x0A) {
        let chunk = out.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        line += chunk
    }
    let text = String(decoding: line, as: UTF8.self)
    guard text.hasPrefix("PORT "), let port = Int(text.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines)) else {
        process.terminate()
        throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "\(script) did not start: \(text)"])
    }
    return (process, port)
}

/// The fault-injecting HTTP server (Tests/Support/fault_server.py), started per suite on a free loopback port.
final class FaultServer: @unchecked Sendable {
    let process: Process
    let port: Int
    var base: String { "http://127.0.0.1:\(port)" }

    init(upstream: String? = nil, extra: [String] = []) throws {
        (process, port) = try startLoopbackServer("Tests/Support/fault_server.py",
                                                  ["--hang-seconds", "20"] + (upstream.map { ["--upstream", $0] } ?? []) + extra)
    }

    /// A base URL for one scenario, tagged so tests that run at once keep separate counters.
    func url(_ scenario: String, tag: String = UUID().uuidString.prefix(8).lowercased()) -> String {
        "\(base)/s/\(scenario)~\(tag)"
    }

    /// What the server saw: request counts per scenario and the last requests.
    func stats() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(string: base + "/_stats")!)
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    func requests(scenario: String) throws -> [[String: Any]] {
        ((try stats()["requests"] as? [[String: Any]]) ?? []).filter { ($0["scenario"] as? String) == scenario }
    }

    /// Stops the server (SIGKILL: it is ours, and a hanging request must not keep it alive). Call it in a `defer`,
    /// which also keeps the server alive until the test ends.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// Writes a label file and returns its path.
func writeLabels(_ text: String, in dir: URL, name: String = "labels.txt") throws -> String {
    let path = dir.appendingPathComponent(name).path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

