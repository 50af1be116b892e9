import ArgumentParser
import CLIP
import CommandSupport
import Foundation
import Knowledge
import Tensor

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
        // `--version` alone prints the BLAS line too (`main`); the text here must not load OpenBLAS at every start.
        version: version,
        subcommands: [Build.self, Batch.self, Prompt.self, List.self, Show.self, Validate.self, Export.self, Encode.self]
    )

    /// Selects the right BLAS kernel before anything else runs (it may re-execute the process), then parses.
    ///
    /// OpenBLAS is loaded on first use. Only `encode` multiplies matrices (the CLIP text encoder) and only
    /// `--version` reports the kernel, so only they (and the kernel self-check's child) select it first; every other
    /// command starts without loading it.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "encode" || arguments.first == "--version" || ProcessInfo.processInfo.environment["SSPA_BLAS_SELFCHECK"] != nil {
            BLASRuntime.bootstrap()
        }
        if arguments == ["--version"] {
            print("\(version)\n\(BLASRuntime.summary)")
            Glibc.exit(0)
        }
        if arguments.first == "build", let build = try? Build.parseAsRoot(Array(arguments.dropFirst())) as? Build {
            // `build`, parsed on its own: what the full parse gives it when its arguments are valid. Parsing from the
            // root, ArgumentParser also builds the argument set of the subcommand it finds twice more (to see whether
            // it takes all remaining input): about 2.5 ms of the 37 before a build's first request. Help, a mistake
            // or anything else it does not parse goes through the full parse below, which reports it as always.
            do { try await build.run() } catch { exit(withError: error) }
        } else {
            await main(nil)
        }
        // Done, and every file closed: skip the libraries' exit-time clean-up (OpenSSL's, OpenBLAS's), which
        // costs milliseconds and keeps nothing.
        fflush(nil)
        _exit(0)
    }
}

extension ParsableCommand {
    /// Runs `body`, printing known errors as one clear line and exiting with their code.
    func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
        // Past a file-size limit (ulimit -f) a write fails with EFBIG, which the store reports, instead of the
        // kernel killing the process half-way through a file.
        signal(SIGXFSZ, SIG_IGN)
        return try await CommandSupport.reportingErrors(classify: knowledgeErrorReport, body)
    }
}

/// The message and exit code of the library errors `sspa-knowledge` reports as one line.
func knowledgeErrorReport(_ error: any Error) -> (message: String, code: ExitStatus)? {
    switch error {
    case let error as LabelFileError: return ("\(error)", .dataError)
    case let error as TemplateError: return ("\(error)", .dataError)
    case let error as WordNetError: return (error.message, .unavailable)
    case let error as ProviderError: return (error.message, error.kind == .configuration ? .usage : .unavailable)
    case let error as CheckpointError: return (error.message, .dataError)
    case let error as EncodeError: return (error.message, .dataError)
    default:
        guard let error = KnowledgeStore.explain(error, path: StoreOptions.lastOpened) else { return nil }
        switch error.kind {
        case .missing: return (error.message, .noInput)
        case .cannotCreate: return (error.message, .cannotCreate)
        case .notAStore, .newerSchema: return (error.message, .dataError)
        case .io: return (error.message, .ioError)
        }
    }
}
