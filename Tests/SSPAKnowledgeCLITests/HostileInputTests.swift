import Foundation
import Testing
import TestSupport

/// `sspa-knowledge` on a corpus of broken configs, safetensors headers, options, label files and odd store paths
/// (issue 10 D11, E13): never a trap (exit 132/134/139, or death by SIGILL/SIGTRAP/SIGABRT/SIGSEGV), always one
/// `error:` line in the tool's own words.
@Suite("sspa-knowledge hostile inputs")
struct HostileInputTests {
    static let checkpoint = Repo.path("Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu")
    static let crashes: Set<Int32> = [4, 5, 6, 11, 132, 133, 134, 139]

    func expectOneLineError(_ run: Run, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!Self.crashes.contains(run.status), "\(what) crashed: \(run)", sourceLocation: sourceLocation)
        #expect(run.status != 0, "\(what) succeeded: \(run)", sourceLocation: sourceLocation)
        let lines = run.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") || $0.hasPrefix("Error: ") }
        #expect(lines.count == 1, "\(what): not one error line: \(run)", sourceLocation: sourceLocation)
        #expect(!run.stderr.contains("SQLite error") || run.stderr.contains("(SQLite error"), "\(what): a raw SQLite error: \(run)", sourceLocation: sourceLocation)
        #expect(!run.stderr.contains("NSCocoaErrorDomain") && !run.stderr.contains("Fatal error"), "\(what): \(run)", sourceLocation: sourceLocation)
    }

    /// Writes a copy of the fixture checkpoint with `edit` applied to its text config.
    func brokenCheckpoint(in dir: URL, _ name: String, text edit: ([String: Any]) -> [String: Any]) throws -> String {
        let path = dir.appendingPathComponent(name).path
        try FileManager.default.copyItem(atPath: Self.checkpoint, toPath: path)
        let url = URL(fileURLWithPath: path + "/config.json")
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        object["text_config"] = edit(object["text_config"] as? [String: Any] ?? [:])
        try JSONSerialization.data(withJSONObject: object).write(to: url)
        return path
    }

    @Test func aCorpusOfBrokenInputsNeverTraps() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("knowledge.db").path
        #expect(try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db, "--quiet"]).status == 0)

        // Configs.
        let configs: [(String, Any)] = [
            ("num_attention_heads", 0), ("num_hidden_layers", -1), ("num_hidden_layers", 0), ("eos_token_id", 1 << 40),
            ("hidden_size", 15), ("layer_norm_eps", -1), ("layer_norm_eps", 0), ("vocab_size", 0),
            ("max_position_embeddings", 0), ("intermediate_size", -3), ("hidden_act", "relu"), ("hidden_size", "wide"),
        ]
        for (index, (key, value)) in configs.enumerated() {
            let clip = try brokenCheckpoint(in: dir, "config\(index)") { var t = $0; t[key] = value; return t }
            let run = try CLI.run(["encode", "--clip", clip, "--db", db])
            expectOneLineError(run, "\(key): \(value)")
            #expect(run.status == 65 && run.stderr.contains(key), "\(key): \(value): \(run)")
        }
        for (index, text) in ["[]", "{not json", "{\"text_config\": 3}"].enumerated() {
            let clip = try brokenCheckpoint(in: dir, "json\(index)") { $0 }
            try text.write(toFile: clip + "/config.json", atomically: true, encoding: .utf8)
            expectOneLineError(try CLI.run(["encode", "--clip", clip, "--db", db]), "config.json \(text)")
        }

        // Safetensors headers.
        func header(_ name: String, _ bytes: Data) throws -> String {
            let clip = try brokenCheckpoint(in: dir, name) { $0 }
            try bytes.write(to: URL(fileURLWithPath: clip + "/model.safetensors"))
            return clip
        }
        func file(_ json: String, length: UInt64? = nil, data: Int = 8) -> Data {
            Data(withUnsafeBytes(of: (length ?? UInt64(json.utf8.count)).littleEndian, Array.init)) + Data(json.utf8) + Data(count: data)
        }
        let headers: [(String, Data)] = [
            ("empty", Data()),
            ("huge-length", file("{}", length: UInt64.max)),
            ("not-json", file("{\"a\":")),
            ("duplicate", file(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#)),
            ("overflow-shape", file(#"{"w":{"dtype":"F32","shape":[9223372036854775807,4],"data_offsets":[0,8]}}"#)),
            ("past-the-end", file(#"{"w":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}}"#)),
        ]
        for (name, bytes) in headers {
            expectOneLineError(try CLI.run(["encode", "--clip", try header(name, bytes), "--db", db]), "header \(name)")
        }

        // Options.
        let labels = try writeLabels("dog\n", in: dir)
        let options: [[String]] = [
            ["encode", "--clip", Self.checkpoint, "--batch", "0"],
            ["encode", "--clip", Self.checkpoint, "--batch", "99999999999999999999"],
            ["build", "--labels", labels, "--temperature", "nan"], ["build", "--labels", labels, "--temperature", "inf"],
            ["build", "--labels", labels, "--temperature", "-1"], ["build", "--labels", labels, "--timeout", "nan"],
            ["build", "--labels", labels, "--timeout", "0"], ["build", "--labels", labels, "--jobs", "0"],
            ["build", "--labels", labels, "--max-tokens", "-1"], ["build", "--labels", labels, "--retries", "-1"],
            ["build", "--labels", labels, "--endpoint", "not a url"], ["build", "--labels", labels, "--endpoint", "ftp://host/"],
            ["build", "--labels", labels, "--endpoint", "http://"], ["build", "--labels", labels, "--count", "0"],
            ["build", "--labels", labels, "--demos", "-1"], ["build", "--labels", labels, "-n", "0"],
            ["build", "--labels", labels, "--seed", "99999999999999999999"],
            ["export", "--run", "99999"], ["show", "dog", "--label-set", "nosuch"], ["validate", "--label-set", "nosuch"],
        ]
        for arguments in options {
            expectOneLineError(try CLI.run(arguments + ["--db", db]), arguments.joined(separator: " "))
        }
        // A --batch as large as Int allows is a valid option; it must not overflow into a trap.
        let hugeBatch = try CLI.run(["encode", "--clip", Self.checkpoint, "--db", db, "--batch", "9223372036854775807", "--quiet"])
        #expect(hugeBatch.status == 0, "\(hugeBatch)")

        // Label files.
        let files: [(String, Data)] = [
            ("nul", Data("dog\u{0}cat\n".utf8)), ("escape", Data("dog\n\u{1B}[2J\n".utf8)), ("empty", Data()),
            ("comments", Data("# only a comment\n".utf8)), ("latin1", Data([0x63, 0x61, 0x66, 0xE9, 0x0A])),
            ("arrow", Data("=>\n".utf8)), ("bar", Data("dog |\n".utf8)),
        ]
        for (name, bytes) in files {
            let path = dir.appendingPathComponent("\(name).txt").path
            try bytes.write(to: URL(fileURLWithPath: path))
            let run = try CLI.run(["build", "--labels", path, "--db", db])
            expectOneLineError(run, "label file \(name)")
            #expect(run.status == 65, "\(name): \(run)")
        }
        // A FIFO as the label file would block a plain read forever.
        let fifo = dir.appendingPathComponent("labels.fifo").path
        #expect(mkfifo(fifo, 0o644) == 0)
        let run = try CLI.run(["build", "--labels", fifo, "--db", db])
        expectOneLineError(run, "a FIFO as label file")
        #expect(run.status == 65 && run.stderr.contains("not a regular file"), "\(run)")
    }

    // MARK: - E13

    /// Runs the binary as an unprivileged user when the tests run as root, for whom no permission bit counts.
    func runAsUser(_ arguments: [String]) throws -> Run {
        guard getuid() == 0 else { return try CLI.run(arguments) }
        let (process, out, err) = try Processes.start("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", CLI.binary] + arguments)
        return Processes.finish(process, out, err)
    }

    @Test func readOnlyStoresAreReadAndOddPathsAreNamed() throws {
        let dir = try temporaryDirectory()
        let folder = dir.appendingPathComponent("ro")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer {
            chmod(folder.path, 0o755)
            try? FileManager.default.removeItem(at: dir)
        }
        let db = folder.appendingPathComponent("knowledge.db").path
        #expect(try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db, "--quiet"]).status == 0)
        chmod(db, 0o444)
        chmod(folder.path, 0o555)
        let before = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        for arguments in [["list"], ["list", "--json"], ["show", "dog"], ["validate"], ["export", "--format", "csv"]] {
            let run = try runAsUser(arguments + ["--db", db])
            #expect(run.status == 0, "\(arguments) on a read-only store: \(run)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == before, "a read-only command created files")
        let prompt = try runAsUser(["prompt", "dog", "--labels", Repo.path("labels/voc.txt")])
        #expect(prompt.status == 0, "\(prompt)")

        // Writing to it is refused in the tool's words.
        let build = try runAsUser(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db])
        expectOneLineError(build, "build into a read-only store")
        #expect(build.status == 73 && build.stderr.contains("read-only"), "\(build)")

        // A read-only file in a writable folder.
        let writable = dir.appendingPathComponent("rw")
        try FileManager.default.createDirectory(at: writable, withIntermediateDirectories: true)
        chmod(writable.path, 0o777)
        let copy = writable.appendingPathComponent("copy.db").path
        try FileManager.default.copyItem(atPath: db, toPath: copy)
        chmod(copy, 0o444)
        #expect(try runAsUser(["list", "--db", copy]).status == 0)
        let encode = try runAsUser(["encode", "--clip", Self.checkpoint, "--db", copy])
        expectOneLineError(encode, "encode into a read-only file")
        #expect(encode.status == 73 && encode.stderr.contains("\(copy) is read-only"), "\(encode)")

        // A folder, a FIFO and a device as --db.
        let fifo = dir.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o644) == 0)
        for (path, words) in [(writable.path, "is a folder"), (fifo, "is a FIFO"), ("/dev/null", "is a character device")] {
            for command in [["list"], ["build", "--labels", Repo.path("labels/voc.txt")]] {
                let run = try CLI.run(command + ["--db", path])
                expectOneLineError(run, "\(command[0]) --db \(path)")
                #expect(run.status == 66 && run.stderr.contains(words), "\(path): \(run)")
            }
        }
        let missing = try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", dir.path + "/no/such/folder/k.db"])
        #expect(missing.status == 73 && missing.stderr.contains("does not exist"), "\(missing)")
    }
}
