import ArgumentParser
import Foundation
import Knowledge

@main
struct SSPAKnowledge: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "sspa-knowledge",
        abstract: "Compile visual knowledge of image labels into knowledge.db for SSPA multi-label recognition.",
        discussion: """
            A label file lists one label per line: `raw name`, or `raw name => display name`, optionally followed \
            by `| synonym, synonym`. `build` asks an LLM (any OpenAI-compatible or Ollama server) for short visual \
            descriptions of each label by in-context learning, or, with no endpoint, reads them from WordNet \
            offline. Every description is stored with its provenance in a SQLite file that `sqlite3` reads:

              sspa-knowledge build --labels labels/voc.txt
              sspa-knowledge build --labels labels/voc.txt --endpoint http://127.0.0.1:8080
              sqlite3 knowledge.db "select description from descriptions_view where label='dog'"
              sspa-knowledge export --format cupl --label-set voc
            """,
        version: version,
        subcommands: [Build.self, Prompt.self, List.self, Show.self, Validate.self, Export.self, Encode.self]
    )
}

/// An error the command prints as it is, and exits with `code`.
struct CLIError: Error, CustomStringConvertible {
    var message: String
    var code: Int32
    init(_ message: String, code: Int32 = 1) {
        self.message = message
        self.code = code
    }
    var description: String { message }
}

/// Writes to standard error.
enum Console {
    static let lock = NSLock()
    static func error(_ text: String) {
        lock.withLock { FileHandle.standardError.write(Data((text + "\n").utf8)) }
    }
    static var stderrIsTerminal: Bool { isatty(2) == 1 }
}

extension ParsableCommand {
    /// Runs `body`, printing known errors as one clear line and exiting with their code.
    func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as CLIError {
            Console.error("error: \(error.message)")
            throw ExitCode(error.code)
        } catch let error as LabelFileError {
            Console.error("error: \(error)")
            throw ExitCode(65)
        } catch let error as TemplateError {
            Console.error("error: \(error)")
            throw ExitCode(65)
        } catch let error as StoreError {
            Console.error("error: \(error.message)")
            throw ExitCode(74)
        } catch let error as WordNetError {
            Console.error("error: \(error.message)")
            throw ExitCode(69)
        } catch let error as ProviderError {
            Console.error("error: \(error.message)")
            throw ExitCode(69)
        }
    }
}
