import ArgumentParser
import CommandSupport
import Foundation
import Knowledge

struct Batch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Compile knowledge through batch jobs: vLLM's run-batch, OpenAI's Batch API, or anything that reads the same file.",
        discussion: """
            `batch export` writes the requests `build` would send, one OpenAI Batch API line each (custom_id, method, \
            url, body): the input of OpenAI's Batch API and of vLLM's run-batch alike. Run them there, then \
            `batch import` the output (and error) file. A label still short of usable descriptions is exported again \
            with the next seed by the next export, until --max-attempts.

              sspa-knowledge batch export --labels labels/coco.txt --model meta-llama/Llama-3.1-8B-Instruct -o requests.jsonl
              python -m vllm.entrypoints.openai.run_batch -i requests.jsonl -o results.jsonl --model meta-llama/Llama-3.1-8B-Instruct
              sspa-knowledge batch import results.jsonl

            `build --provider openai-batch` does the round trip through an OpenAI-compatible Batch API itself; \
            `batch resume` collects its batches after Ctrl-C.
            """,
        subcommands: [BatchExportCommand.self, BatchImportCommand.self, BatchResumeCommand.self])
}

struct BatchExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write the requests for every label still to do as OpenAI Batch API input lines.",
        discussion: """
            Labels already complete (or without knowledge), and labels whose earlier export has no result yet, are \
            left out. Files are split at the Batch API's limits (50,000 requests or 200 MB): requests.jsonl, or \
            requests-1.jsonl, requests-2.jsonl, … An estimate of the tokens is printed before anything is sent.
            """)

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("A label file, or a folder of .txt label files. Repeatable.", valueName: "file|dir"))
    var labels: [String] = []

    @Option(help: ArgumentHelp("The model the batch engine runs (written into every request; part of the run's identity).", valueName: "name"))
    var model: String

    @Option(name: .shortAndLong, help: ArgumentHelp("The input file to write.", valueName: "path"))
    var output: String = "requests.jsonl"

    @Option(help: ArgumentHelp("Ask for JSON-schema structured output (response_format json_schema): on, off, or auto (= on)."))
    var structured: StructuredMode = .auto

    @Option(name: .customLong("max-attempts"), help: ArgumentHelp("Rounds per label (each with a new seed) before it is recorded as short.", valueName: "n"))
    var maxAttempts: Int = 3

    @Flag(help: "Export again the requests of an earlier export that never got a result (a lost or damaged results file).")
    var resend = false

    @OptionGroup(title: "Store") var store: StoreOptions
    @OptionGroup(title: "Prompts") var prompt: PromptOptions
    @OptionGroup(title: "Sampling") var sampling: SamplingOptions

    func validate() throws {
        if labels.isEmpty { throw ValidationError("Pass --labels FILE (or a folder of label files).") }
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1.") }
        guard !model.isEmpty else { throw ValidationError("--model must name the model the batch engine runs.") }
    }

    func run() async throws {
        try await reportingErrors {
            try OutputPath.refuseOverwriting(output, option: "-o", inputs: OutputPath.storeInputs("--db", store.db))
            let files = try LabelSources.files(labels)
            let sets = try files.map { try LabelFile.load($0) }
            let templates = try sets.map { try prompt.loadTemplate(for: $0) }
            let knowledgeStore = try store.open()
            var options = BuildOptions()
            options.maxAttempts = maxAttempts
            options.resend = resend
            var all: [Data] = []
            var pieces: [(set: String, export: BatchExport)] = []
            // Every set's lines go to the same file(s), written once after all sets are planned; the lines are recorded as
            // awaiting results only once they are on disk.
            var plans: [(LabelSet, KnowledgeBuilder)] = []
            for (set, template) in zip(sets, templates) {
                plans.append((set, KnowledgeBuilder(store: knowledgeStore, provider: .batch(model: model), prompts: prompt.builder(template: template, seed: sampling.seed),
                                                    sampling: sampling.sampling, options: options, toolVersion: SSPAKnowledge.version)))
            }
            var written: [String] = []
            for (set, builder) in plans {
                let export = try builder.exportBatch(set, structured: structured)
                all += export.lines
                pieces.append((set.name, export))
            }
            if !all.isEmpty {
                let parts = BatchJobs.split(all)
                let ext = (output as NSString).pathExtension
                let stem = ext.isEmpty ? output : String(output.dropLast(ext.count + 1))
                for (index, part) in parts.enumerated() {
                    let path = parts.count == 1 ? output : "\(stem)-\(index + 1)" + (ext.isEmpty ? "" : ".\(ext)")
                    var data = Data()
                    for line in part { data.append(line); data.append(0x0A) }
                    try OutputPath.write(data, to: path)
                    written.append(path)
                }
            }
            for (_, export) in pieces { try knowledgeStore.recordExport(export, file: written.joined(separator: ",")) }
            var tokens = 0
            var completion = 0
            for (name, export) in pieces {
                tokens += export.promptTokens
                completion += export.maxCompletionTokens
                var line = "\(name) (run \(export.runID)): \(export.lines.count) requests"
                if export.done > 0 { line += "; \(export.done) labels done" }
                if !export.awaiting.isEmpty { line += "; \(export.awaiting.count) await the results of an earlier export (import them first, or pass --resend if they are lost)" }
                Console.error(line)
            }
            guard !written.isEmpty else {
                Console.error("nothing to export: every label is done or awaits results; nothing was written.")
                return
            }
            Console.error("wrote \(all.count) requests to \(written.joined(separator: ", ")); about \(tokens) prompt tokens and at most \(completion) completion tokens")
            Console.error("run them with vLLM (python -m vllm.entrypoints.openai.run_batch -i \(written[0]) -o results.jsonl --model \(model)) or OpenAI's Batch API, then: sspa-knowledge batch import results.jsonl\(store.db == "knowledge.db" ? "" : " --db \(store.db)")")
        }
    }
}

struct BatchImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Read batch results (output and error files of OpenAI's Batch API or vLLM's run-batch) into the store.",
        discussion: """
            Lines are matched to their run and label by custom_id and judged as `build` would (quality flags, \
            usable count). A line that is not JSON, has no custom_id, or names one this store never exported is \
            reported with its number, and the rest are imported (exit 65 when any line was bad). Importing a file \
            twice changes nothing.
            """)

    @Argument(help: ArgumentHelp("Results files (JSON lines).", valueName: "file"))
    var files: [String]

    @Option(help: ArgumentHelp("The template the export used, when it was a path rather than a name in templates/.", valueName: "name|path"))
    var template: String?

    @OptionGroup(title: "Store") var store: StoreOptions

    func run() async throws {
        try await reportingErrors {
            let knowledgeStore = try store.open()
            let importer = BatchImporter(store: knowledgeStore, wordnet: LazyWordNet(directory: "/usr/share/wordnet"), prompts: batchPrompts(override: template))
            var problems = 0
            for file in files {
                let data: Data
                do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
                    throw CLIError("\(file): cannot read it (\(error.localizedDescription)).", code: .noInput)
                }
                let report = try await importer.importResults(data, file: file)
                for problem in report.problems { Console.error("\(file):\(problem.line): \(problem.message)") }
                problems += report.problems.count
                var states: [LabelState: Int] = [:]
                for label in report.labels { states[label.state, default: 0] += 1 }
                let summary = LabelState.allCases.compactMap { state in states[state].map { "\($0) \(state.rawValue)" } }.joined(separator: ", ")
                Console.error("\(file): \(report.lines) lines, \(report.imported) imported, \(report.unchanged) already imported, \(report.problems.count) bad"
                    + (report.labels.isEmpty ? "" : "; labels judged: \(summary)"))
                if states[.short, default: 0] + states[.failed, default: 0] > 0 {
                    Console.error("labels short of usable descriptions are asked again (next seed) by the next `sspa-knowledge batch export` with the same options")
                }
            }
            if problems > 0 { throw CLIError("\(problems) line(s) could not be imported (see above); the rest were.", code: .dataError) }
        }
    }
}

struct BatchResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Collect batches that `build --provider openai-batch` left running, and finish their builds.",
        discussion: """
            Polls each batch until it ends, imports its output and error files, and then runs further rounds for \
            labels still short (next seed, within --max-attempts), as the build would have. Without an id, every \
            batch of the store not yet collected is resumed. The endpoint comes from the store; the key from the \
            environment (--api-key-env).

              sspa-knowledge batch resume batch_6740e1f2a5c88190
              sspa-knowledge batch resume --db knowledge.db
            """)

    @Argument(help: ArgumentHelp("Batch ids (as the build printed them). Default: every batch not yet collected.", valueName: "id"))
    var ids: [String] = []

    @Option(name: .customLong("max-attempts"), help: ArgumentHelp("Requests per label (each with a new seed) before it is recorded as short.", valueName: "n"))
    var maxAttempts: Int = 3

    @Option(name: .customLong("api-key-env"), help: ArgumentHelp("The environment variable holding the API key. The key is never stored or printed.", valueName: "name"))
    var apiKeyEnv: String = "OPENAI_API_KEY"

    @Option(help: ArgumentHelp("Seconds before a request is abandoned and retried.", valueName: "seconds"))
    var timeout: Double = 120

    @Option(help: ArgumentHelp("Retries of a request after 429, 5xx, timeouts and connection errors.", valueName: "n"))
    var retries: Int = 5

    @Option(help: ArgumentHelp("The template the build used, when it was a path rather than a name in templates/.", valueName: "name|path"))
    var template: String?

    @Flag(name: .shortAndLong, help: "No progress output; errors and the summary only.")
    var quiet = false

    @OptionGroup(title: "Store") var store: StoreOptions
    @OptionGroup(title: "Polling") var poll: PollOptions

    func validate() throws {
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1.") }
        guard timeout.isFinite, timeout > 0 else { throw ValidationError("--timeout must be a finite number of seconds above 0.") }
        guard retries >= 0 else { throw ValidationError("--retries must not be negative.") }
    }

    func run() async throws {
        try await reportingErrors {
            guard FileManager.default.fileExists(atPath: store.db) else {
                throw CLIError("\(store.db): no such knowledge store; pass the --db the build used.", code: .noInput)
            }
            let lock = try BuildLock(path: store.db)
            defer { lock.release() }
            let knowledgeStore = try store.open()
            var batches: [RecordedBatch] = []
            if ids.isEmpty {
                batches = try knowledgeStore.openRemoteBatches()
                if batches.isEmpty { Console.error("no batch of \(store.db) awaits collection; nothing to do."); return }
            } else {
                for id in ids {
                    guard let batch = try knowledgeStore.remoteBatch(id) else {
                        throw CLIError("batch '\(id.prefix(80))' was not created from \(store.db); run `sspa-knowledge batch resume --db \(store.db)` without an id to collect every open batch.", code: .dataError)
                    }
                    batches.append(batch)
                }
            }
            let key = ProcessInfo.processInfo.environment[apiKeyEnv].flatMap { $0.isEmpty ? nil : $0 }
            let http = HTTPClient.live(timeout: timeout, connections: 4)
            let display = BatchAPIDisplay(quiet: quiet)
            let progress = ProgressDisplay(quiet: quiet)
            let wordnet = LazyWordNet(directory: "/usr/share/wordnet")
            let prompts = batchPrompts(override: template)
            let importer = BatchImporter(store: knowledgeStore, wordnet: wordnet, prompts: prompts)
            var options = BuildOptions()
            options.maxAttempts = maxAttempts
            let interrupt = InterruptHandler()
            defer { interrupt.restore() }
            var failed = 0
            // One pass per run: collect its batches, then finish it with further rounds as its build would.
            var runs: [Int64] = []
            for batch in batches where !runs.contains(batch.runID) { runs.append(batch.runID) }
            for runID in runs {
                let mine = batches.filter { $0.runID == runID }
                let api = try BatchAPIClient(baseURL: mine[0].endpoint, apiKey: key, http: http, timeout: timeout, retry: RetryPolicy(maxRetries: retries),
                                             onRetry: { what, error, wait in progress.retry(label: what, error: error.message, wait: wait) })
                let trip = BatchRoundTrip(store: knowledgeStore, api: api, importer: importer, poll: poll.policy) { display.handle($0) }
                let run = try knowledgeStore.batchRun(runID)
                guard let set = try knowledgeStore.labelSet(named: run.spec.labelSet) else {
                    throw CLIError("run \(runID)'s label set '\(run.spec.labelSet)' is no longer in \(store.db).", code: .dataError)
                }
                let builder = KnowledgeBuilder(store: knowledgeStore, provider: .batch(model: run.spec.model, name: "openai-batch", endpoint: mine[0].endpoint),
                                               prompts: try prompts(run), sampling: run.spec.sampling, options: options,
                                               toolVersion: SSPAKnowledge.version, wordnet: wordnet)
                let task = Task {
                    for batch in mine where !batch.collected { try await trip.collect(batch.id) }
                    return try await trip.run(set, builder: builder, structured: run.spec.structured)
                }
                interrupt.onSignal = { signal in
                    Console.error("\(signal == SIGINT ? "interrupted" : "terminated"): stopping; the batch keeps running remotely. Press Ctrl-C again to quit at once.")
                    task.cancel()
                }
                do {
                    _ = try await task.value
                    failed += try reportBatchRun(knowledgeStore, runID: runID, set: set.name)
                } catch {
                    if interrupt.fired || error is CancellationError { throw batchInterrupted(knowledgeStore, db: store.db) }
                    throw error
                }
            }
            if failed > 0 { throw CLIError("\(failed) label(s) failed in every attempt; see `sspa-knowledge validate`, or raise --max-attempts and run again.") }
        }
    }
}
