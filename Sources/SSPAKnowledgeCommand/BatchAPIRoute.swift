import ArgumentParser
import CommandSupport
import Foundation
import Knowledge

/// How the Batch API route polls, for `build --provider openai-batch` and `batch resume`.
struct PollOptions: ParsableArguments {
    @Option(name: .customLong("poll-interval"), help: ArgumentHelp("Seconds before the first status check of a batch; the wait grows 1.5× while nothing changes.", valueName: "seconds"))
    var pollInterval: Double = 5

    @Option(name: .customLong("poll-max"), help: ArgumentHelp("The longest wait between status checks, in seconds.", valueName: "seconds"))
    var pollMax: Double = 60

    func validate() throws {
        guard pollInterval.isFinite, pollInterval > 0 else { throw ValidationError("--poll-interval must be a number of seconds above 0.") }
        guard pollMax.isFinite, pollMax > 0 else { throw ValidationError("--poll-max must be a number of seconds above 0.") }
    }

    var policy: BatchRoundTrip.PollPolicy { .init(initial: pollInterval, maximum: pollMax) }
}

/// The prompts of a stored run, rebuilt from its template (`override` when the run used a path); the template must
/// be the one the run used (same SHA-256).
func batchPrompts(override: String?, known: [PromptTemplate] = []) -> @Sendable (BatchRun) throws -> PromptBuilder {
    { run in
        let spec = run.spec
        let template = try known.first { $0.sha256 == spec.templateSHA256 } ?? TemplateLocator.standard().load(override ?? spec.templateName)
        guard template.sha256 == spec.templateSHA256 else {
            throw CLIError("the template '\(spec.templateName)' changed since run \(run.id) was exported (SHA-256 \(template.sha256.prefix(12)), was \(spec.templateSHA256.prefix(12))); restore it, or pass the one used with --template.", code: .dataError)
        }
        return PromptBuilder(template: template, demos: spec.demos, selection: spec.demoSelection,
                             seed: UInt64(bitPattern: Int64(spec.sampling.seed)), count: spec.descriptionsWanted)
    }
}

/// Shows a batch round trip as it goes, one line per change.
final class BatchAPIDisplay: @unchecked Sendable {
    private let quiet: Bool
    private let lock = NSLock()
    private var shown: [String: String] = [:]

    init(quiet: Bool) { self.quiet = quiet }

    func handle(_ event: BatchRoundTrip.Event) {
        switch event {
        case let .exported(set, runID, round, requests, prompt, completion):
            say("\(set) (run \(runID)), round \(round): \(requests) requests; about \(prompt) prompt tokens and at most \(completion) completion tokens")
        case let .uploaded(fileID, bytes):
            say("uploaded \(Self.size(bytes)) as \(fileID)")
        case let .created(batch):
            say("batch \(batch.id) created (\(batch.status)); Ctrl-C leaves it running, and `sspa-knowledge batch resume \(batch.id)` collects it")
        case let .status(batch, next):
            let line = batch.shown
            let changed = lock.withLock { () -> Bool in
                defer { shown[batch.id] = line }
                return shown[batch.id] != line
            }
            if changed { say("batch \(batch.id): \(line)" + (next.map { " (next check in \(Self.seconds($0)))" } ?? "")) }
        case let .collected(batchID, file, report):
            for problem in report.problems { Console.error("\(file):\(problem.line): \(problem.message)") }
            say("batch \(batchID) \(file.hasSuffix("errors") ? "error file" : "output"): \(report.imported) imported, \(report.unchanged) already imported"
                + (report.notRun > 0 ? ", \(report.notRun) never ran" : "") + (report.problems.isEmpty ? "" : ", \(report.problems.count) bad"))
        case let .released(batchID, requests):
            say("batch \(batchID): \(requests) request(s) never ran; they go out again in the next round (no attempt counted)")
        }
    }

    private func say(_ line: String) { if !quiet { Console.error(line) } }

    static func size(_ bytes: Int) -> String {
        bytes < 1024 ? "\(bytes) B" : bytes < 1 << 20 ? String(format: "%.1f KB", Double(bytes) / 1024) : String(format: "%.1f MB", Double(bytes) / 1_048_576)
    }

    static func seconds(_ value: Double) -> String { value < 10 ? String(format: "%.1f s", value) : "\(Int(value.rounded())) s" }
}

/// One set's outcome after the round trip: its labels by state, from the store.
func reportBatchRun(_ store: KnowledgeStore, runID: Int64, set: String) throws -> Int {
    let states = try store.labelStateCounts(runID: runID)
    let summary = LabelState.allCases.compactMap { state in states[state].map { "\($0) \(state.rawValue)" } }.joined(separator: ", ")
    Console.error("\(set) (run \(runID)): \(summary.isEmpty ? "no labels" : summary)")
    return states[.failed, default: 0]
}

/// After Ctrl-C: what keeps running remotely, and how to collect it.
func batchInterrupted(_ store: KnowledgeStore, db: String) -> CLIError {
    let open = (try? store.openRemoteBatches()) ?? []
    let dbFlag = db == "knowledge.db" ? "" : " --db \(db)"
    guard !open.isEmpty else { return CLIError("interrupted; nothing runs remotely. Run the same command again to resume.", code: .interrupted) }
    for batch in open {
        Console.error("batch \(batch.id) (\(batch.requests) requests, \(batch.status)) keeps running at \(batch.endpoint)")
    }
    let ids = open.map(\.id).joined(separator: " ")
    return CLIError("interrupted; collect the results later with `sspa-knowledge batch resume \(ids)\(dbFlag)` (or run the same build again).", code: .interrupted)
}
