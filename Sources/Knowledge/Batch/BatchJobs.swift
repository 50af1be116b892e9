import Foundation
import GRDB

/// Batch jobs: the requests `build` would send, written as OpenAI Batch API input lines (`custom_id`, `method`, `url`,
/// `body`), which vLLM's `run-batch` reads too; and their results (the output and error lines of either engine)
/// read back into the run with full provenance.
///
/// Each exported line is recorded in `batch_requests` (its custom id, run, label, attempt, the line itself). An
/// import matches result lines by custom id, stores each answer there, and then judges the label again from every
/// answer it has, exactly as `build` would have (a `LabelWorker` replaying the stored answers), so a short or
/// flagged label is exported again with the next seed, within `--max-attempts`.
public enum BatchJobs {
    /// The Batch API's limits per input file.
    public static let maxRequestsPerFile = 50_000
    public static let maxBytesPerFile = 200 * 1024 * 1024

    /// `sspa-r<run>-l<label position>-a<attempt>`: unique in a store, readable, and parseable without the store.
    public static func customID(run: Int64, labelPosition: Int, attempt: Int) -> String {
        "sspa-r\(run)-l\(labelPosition)-a\(attempt)"
    }

    public static func parseCustomID(_ id: String) -> (run: Int64, labelPosition: Int, attempt: Int)? {
        let parts = id.split(separator: "-")
        guard parts.count == 4, parts[0] == "sspa", parts[1].hasPrefix("r"), parts[2].hasPrefix("l"), parts[3].hasPrefix("a"),
              let run = Int64(parts[1].dropFirst()), let label = Int(parts[2].dropFirst()), let attempt = Int(parts[3].dropFirst())
        else { return nil }
        return (run, label, attempt)
    }

    /// Error codes of requests a batch never ran (OpenAI writes them to the error file of an expired or cancelled
    /// batch): not an answer, and no attempt.
    public static let notRunCodes: Set<String> = ["batch_expired", "batch_cancelled"]

    /// Splits lines into files under the Batch API's limits, in order.
    public static func split(_ lines: [Data], maxRequests: Int = maxRequestsPerFile, maxBytes: Int = maxBytesPerFile) -> [[Data]] {
        var files: [[Data]] = [[]]
        var bytes = 0
        for line in lines {
            if !files[files.count - 1].isEmpty, files[files.count - 1].count >= maxRequests || bytes + line.count + 1 > maxBytes {
                files.append([])
                bytes = 0
            }
            files[files.count - 1].append(line)
            bytes += line.count + 1
        }
        return files.filter { !$0.isEmpty }
    }

    /// The chat-completion body `build` would POST for a request (OpenAI's `json_schema` response format unless
    /// structured output is off).
    public static func chatBody(_ request: KnowledgeRequest, model: String, structured: StructuredMode) -> JSONValue {
        var body: [String: JSONValue] = [
            "model": .string(model),
            "messages": .encoded(request.prompt.encoded),
            "temperature": .double(request.sampling.temperature),
            "seed": .int(request.sampling.seed),
            "max_tokens": .int(request.sampling.maxTokens),
        ]
        if request.sampling.n > 1 { body["n"] = .int(request.sampling.n) }
        if structured != .off {
            body["response_format"] = .object(["type": .string("json_schema"), "json_schema": .object([
                "name": .string("descriptions"), "schema": DescriptionSchema.schema(count: request.count),
            ])])
        }
        return .object(body)
    }
}

/// What an export wrote.
public struct BatchExport: Sendable {
    public var runID: Int64
    /// The input lines, in label order, each without its newline.
    public var lines: [Data] = []
    public var labels: [String] = []
    /// Labels already answered enough, or out of attempts.
    public var done = 0
    /// Labels whose earlier export has no result yet (import it first).
    public var awaiting: [String] = []
    /// A rough count of prompt tokens (characters / 4) and the most completion tokens the lines allow.
    public var promptTokens = 0
    public var maxCompletionTokens = 0
    /// One exported line as `KnowledgeStore` records it.
    struct Row: Sendable {
        var customID: String
        var labelID: Int64
        var attempt: Int
        var line: Data
    }

    /// What `KnowledgeStore.recordExport` records once the lines are written, in the order of `lines`.
    var rows: [Row] = []
}

/// What an import did.
public struct BatchImport: Sendable {
    public struct Problem: Sendable, Hashable {
        public var line: Int
        public var message: String
    }

    public var lines = 0
    /// Requests the engine never ran (`batch_expired`, `batch_cancelled`): released, so the next export sends them
    /// again with the same seed.
    public var notRun = 0
    /// Answers stored for the first time.
    public var imported = 0
    /// Lines already imported with the same content.
    public var unchanged = 0
    public var problems: [Problem] = []
    /// (run, label raw name, state) of every label judged again.
    public var labels: [(run: Int64, label: String, state: LabelState)] = []
}

extension KnowledgeProvider {
    /// The source of a batch run: the model named, answering through a batch engine (OpenAI's Batch API, vLLM's
    /// run-batch). It is never asked directly; its answers arrive by `batch import`.
    /// `name` and `endpoint` are part of the run's identity: "batch" for files run anywhere, "openai-batch" and the
    /// API's base URL for the round trip through a Batch API.
    public static func batch(model: String, name: String = "batch", endpoint: String = "batch") -> KnowledgeProvider {
        KnowledgeProvider(name: name, endpoint: endpoint, model: model) { request in
            throw ProviderError(.configuration, "'\(request.label.rawName)' is answered by a batch job; run `sspa-knowledge batch import` with its results.")
        }
    }
}

extension KnowledgeBuilder {
    /// The batch input lines for every label of `set` that still needs an answer: never asked, failed, or short with
    /// attempts left (each with the next seed). Nothing is recorded as exported: once the lines are on disk,
    /// `KnowledgeStore.recordExport` marks them pending, so a failed write leaves nothing awaiting results.
    public func exportBatch(_ set: LabelSet, structured: StructuredMode) throws -> BatchExport {
        let spec = spec(for: set, structured: structured)
        let (setID, labelIDs) = try store.saveLabelSet(set)
        let runID = try store.beginRun(spec, labelSetID: setID, force: options.force, toolVersion: toolVersion)
        var export = BatchExport(runID: runID)
        let states = try store.labelStatus(runID: runID)
        let pending = try store.pendingBatchLabels(runID: runID)
        var rows: [BatchExport.Row] = []
        for (position, label) in set.labels.enumerated() {
            let status = states[label.rawName]
            if pending.contains(label.rawName), !options.resend { export.awaiting.append(label.rawName); continue }
            let attempts = status?.attempts ?? 0
            let todo: Bool = switch status?.state {
            case nil, .failed?: attempts < options.maxAttempts
            case .short?: attempts < options.maxAttempts
            case .complete?, LabelState.none?: false
            }
            guard todo else { export.done += 1; continue }
            let attempt = attempts + 1
            var sampling = self.sampling
            sampling.seed = self.sampling.seed + attempt - 1
            let prompt = prompts.render(for: label)
            let request = KnowledgeRequest(label: label, prompt: prompt, sampling: sampling, count: prompts.count, domain: prompts.template.domain,
                                           labelSet: set.labels)
            let customID = BatchJobs.customID(run: runID, labelPosition: position, attempt: attempt)
            let line = try JSONValue.object([
                "custom_id": .string(customID), "method": .string("POST"), "url": .string("/v1/chat/completions"),
                "body": BatchJobs.chatBody(request, model: provider.model, structured: structured),
            ]).data()
            rows.append(.init(customID: customID, labelID: labelIDs[position], attempt: attempt, line: line))
            export.lines.append(line)
            export.labels.append(label.rawName)
            export.promptTokens += prompt.messages.reduce(0) { $0 + $1.content.count } / 4
            export.maxCompletionTokens += sampling.maxTokens * sampling.n
        }
        export.rows = rows
        // Nothing left to send: the run is as finished as its results make it (beginRun marked it running).
        if rows.isEmpty { try store.finishBatchRun(runID) }
        return export
    }
}

extension KnowledgeStore {
    /// Each label's state and attempts so far in a run, by raw name.
    func labelStatus(runID: Int64) throws -> [String: (state: LabelState, attempts: Int)] {
        try queue.read { db in
            var result: [String: (LabelState, Int)] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT l.raw_name, s.state, s.attempts FROM label_status s JOIN labels l ON l.id = s.label_id WHERE s.run_id = ?
                """, arguments: [runID]) {
                if let state = LabelState(rawValue: row["state"]) { result[row["raw_name"]] = (state, row["attempts"]) }
            }
            return result.mapValues { (state: $0.0, attempts: $0.1) }
        }
    }

    /// Labels of a run with an exported request that has no result yet.
    func pendingBatchLabels(runID: Int64) throws -> Set<String> {
        try queue.read { db in
            Set(try String.fetchAll(db, sql: """
                SELECT DISTINCT l.raw_name FROM batch_requests b JOIN labels l ON l.id = b.label_id
                WHERE b.run_id = ? AND b.result IS NULL
                """, arguments: [runID]))
        }
    }

    /// Marks an export's lines as sent, awaiting results, once `file` holds them.
    public func recordExport(_ export: BatchExport, file: String) throws {
        let runID = export.runID
        try queue.write { db in
            let now = Self.now()
            for row in export.rows {
                try db.cachedStatement(sql: """
                    INSERT INTO batch_requests (custom_id, run_id, label_id, attempt, request, input_file, exported_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (custom_id) DO UPDATE SET request = excluded.request, input_file = excluded.input_file,
                        exported_at = excluded.exported_at, result = NULL, result_file = NULL, imported_at = NULL
                    """).execute(arguments: [row.customID, runID, row.labelID, row.attempt, String(decoding: row.line, as: UTF8.self), file, now])
            }
        }
    }
}

/// A stored run as a batch import needs it: its id and the spec that rebuilds its prompts and sampling.
public struct BatchRun: Sendable {
    public var id: Int64
    public var spec: RunSpec
}

/// Reads batch results (output and error lines of OpenAI's Batch API or vLLM's run-batch) into their runs.
public struct BatchImporter: Sendable {
    public var store: KnowledgeStore
    public var wordnet: LazyWordNet?
    /// The prompts of a run, rebuilt from its template (the caller finds the template; its SHA-256 must match).
    public var prompts: @Sendable (BatchRun) throws -> PromptBuilder

    public init(store: KnowledgeStore, wordnet: LazyWordNet? = nil, prompts: @escaping @Sendable (BatchRun) throws -> PromptBuilder) {
        self.store = store
        self.wordnet = wordnet
        self.prompts = prompts
    }

    /// Imports `data` (a results file's bytes). A line that is not JSON, lacks a custom id or names one this store
    /// never exported is reported with its number and skipped; the rest are imported. Importing the same lines
    /// again changes nothing.
    public func importResults(_ data: Data, file: String) async throws -> BatchImport {
        var report = BatchImport()
        var affected: [Int64: Set<Int64>] = [:]   // run → label ids
        var number = 0
        for slice in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            let line = Data(slice)
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
            report.lines += 1
            guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else {
                report.problems.append(.init(line: number, message: "not a JSON object (a truncated or damaged line?); skipped"))
                continue
            }
            guard let customID = object["custom_id"] as? String else {
                report.problems.append(.init(line: number, message: "no custom_id; skipped"))
                continue
            }
            if let code = (object["error"] as? [String: Any])?["code"] as? String, BatchJobs.notRunCodes.contains(code),
               BatchJobs.parseCustomID(customID) != nil {
                try store.releaseBatchRequest(customID: customID)
                report.notRun += 1
                continue
            }
            let text = String(decoding: line, as: UTF8.self)
            switch try store.storeBatchResult(customID: customID, line: text, file: file) {
            case nil:
                report.problems.append(.init(line: number, message: "custom_id '\(customID.prefix(80))' was not exported from \(store.path); skipped"))
            case .unchanged?:
                report.unchanged += 1
            case .stored(let run, let label)?:
                report.imported += 1
                affected[run, default: []].insert(label)
            }
        }
        for (runID, labelIDs) in affected.sorted(by: { $0.key < $1.key }) {
            let run = try store.batchRun(runID)
            let prompts = try self.prompts(run)
            let set = try store.labelSet(named: run.spec.labelSet)?.labels ?? []
            let ids = try store.labelIDs(labelSet: run.spec.labelSet)
            let names = DescriptionQuality.NameIndex(set)
            for labelID in labelIDs.sorted() {
                guard let position = ids.firstIndex(of: labelID), position < set.count else { continue }
                let label = set[position]
                let answers = try store.batchResults(runID: runID, labelID: labelID)
                let replay = Self.replay(answers, base: run.spec.sampling.seed)
                let worker = LabelWorker(provider: KnowledgeProvider(name: "batch", endpoint: "batch", model: run.spec.model, describe: replay),
                                         prompts: prompts, sampling: run.spec.sampling, maxAttempts: answers.count, wordnet: wordnet)
                guard let outcome = await worker.run(label, in: set, names: names) else { throw CancellationError() }
                try store.saveOutcome(outcome, runID: runID, labelID: labelID)
                report.labels.append((runID, label.rawName, outcome.state))
            }
            try store.finishBatchRun(runID)
        }
        return report
    }

    /// A provider that answers attempt k (seed base + k - 1) with the k-th stored result line.
    static func replay(_ answers: [(attempt: Int, line: String)], base: Int) -> @Sendable (KnowledgeRequest) async throws -> KnowledgeResponse {
        let byAttempt = Dictionary(answers.map { ($0.attempt, $0.line) }, uniquingKeysWith: { a, _ in a })
        return { request in
            let attempt = request.sampling.seed - base + 1
            guard let line = byAttempt[attempt] else { throw ProviderError(.server, "no batch result for attempt \(attempt) yet") }
            return try Self.response(fromLine: line)
        }
    }

    /// One output or error line of OpenAI's Batch API or vLLM's run-batch as the response `build` would have got.
    static func response(fromLine line: String) throws -> KnowledgeResponse {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw ProviderError(.badResponse, "the batch result line is not JSON")
        }
        let response = object["response"] as? [String: Any]
        let status = response?["status_code"] as? Int ?? 0
        var metadata: [String: String] = ["structured": "batch"]
        if let id = object["custom_id"] as? String { metadata["custom_id"] = id }
        if let id = object["id"] as? String { metadata["batch_line_id"] = id }
        if let id = response?["request_id"] as? String { metadata["engine_request_id"] = id }
        let bodyData = (response?["body"]).flatMap { try? JSONSerialization.data(withJSONObject: $0) } ?? Data()
        if let error = object["error"] as? [String: Any], !(error.isEmpty) {
            let message = (error["message"] as? String) ?? "\(error)"
            throw ProviderError(.server, "the batch engine reported an error: \(JSONPoster.firstLine(message))", httpStatus: status == 0 ? nil : status,
                                body: String(decoding: bodyData, as: UTF8.self))
        }
        guard (200..<300).contains(status) else {
            let (message, _, _) = JSONPoster.errorFields(bodyData)
            throw ProviderError(.server, "the batch engine answered HTTP \(status)\(message.map { ": " + JSONPoster.firstLine($0) } ?? "")",
                                httpStatus: status, body: String(decoding: bodyData, as: UTF8.self))
        }
        var parsed = try KnowledgeProvider.parseChatCompletion(
            .init(data: bodyData, status: status, latency: 0), form: "json_schema", url: URL(string: "batch:/v1/chat/completions")!, redact: { $0 })
        parsed.metadata.merge(metadata) { _, new in new }
        return parsed
    }
}

extension KnowledgeStore {
    enum BatchStoreResult { case unchanged, stored(run: Int64, label: Int64) }

    /// Stores a result line for an exported custom id; nil when the store never exported it.
    func storeBatchResult(customID: String, line: String, file: String) throws -> BatchStoreResult? {
        try queue.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT run_id, label_id, result FROM batch_requests WHERE custom_id = ?", arguments: [customID]) else {
                return nil
            }
            if row["result"] as String? == line { return .unchanged }
            try db.execute(sql: "UPDATE batch_requests SET result = ?, result_file = ?, imported_at = ? WHERE custom_id = ?",
                           arguments: [line, file, Self.now(), customID])
            return .stored(run: row["run_id"], label: row["label_id"])
        }
    }

    /// Forgets an exported line that was never run, unless it has a result already, so it is exported again.
    func releaseBatchRequest(customID: String) throws {
        try queue.write { db in
            try db.execute(sql: "DELETE FROM batch_requests WHERE custom_id = ? AND result IS NULL", arguments: [customID])
        }
    }

    func batchResults(runID: Int64, labelID: Int64) throws -> [(attempt: Int, line: String)] {
        try queue.read { db in
            try Row.fetchAll(db, sql: """
                SELECT attempt, result FROM batch_requests WHERE run_id = ? AND label_id = ? AND result IS NOT NULL ORDER BY attempt
                """, arguments: [runID, labelID]).map { ($0["attempt"], $0["result"]) }
        }
    }

    func labelIDs(labelSet: String) throws -> [Int64] {
        try queue.read { db in
            try Int64.fetchAll(db, sql: """
                SELECT l.id FROM labels l JOIN label_sets ls ON ls.id = l.label_set_id WHERE ls.name = ? ORDER BY l.position
                """, arguments: [labelSet])
        }
    }

    public func batchRun(_ id: Int64) throws -> BatchRun {
        try queue.read { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT r.*, ls.name AS label_set FROM runs r JOIN label_sets ls ON ls.id = r.label_set_id WHERE r.id = ?
                """, arguments: [id]) else { throw StoreError("run \(id) is not in \(path)") }
            return BatchRun(id: id, spec: RunSpec(
                labelSet: row["label_set"], provider: row["provider"], endpoint: row["endpoint"], model: row["model"],
                templateName: row["template_name"], templateSHA256: row["template_sha256"],
                sampling: Sampling(temperature: row["temperature"], seed: row["seed"], maxTokens: row["max_tokens"], n: row["n"]),
                descriptionsWanted: row["descriptions_wanted"], demos: row["demos"],
                demoSelection: DemoSelection(rawValue: row["demo_selection"]) ?? .fixed,
                structured: StructuredMode(rawValue: row["structured"]) ?? .auto))
        }
    }

    /// A batch run is complete when every label has a state and no exported request awaits its result.
    func finishBatchRun(_ runID: Int64) throws {
        let (missing, pending): (Int, Int) = try queue.read { db in
            let missing = try Int.fetchOne(db, sql: """
                SELECT count(*) FROM labels l JOIN runs r ON r.label_set_id = l.label_set_id
                LEFT JOIN label_status s ON s.label_id = l.id AND s.run_id = r.id WHERE r.id = ? AND s.state IS NULL
                """, arguments: [runID]) ?? 0
            let pending = try Int.fetchOne(db, sql: "SELECT count(*) FROM batch_requests WHERE run_id = ? AND result IS NULL", arguments: [runID]) ?? 0
            return (missing, pending)
        }
        if missing == 0, pending == 0 {
            try finishRun(runID, status: .complete)
        } else {
            try finishRun(runID, status: .running, message: "\(pending) batch requests await results; \(missing) labels have none yet")
        }
    }
}
