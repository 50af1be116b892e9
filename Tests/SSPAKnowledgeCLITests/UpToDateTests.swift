import Foundation
import Testing
import TestSupport

/// A build with nothing to do writes nothing and says so; a store built by an older offline algorithm is redone,
/// and the build says why.
@Suite("a build with nothing to do", .serialized, .enabled(if: FileManager.default.fileExists(atPath: "/usr/share/wordnet/data.noun"), "needs wordnet-base"))
struct UpToDateTests {
    static func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    @Test func aSecondBuildWritesNothingAndSaysWhereTheKnowledgeIs() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("knowledge.db").path
        let first = try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db])
        #expect(first.status == 0, "\(first)")
        let before = try Self.bytes(db)
        let again = try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db])
        #expect(again.status == 0, "\(again)")
        #expect(try Self.bytes(db) == before, "a build with nothing to do changed the file")
        #expect(again.stderr.contains("voc: nothing to do"), "\(again)")
        #expect(again.stderr.contains("all 20 labels"), "\(again)")
        #expect(again.stderr.contains("The knowledge is in \(db)") && again.stderr.contains("--force"), "\(again)")
        #expect(again.stderr.contains("sspa-knowledge show LABEL --label-set voc"), "\(again)")
        // --force still rebuilds.
        let forced = try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db, "--force"])
        #expect(forced.status == 0 && forced.stderr.contains("voc: complete"), "\(forced)")
    }

    @Test func theReadmeCommandLeavesTheCommittedStoreUntouched() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("knowledge.db").path
        try FileManager.default.copyItem(atPath: Repo.path("knowledge.db"), toPath: db)
        let before = try Self.bytes(db)
        let run = try CLI.run(["build", "--labels", "labels/voc.txt", "--db", db], cwd: Repo.root)
        #expect(run.status == 0, "\(run)")
        #expect(run.stderr.contains("nothing to do"), "the committed knowledge.db is not what the code builds:\n\(run)")
        #expect(try Self.bytes(db) == before, "git status would show knowledge.db modified")
    }

    @Test func knowledgeFromAnOlderOfflineAlgorithmIsRebuiltAndTheBuildSaysWhy() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = dir.appendingPathComponent("knowledge.db").path
        let first = try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db])
        #expect(first.status == 0, "\(first)")
        // Make the stored run look as if an older algorithm had built it.
        _ = try sqlite(db, "UPDATE runs SET model = 'wordnet 3.0', run_key = 'older-algorithm'")
        let again = try CLI.run(["build", "--labels", Repo.path("labels/voc.txt"), "--db", db])
        #expect(again.status == 0, "\(again)")
        #expect(!again.stderr.contains("nothing to do"), "\(again)")
        #expect(again.stderr.contains("earlier knowledge of voc came from wordnet 3.0"), "\(again)")
        #expect(try sqlite(db, "select count(*) from runs") == "2")
    }
}
