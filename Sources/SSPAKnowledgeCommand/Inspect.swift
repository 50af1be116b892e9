import ArgumentParser
import CLIP
import CommandSupport
import Foundation
import Knowledge

struct Prompt: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prompt",
        abstract: "Print exactly what `build` would send for one label, without any network.",
        discussion: """
            Example:
              sspa-knowledge prompt dog --labels labels/voc.txt
              sspa-knowledge prompt "tv monitor" --labels labels/voc.txt --demos 5 --demo-selection similar --json
            """
    )

    @Argument(help: ArgumentHelp("The label: raw name, display name or synonym.", valueName: "label"))
    var label: String

    @Option(help: ArgumentHelp("The label file the label is in.", valueName: "file"))
    var labels: String

    @OptionGroup(title: "Prompts") var prompt: PromptOptions

    @Option(help: ArgumentHelp("Seed for --demo-selection random.", valueName: "n"))
    var seed: Int = 0

    @Flag(help: "Print the messages as the JSON sent to the server.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            let set = try LabelFile.load(labels)
            guard let found = set.label(named: label) else {
                throw CLIError("'\(label)' is not in \(labels). Labels there: \(set.labels.prefix(8).map(\.rawName).joined(separator: ", "))\(set.labels.count > 8 ? ", …" : "").")
            }
            let template = try prompt.loadTemplate(for: set)
            let rendered = prompt.builder(template: template, seed: seed).render(for: found)
            if json {
                print(rendered.json)
                return
            }
            let cwd = FileManager.default.currentDirectoryPath + "/"
            let source = template.source.hasPrefix(cwd) ? String(template.source.dropFirst(cwd.count)) : template.source
            print("# template: \(template.name) (\(source), sha256 \(template.sha256.prefix(12)))")
            print("# demonstrations: \(rendered.demonstrations.isEmpty ? "none" : rendered.demonstrations.joined(separator: ", "))")
            for message in rendered.messages {
                print("\n[\(message.role.rawValue)]")
                print(message.content)
            }
        }
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List label sets, their runs, and counts.")

    @OptionGroup var store: StoreOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            let knowledgeStore = try store.open(readOnly: true)
            let runs = try knowledgeStore.runs()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(runs), as: UTF8.self))
                return
            }
            let sets = try knowledgeStore.labelSetNames()
            if sets.isEmpty {
                print("\(store.db) holds no label sets yet. Run `sspa-knowledge build --labels FILE`.")
                return
            }
            var rows = [["label set", "run", "provider", "model", "status", "labels", "complete", "short", "none", "failed", "descriptions"]]
            for set in sets {
                let setRuns = runs.filter { $0.labelSet == set }
                if setRuns.isEmpty { rows.append([set, "-", "-", "-", "no runs", "", "", "", "", "", ""]) }
                for run in setRuns {
                    rows.append([set, String(run.id), run.provider, run.model, run.status, String(run.labels), String(run.complete),
                                 String(run.short), String(run.none), String(run.failed), String(run.descriptions)])
                }
            }
            print(Table.render(rows))
        }
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show the descriptions of one label.",
        discussion: """
            By default the latest run of the label set is shown; --all-runs shows every run. A flagged description \
            is marked with its flags, and "not encoded" when `encode` leaves it out (see `validate`).
            """)

    @Argument(help: ArgumentHelp("The label: raw name or display name.", valueName: "label"))
    var label: String

    @Option(name: .customLong("label-set"), help: ArgumentHelp("The label set, when the label is in more than one.", valueName: "name"))
    var labelSet: String?

    @Flag(name: .customLong("all-runs"), help: "Show the label in every run, not only the latest.")
    var allRuns = false

    @OptionGroup var store: StoreOptions

    func run() async throws {
        try await reportingErrors {
            let knowledgeStore = try store.open(readOnly: true)
            if let labelSet {
                let names = try knowledgeStore.labelSetNames()
                guard names.contains(labelSet) else {
                    throw CLIError("no label set '\(labelSet)' in \(store.db); " + (names.isEmpty ? "it holds none yet. Run `sspa-knowledge build --labels FILE`." : "it holds: \(names.joined(separator: ", "))."), code: .noInput)
                }
            }
            let sets = try labelSet.map { [$0] } ?? knowledgeStore.labelSets(containing: label)
            guard !sets.isEmpty else { throw CLIError("no label '\(label)' in \(store.db). `sspa-knowledge list` shows what it holds.") }
            if sets.count > 1, labelSet == nil {
                throw CLIError("'\(label)' is in several label sets (\(sets.joined(separator: ", "))); pick one with --label-set.")
            }
            let set = sets[0]
            let runs = try knowledgeStore.runs(labelSet: set)
            guard !runs.isEmpty else { throw CLIError("label set '\(set)' has no runs yet. Run `sspa-knowledge build`.") }
            var printed = false
            for run in allRuns ? runs : [runs[0]] {
                guard let entry = try knowledgeStore.knowledge(labelSet: set, runID: run.id, label: label).first else {
                    throw CLIError("no label '\(label)' in label set '\(set)'.")
                }
                if printed { print("") }
                printed = true
                print("\(entry.displayName) (\(entry.label)) — \(set), run \(run.id): \(run.provider) \(run.model), \(entry.state ?? "not built")")
                for (index, text) in entry.descriptions.enumerated() {
                    let flags = entry.flags[index]
                    let excluded = flags.contains { $0.excludesByDefault }
                    let mark = flags.isEmpty ? "" : "[\(flags.map(\.rawValue).joined(separator: ", "))\(excluded ? "; not encoded" : "")] "
                    print("  \(index + 1). \(mark)\(text)")
                }
                if entry.descriptions.isEmpty { print("  (no descriptions)") }
            }
        }
    }
}

struct Validate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check stored knowledge: quality flags, empty, short, duplicate and refused entries, labels with no knowledge.",
        discussion: """
            Every description carries quality flags, from any source: copied (half or more of its word trigrams, \
            label names masked, appear in a demonstration its request showed), duplicate (word overlap of 0.8 or \
            more with an earlier description of the label), off-topic (its answer never names the label, its names \
            or anything WordNet relates to it), names-other-label (names another label of the set without saying \
            how they differ), incomplete (cut off, dangling, or under three words) and too-long (over 77 CLIP \
            tokens: counted by --clip's tokenizer or by `encode`, estimated from words before that). validate \
            prints how many descriptions carry each flag, per label set and run; --json prints it all as JSON.

            Exits 1 when a failure is found (empty, duplicate, failed, missing or no knowledge); short labels, \
            refusals and flags are warnings.
            """)

    @Option(name: .customLong("label-set"), help: ArgumentHelp("Only this label set (default: all).", valueName: "name"))
    var labelSet: String?

    @Option(help: ArgumentHelp("Check this run instead of each set's latest.", valueName: "id"))
    var run: Int64?

    @Option(help: ArgumentHelp("A CLIP checkpoint folder whose tokenizer checks that no description is over 77 tokens (which CLIP truncates).", valueName: "dir"))
    var clip: String?

    @Flag(help: "Print the report as JSON: per label set and run, the counts and rates of each flag, the flagged descriptions and the findings.")
    var json = false

    @OptionGroup var store: StoreOptions

    func run() async throws {
        try await reportingErrors {
            let knowledgeStore = try store.open(readOnly: true)
            let tokenizer: CLIP.Tokenizer?
            do { tokenizer = try clip.map { try CLIP.Tokenizer(directory: URL(fileURLWithPath: $0)) } } catch { throw CLIError("\(error)", code: .noInput) }
            let integrity = try knowledgeStore.integrityCheck()
            if integrity != ["ok"] { throw CLIError("\(store.db) failed PRAGMA integrity_check: \(integrity.prefix(3).joined(separator: "; "))") }
            let names = try knowledgeStore.labelSetNames()
            if let labelSet, !names.contains(labelSet) {
                throw CLIError("no label set '\(labelSet)' in \(store.db); " + (names.isEmpty ? "it holds none yet." : "it holds: \(names.joined(separator: ", "))."), code: .noInput)
            }
            let sets = labelSet.map { [$0] } ?? names
            guard !sets.isEmpty else { throw CLIError("\(store.db) holds no label sets.") }
            var failures = 0
            var reports: [JSONValue] = []
            for set in sets {
                let runs = try knowledgeStore.runs(labelSet: set)
                guard let chosen = run.flatMap({ id in runs.first { $0.id == id } }) ?? (run == nil ? runs.first : nil) else {
                    if json {
                        reports.append(.object(["label_set": .string(set), "error": .string("no run\(run.map { " \($0)" } ?? "") to check")]))
                    } else {
                        print("\(set): no run\(run.map { " \($0)" } ?? "") to check")
                    }
                    failures += 1
                    continue
                }
                var knowledge = try knowledgeStore.knowledge(labelSet: set, runID: chosen.id)
                var tokenCounts: [String: Int] = [:]
                if let tokenizer {
                    // The tokenizer is at hand: too-long on its count, not the estimate.
                    for index in knowledge.indices {
                        for (position, text) in knowledge[index].descriptions.enumerated() {
                            let count = tokenCounts[text] ?? tokenizer.tokenCount(text)
                            tokenCounts[text] = count
                            var flags = Set(knowledge[index].flags[position])
                            if count > DescriptionQuality.tokenLimit { flags.insert(.tooLong) } else { flags.remove(.tooLong) }
                            knowledge[index].flags[position] = flags.sorted()
                        }
                    }
                }
                let wanted = try knowledgeStore.descriptionsWanted(runID: chosen.id)
                var report = KnowledgeValidator.validate(
                    labelSet: set, runID: chosen.id, knowledge: knowledge, flagged: try knowledgeStore.flaggedRequests(runID: chosen.id), wanted: wanted)
                if let tokenizer {
                    report.findings += KnowledgeValidator.overlong(knowledge) { tokenCounts[$0] ?? tokenizer.tokenCount($0) }
                }
                for bad in try knowledgeStore.nonFiniteVectors(labelSet: set, runID: chosen.id) {
                    report.findings.append(.init(severity: .failure, label: bad.label, kind: "non-finite",
                                                 detail: "its \(bad.what) for encoder \(bad.encoder.prefix(12)) holds NaN or infinity; run `sspa-knowledge encode --force` with a sound checkpoint"))
                }
                failures += report.failures.count
                if json {
                    reports.append(Self.json(report, run: chosen))
                    continue
                }
                print("\(set) (run \(chosen.id), \(chosen.provider) \(chosen.model)): \(report.labels) labels, \(report.descriptions) descriptions (\(report.usable) usable), \(report.failures.count) failures, \(report.warnings.count) warnings")
                var rows = [["flag", "descriptions", "rate", "labels", "encode"]]
                for flag in DescriptionFlag.allCases {
                    let hits = report.flagged[flag] ?? []
                    rows.append([flag.rawValue, String(hits.count), String(format: "%.1f %%", report.rate(flag) * 100),
                                 String(Set(hits.map(\.label)).count), flag.excludesByDefault ? "left out" : "used"])
                }
                print(Table.render(rows))
                for flag in DescriptionFlag.allCases {
                    guard let hits = report.flagged[flag], !hits.isEmpty else { continue }
                    let list = hits.prefix(12).map { "\($0.label) #\($0.position)" }.joined(separator: ", ")
                    print("  \(flag.rawValue): \(list)\(hits.count > 12 ? ", … (\(hits.count - 12) more; --json lists all)" : "")")
                }
                for finding in report.findings {
                    print("  \(finding.severity == .failure ? "FAIL" : "warn") \(finding.kind): \(finding.label): \(finding.detail)")
                }
            }
            if json {
                let object = try JSONSerialization.jsonObject(with: try JSONValue.array(reports).data())
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
            }
            if failures > 0 { throw CLIError("validation found \(failures) failure(s).", code: .failure) }
        }
    }
}

extension Validate {
    static func json(_ report: ValidationReport, run: RunInfo) -> JSONValue {
        var flags: [String: JSONValue] = [:]
        for flag in DescriptionFlag.allCases {
            let hits = report.flagged[flag] ?? []
            flags[flag.rawValue] = .object([
                "count": .int(hits.count), "rate": .double((report.rate(flag) * 10000).rounded() / 10000),
                "excluded_by_encode": .bool(flag.excludesByDefault),
                "descriptions": .array(hits.map { .object(["label": .string($0.label), "position": .int($0.position)]) }),
            ])
        }
        return .object([
            "label_set": .string(report.labelSet), "run": .int(Int(report.runID)), "provider": .string(run.provider), "model": .string(run.model),
            "labels": .int(report.labels), "descriptions": .int(report.descriptions), "usable": .int(report.usable), "flags": .object(flags),
            "findings": .array(report.findings.map {
                .object(["severity": .string($0.severity.rawValue), "kind": .string($0.kind), "label": .string($0.label), "detail": .string($0.detail)])
            }),
        ])
    }
}

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export descriptions: CuPL JSON, JSON lines or CSV.",
        discussion: """
            CuPL JSON maps each display name to its descriptions, in label order, as CuPL and other \
            prompt-ensemble code reads it.

              sspa-knowledge export --format cupl --label-set voc > voc_cupl.json
            """)

    @Option(help: ArgumentHelp("cupl, jsonl, csv, or safetensors (knowledge vectors and description embeddings; needs --clip or --encoder)."))
    var format: ExportFormat = .cupl

    @Option(help: ArgumentHelp("With --format safetensors: the CLIP checkpoint the knowledge was encoded with.", valueName: "dir"))
    var clip: String?

    @Option(help: ArgumentHelp("With --format safetensors: the encoder id (the checkpoint identity `encode` printed, or a unique prefix).", valueName: "sha256"))
    var encoder: String?

    @Option(name: .customLong("label-set"), help: ArgumentHelp("The label set (needed when the store holds several).", valueName: "name"))
    var labelSet: String?

    @Option(help: ArgumentHelp("Export this run instead of the set's latest.", valueName: "id"))
    var run: Int64?

    @Option(name: .shortAndLong, help: ArgumentHelp("Write to this file instead of standard output.", valueName: "path"))
    var output: String?

    @OptionGroup var store: StoreOptions

    func run() async throws {
        try await reportingErrors {
            // The output must not be an input: the store (with its WAL files) or the CLIP checkpoint's files.
            if let output {
                try OutputPath.refuseOverwriting(output, option: "-o", inputs: OutputPath.storeInputs("--db", store.db)
                    + (clip.map { OutputPath.checkpointInputs("--clip", $0) } ?? []))
            }
            let knowledgeStore = try store.open(readOnly: true)
            let sets = try knowledgeStore.labelSetNames()
            let set: String
            if let labelSet {
                guard sets.contains(labelSet) else { throw CLIError("no label set '\(labelSet)' in \(store.db); it holds: \(sets.joined(separator: ", ")).") }
                set = labelSet
            } else if sets.count == 1 {
                set = sets[0]
            } else {
                throw CLIError(sets.isEmpty ? "\(store.db) holds no label sets." : "pick a label set with --label-set: \(sets.joined(separator: ", ")).")
            }
            let runs = try knowledgeStore.runs(labelSet: set)
            guard let chosen = run.flatMap({ id in runs.first { $0.id == id } }) ?? (run == nil ? runs.first : nil) else {
                throw CLIError("label set '\(set)' has no run\(run.map { " \($0)" } ?? ""). `sspa-knowledge list` shows the runs.")
            }
            if format == .safetensors {
                let encoderID = try resolveEncoder(store: knowledgeStore, set: set)
                guard let output else { throw CLIError("safetensors is binary: pass -o FILE.safetensors.", code: .usage) }
                let data = try KnowledgeExporter.safetensors(store: knowledgeStore, labelSet: set, encoderID: encoderID, runID: run)
                try OutputPath.write(data, to: output)
                return
            }
            let text = KnowledgeExporter.render(try knowledgeStore.knowledge(labelSet: set, runID: chosen.id), labelSet: set, format: format)
            if let output {
                try OutputPath.write(Data(text.utf8), to: output)
            } else {
                try AtomicFile.writeStandardOutput(Data(text.utf8))
            }
        }
    }
}

extension ExportFormat: ExpressibleByArgument {}

extension Export {
    /// The encoder to export: from --clip (its checkpoint identity), --encoder (a prefix), or the only one the set has.
    func resolveEncoder(store: KnowledgeStore, set: String) throws -> String {
        let available = try store.encoders(labelSet: set)
        if let clip {
            let id = try CLIP.Checkpoint.identity(directory: URL(fileURLWithPath: clip)).id
            guard available.contains(id) else { throw CLIError("\(clip) has not encoded '\(set)'; run `sspa-knowledge encode --clip \(clip) --label-set \(set)`.") }
            return id
        }
        if let encoder {
            let matches = available.filter { $0.hasPrefix(encoder) }
            guard matches.count == 1 else { throw CLIError(matches.isEmpty ? "no encoder \(encoder) for '\(set)'." : "--encoder \(encoder) is ambiguous.") }
            return matches[0]
        }
        guard available.count == 1 else {
            throw CLIError(available.isEmpty ? "'\(set)' has no knowledge vectors; run `sspa-knowledge encode --clip DIR` first." : "pass --clip DIR or --encoder ID: '\(set)' was encoded by \(available.map { String($0.prefix(12)) }.joined(separator: ", ")).")
        }
        return available[0]
    }
}

/// Plain aligned text tables.
enum Table {
    static func render(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        let widths = first.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }
}
