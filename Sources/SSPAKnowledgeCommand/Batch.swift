import ArgumentParser
import CommandSupport
import Foundation
import Knowledge

struct Batch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile knowledge through batch jobs: vLLM's run-batch, OpenAI's Batch API, or anything that reads the same file.",
        discussion: """
            `batch export` writes the requests `build` would send, one OpenAI Batch API line each (custom_id, method, \
            url, body): the input of OpenAI's Batch API and of vLLM's run-batch alike. Run them there, then \
            `batch import` the output (and error) file. A label still short of usable descriptions is exported again \
            with the next seed by the next export, until --max-attempts.

              sspa-knowledge batch export --labels labels/coco.txt --model meta-llama/Llama-3.1-8B-Instruct -o requests.jsonl
              python -m vllm.entrypoints.openai.run_batch -i requests.jsonl -o results.jsonl --model meta-llama/Llama-3.1-8B-Instruct
              sspa-knowledge batch import results.jsonl
            """,
        subcommands: [BatchExportCommand.self, BatchImportCommand.self])
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
            let override = template
            let importer = BatchImporter(store: knowledgeStore, wordnet: LazyWordNet(directory: "/usr/share/wordnet")) { run in
                let spec = run.spec
                let template = try TemplateLocator.standard().load(override ?? spec.templateName)
                guard template.sha256 == spec.templateSHA256 else {
                    throw CLIError("the template '\(spec.templateName)' changed since run \(run.id) was exported (SHA-256 \(template.sha256.prefix(12)), was \(spec.templateSHA256.prefix(12))); restore it, or pass the one used with --template.", code: .dataError)
                }
                return PromptBuilder(template: template, demos: spec.demos, selection: spec.demoSelection,
                                     seed: UInt64(bitPattern: Int64(spec.sampling.seed)), count: spec.descriptionsWanted)
            }
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
