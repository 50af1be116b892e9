import Foundation
import Testing
import TestSupport

/// The command line, run as a user runs it, with the offline WordNet source (no network).
@Suite("sspa-knowledge command line")
struct CLITests {
    @Test func helpTeachesTheCommands() throws {
        let top = try CLI.run(["--help"])
        #expect(top.status == 0)
        for command in ["build", "prompt", "list", "show", "validate", "export"] { #expect(top.stdout.contains(command)) }
        let build = try CLI.run(["build", "--help"])
        #expect(build.status == 0)
        if let failure = assertSnapshot(build.stdout, named: "build-help", in: "Tests/SSPAKnowledgeCLITests") { Issue.record(Comment(rawValue: failure)) }
    }

    @Test func promptPrintsExactlyWhatWouldBeSent() throws {
        let run = try CLI.run(["prompt", "dog", "--labels", "labels/voc.txt", "--demos", "2"], cwd: Repo.root)
        #expect(run.status == 0, "\(run)")
        if let failure = assertSnapshot(run.stdout, named: "prompt-voc-dog", in: "Tests/SSPAKnowledgeCLITests") { Issue.record(Comment(rawValue: failure)) }
        let json = try CLI.run(["prompt", "dining table", "--labels", Repo.path("labels/voc.txt"), "--json"])
        let messages = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: String]]
        #expect(messages?.last?["content"]?.contains("dining table") == true)
        let missing = try CLI.run(["prompt", "unicorn", "--labels", Repo.path("labels/voc.txt")])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("'unicorn' is not in"))
    }

    @Test func aBadLabelFileNamesFileAndLineAndWritesNothing() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let labels = try writeLabels("dog\ncat\ndog => hound\n", in: dir)
        let db = dir.appendingPathComponent("knowledge.db").path
        let run = try CLI.run(["build", "--labels", labels, "--db", db])
        #expect(run.status == 65, "\(run)")
        #expect(run.stderr.contains("\(labels):3: duplicate raw name 'dog'"))
        #expect(!FileManager.default.fileExists(atPath: db), "a bad label file must not create the store")
    }

    @Test func aMissingWordNetSaysHowToInstallIt() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let labels = try writeLabels("dog\n", in: dir)
        let run = try CLI.run(["build", "--labels", labels, "--db", dir.appendingPathComponent("k.db").path, "--wordnet", "/nonexistent"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("apt-get install wordnet-base"))
    }

    @Test func offlineBuildThenInspectWithTheToolsAndWithSqlite3() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("knowledge.db").path
        let run = try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db])
        #expect(run.status == 0, "\(run)")
        #expect(run.stderr.contains("knowledge comes from WordNet offline"))
        #expect(run.stderr.contains("--endpoint"))
        #expect(run.stderr.contains("voc: complete"))

        // A person reads it with sqlite3.
        let dog = try sqlite(db, "select count(*) from descriptions_view where label='dog'")
        #expect(Int(dog) ?? 0 >= 3)
        #expect(try sqlite(db, "select distinct provider || ' ' || model from descriptions_view") == "wordnet wordnet 3.0, senses-5, sentences-3")
        #expect(try sqlite(db, "select sense_keys from descriptions_view where label='dog' limit 1") == "dog%1:05:00::")
        #expect(try sqlite(db, "select identifier from grdb_migrations order by rowid").split(separator: "\n").first == "v1-label-sets")

        let show = try CLI.run(["show", "dog", "--db", db])
        #expect(show.status == 0)
        #expect(show.stdout.contains("1. A dog is a member of the genus Canis"))
        let list = try CLI.run(["list", "--db", db])
        #expect(list.stdout.contains("voc") && list.stdout.contains("wordnet"))

        // Running again resumes: nothing to do, nothing duplicated.
        let before = try sqlite(db, "select count(*) from descriptions")
        let again = try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db])
        #expect(again.status == 0)
        #expect(again.stderr.contains("0 to do, 20 already done"))
        #expect(try sqlite(db, "select count(*) from descriptions") == before)

        // Exports.
        let cupl = try CLI.run(["export", "--format", "cupl", "--db", db])
        let object = try JSONSerialization.jsonObject(with: Data(cupl.stdout.utf8)) as? [String: [String]]
        #expect(object?.keys.contains("dining table") == true)
        #expect(cupl.stdout.range(of: "\"airplane\"")!.lowerBound < cupl.stdout.range(of: "\"tv monitor\"")!.lowerBound, "CuPL keeps label order")
        let csv = try CLI.run(["export", "--format", "csv", "--db", db])
        #expect(csv.stdout.hasPrefix("label_set,label,display_name,position,description\n"))
        let jsonl = try CLI.run(["export", "--format", "jsonl", "--db", db, "-o", dir.appendingPathComponent("out.jsonl").path])
        #expect(jsonl.status == 0)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.jsonl").path))
    }

    @Test func validateReportsProblemsAndFailsOnThem() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("knowledge.db").path
        let labels = try writeLabels("dog\nqwzxv => qwzxv blorft\n", in: dir, name: "odd.txt")
        _ = try CLI.run(["build", "--labels", labels, "--db", db])
        let report = try CLI.run(["validate", "--db", db])
        #expect(report.status == 1, "\(report)")
        #expect(report.stdout.contains("FAIL no-knowledge: qwzxv"))
        #expect(!report.stdout.contains("FAIL no-knowledge: dog"))
        // A duplicate slipped in by hand is caught too.
        _ = try sqlite(db, "insert into descriptions (run_id, label_id, request_id, position, text, created_at) select run_id, label_id, request_id, 99, text, created_at from descriptions where position = 0 limit 1")
        #expect(try CLI.run(["validate", "--db", db]).stdout.contains("FAIL duplicate: dog"))
    }

    @Test func aSecondBuildIntoTheSameFileFailsClearly() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("knowledge.db").path
        // A slow first build: an endpoint that hangs, so it holds the store.
        let server = try FaultServer()
        defer { server.stop() }
        let labels = try writeLabels("dog\n", in: dir)
        let (first, out, err) = try CLI.start(["build", "--labels", labels, "--db", db, "--endpoint", server.url("hang"), "--model", "m", "--timeout", "8", "--retries", "0"])
        Thread.sleep(forTimeInterval: 1.5)
        let second = try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db])
        #expect(second.status != 0)
        #expect(second.stderr.contains("another sspa-knowledge build is writing to it"), "\(second)")
        first.interrupt()
        let firstRun = CLI.finish(first, out, err)
        #expect(firstRun.status == 130, "\(firstRun)")
        #expect(try sqlite(db, "pragma integrity_check") == "ok")
    }

    /// The committed knowledge.db is what the README's command builds from labels/: it cannot drift from the code.
    @Test func committedKnowledgeDBMatchesAFreshBuild() throws {
        let committed = Repo.path("knowledge.db")
        try #require(FileManager.default.fileExists(atPath: committed), "knowledge.db is not committed")
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fresh = dir.appendingPathComponent("knowledge.db").path
        let build = try CLI.run(["build", "--labels", Repo.path("labels"), "--db", fresh, "--quiet"])
        #expect(build.status == 0, "\(build)")
        let sets = try sqlite(committed, "select name from label_sets order by name").split(separator: "\n").map(String.init)
        #expect(sets.count == 10)
        #expect(try sqlite(fresh, "select name from label_sets order by name").split(separator: "\n").map(String.init) == sets)
        for set in sets {
            let a = try CLI.run(["export", "--format", "jsonl", "--label-set", set, "--db", committed])
            let b = try CLI.run(["export", "--format", "jsonl", "--label-set", set, "--db", fresh])
            #expect(a.status == 0 && b.status == 0)
            // run ids may differ between files; the knowledge may not.
            let strip = { (s: String) in s.replacingOccurrences(of: #","run_id":\d+"#, with: "", options: .regularExpression) }
            #expect(strip(a.stdout) == strip(b.stdout), "export of \(set) differs: rebuild knowledge.db with the README command")
        }
    }
}

@Suite("sspa-knowledge encode")
struct EncodeCLITests {
    static let checkpoint = Repo.path("Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu")

    @Test func encodeThenExportForPyTorch() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("knowledge.db").path
        #expect(try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db, "--quiet"]).status == 0)
        let encode = try CLI.run(["encode", "--clip", Self.checkpoint, "--db", db, "--batch", "16"])
        #expect(encode.status == 0, "\(encode)")
        #expect(encode.stderr.contains("voc: 20 knowledge vectors"))
        #expect(try sqlite(db, "select count(*) from knowledge_vectors_view where label_set = 'voc'") == "20")
        #expect(try sqlite(db, "select distinct dim from knowledge_vectors_view") == "16")
        let again = try CLI.run(["encode", "--clip", Self.checkpoint, "--db", db])
        #expect(again.stderr.contains("0 to encode"), "a re-run encodes only what is new")

        let out = dir.appendingPathComponent("voc.safetensors").path
        let export = try CLI.run(["export", "--format", "safetensors", "--db", db, "-o", out])
        #expect(export.status == 0, "\(export)")
        #expect(FileManager.default.fileExists(atPath: out))

        let validate = try CLI.run(["validate", "--db", db, "--clip", Self.checkpoint])
        #expect(validate.stdout.contains("voc (run 1"), "\(validate)")
    }

    @Test func aBrokenCheckpointIsAClearError() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("knowledge.db").path
        _ = try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db, "--quiet"])
        let run = try CLI.run(["encode", "--clip", dir.path, "--db", db])
        #expect(run.status == 66)
        #expect(run.stderr.contains("no model.safetensors") && run.stderr.contains("Hugging Face CLIP checkpoint folder"), "\(run)")
    }
}
