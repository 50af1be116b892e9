import Foundation
import Tensor

/// Options of one build, beyond the run's identity.
public struct BuildOptions: Sendable {
    /// Requests in flight at once.
    public var jobs: Int = 4
    /// Requests per label before it is recorded as short (each with a new seed).
    public var maxAttempts: Int = 3
    /// Labels in a row that fail with errors before the run stops.
    public var maxConsecutiveFailures: Int = 5
    /// Regenerate every label.
    public var force: Bool = false
    /// Only retry the labels recorded as short.
    public var resampleShort: Bool = false
    /// Batch export: send again the requests of an earlier export that never got a result.
    public var resend: Bool = false
    /// The store was created empty by this build and opened with `migrateNow: false`: every label is to do, and the
    /// schema, the label set and the run are written on the store writer's thread while the first requests are on
    /// their way, instead of before them.
    public var newStore: Bool = false

    public init() {}
}

/// What the builder reports while it works.
public enum BuildEvent: Sendable {
    case started(total: Int, todo: Int, skipped: Int, runID: Int64)
    case labelFinished(LabelOutcome)
    case retrying(label: String, error: String, wait: Double)
}

/// A build's totals.
public struct BuildSummary: Sendable {
    public var runID: Int64
    public var total = 0
    public var skipped = 0
    public var done = 0
    public var complete = 0
    public var short: [String] = []
    public var none: [String] = []
    public var failed: [String] = []
    /// The error of the last label that failed, so a run where every label fails says why.
    public var lastFailure: String?
    /// Usable descriptions (no flag that keeps them out of `encode`).
    public var descriptions = 0
    /// Descriptions stored with a flag that keeps them out of `encode` by default.
    public var flagged = 0
    public var requests = 0
    public var promptTokens = 0
    public var completionTokens = 0
    public var seconds = 0.0
    public var status: RunStatus = .running
    public var message: String?
    /// Nothing was to do, and nothing was written.
    public var upToDate = false
    /// The sources of earlier runs of this set by the same provider that this run replaces (why it starts afresh).
    public var replaces: [String] = []
}

/// Why a build stopped before the end.
enum BuildStop {
    /// Ctrl-C (or the task was cancelled).
    case interrupted
    /// A fatal provider error, or too many labels failing in a row.
    case failed(String)
    /// The store could not be written.
    case storeFailure(String)
}

/// A build that stopped before the end; the summary says what was saved.
public struct BuildStopped: Error, CustomStringConvertible {
    public var summary: BuildSummary
    public var reason: String
    public var interrupted: Bool
    /// The store could not be written (a full disk, a file-size limit, an I/O error).
    public var storeFailure = false
    public var description: String { reason }
}

/// Runs stage 2 and 3 of the pipeline: asks the provider about every label that still needs it and saves each label
/// as soon as it is done.
public struct KnowledgeBuilder: Sendable {
    public var store: KnowledgeStore
    public var provider: KnowledgeProvider
    public var prompts: PromptBuilder
    public var sampling: Sampling
    public var options: BuildOptions
    public var toolVersion: String
    /// WordNet, when installed: its relations widen what counts as naming a label in the off-topic check.
    public var wordnet: LazyWordNet?

    public init(store: KnowledgeStore, provider: KnowledgeProvider, prompts: PromptBuilder, sampling: Sampling, options: BuildOptions,
                toolVersion: String, wordnet: LazyWordNet? = nil) {
        self.store = store
        self.provider = provider
        self.prompts = prompts
        self.sampling = sampling
        self.options = options
        self.toolVersion = toolVersion
        self.wordnet = wordnet
    }

    public func spec(for set: LabelSet, structured: StructuredMode) -> RunSpec {
        RunSpec(
            labelSet: set.name, provider: provider.name, endpoint: provider.endpoint, model: provider.model,
            templateName: prompts.template.name, templateSHA256: prompts.template.sha256, sampling: sampling,
            descriptionsWanted: prompts.count, demos: prompts.demos, demoSelection: prompts.selection, structured: structured)
    }

    /// Builds knowledge for `set`. Throws `BuildStopped` when cancelled (Ctrl-C) or stopped by a fatal error; every
    /// label finished before then is saved.
    public func run(_ set: LabelSet, structured: StructuredMode, events: @escaping @Sendable (BuildEvent) -> Void) async throws -> BuildSummary {
        let started = ContinuousClock.now
        let spec = spec(for: set, structured: structured)
        let store = store
        let options = options
        let toolVersion = toolVersion
        let todo: [Int]
        var summary: BuildSummary
        /// The run and its label rows, registered on the writer's thread before any label is written.
        let register: @Sendable () throws -> OutcomeWriter.RunRows
        if options.newStore {
            // Nothing can be done yet in a store this build just created.
            todo = Array(set.labels.indices)
            summary = BuildSummary(runID: 0)
            register = {
                try store.migrate()
                let (setID, labelIDs) = try store.saveLabelSet(set)
                let run = try store.openRun(spec, labelSetID: setID, force: options.force, toolVersion: toolVersion)
                events(.started(total: set.labels.count, todo: set.labels.count, skipped: 0, runID: run.id))
                return OutcomeWriter.RunRows(runID: run.id, labelIDs: labelIDs, startedEmpty: run.empty)
            }
        } else {
            // A build with nothing to do reads, says so, and writes nothing (not even a timestamp).
            if !options.force, let summary = try store.upToDate(set, spec: spec, resampleShort: options.resampleShort) {
                events(.started(total: summary.total, todo: 0, skipped: summary.skipped, runID: summary.runID))
                return summary
            }
            let replaces = try store.hasRun(spec) ? [] : store.otherModels(labelSet: set.name, spec: spec)
            let (setID, labelIDs) = try store.saveLabelSet(set)
            let run = try store.openRun(spec, labelSetID: setID, force: options.force, toolVersion: toolVersion)
            let runID = run.id
            let states = try store.labelStates(runID: runID)
            todo = set.labels.indices.filter { index in
                let state = states[set.labels[index].rawName]
                if options.force { return true }
                if options.resampleShort { return state == .short }
                return state == nil || state == .failed
            }
            summary = BuildSummary(runID: runID)
            summary.replaces = replaces
            events(.started(total: set.labels.count, todo: todo.count, skipped: set.labels.count - todo.count, runID: runID))
            register = { OutcomeWriter.RunRows(runID: runID, labelIDs: labelIDs, startedEmpty: run.empty) }
        }
        summary.total = set.labels.count
        summary.skipped = set.labels.count - todo.count

        // One way to stop: the first reason recorded wins, and no new label starts after it.
        var stop: BuildStop?
        var consecutiveFailures = 0
        let worker = self.worker
        let names = DescriptionQuality.NameIndex(set.labels)
        let positions = Dictionary(set.labels.enumerated().map { ($1.rawName, $0) }, uniquingKeysWith: { a, _ in a })
        let jobs = provider.kind == .offline ? 1 : max(options.jobs, 1)
        // Labels under way at once. When the provider's client itself holds requests beyond --jobs back in order, as
        // many labels again are prepared ahead (prompt rendered, request waiting in the client), so a request goes
        // out the moment another ends rather than after that answer is parsed, judged and handed to the store. With
        // --jobs 1 labels stay strictly one after another.
        let ahead = jobs > 1 && (provider.requestLimit ?? Int.max) <= jobs ? jobs : 0
        // Finished labels are stored beside the loop, a group per transaction; each counts and is reported once stored.
        let counted = SummaryBox(summary)
        let writer = OutcomeWriter(store: store) { outcome in
            counted.add(outcome)
            events(.labelFinished(outcome))
        }
        // A new store's schema, label set and run are written here, beside the first requests.
        writer.register(register)
        let path = store.path
        func storeFailure(_ error: Error) -> BuildStop {
            .storeFailure(KnowledgeStore.explain(error, path: path)?.message ?? "cannot write to \(path): \(error)")
        }
        await withTaskGroup(of: LabelOutcome?.self) { group in
            var next = 0
            var lastLaunched = false
            func launch() {
                guard stop == nil, next < todo.count else {
                    // Every label has started: store what is waiting and fold the log into the file while the last
                    // answers are on their way.
                    if stop == nil, !lastLaunched, todo.count > jobs {
                        lastLaunched = true
                        writer.lastLabelStarted()
                    }
                    return
                }
                let index = todo[next]
                next += 1
                group.addTask { await worker.run(set.labels[index], in: set.labels, names: names) }
            }
            func halt(_ reason: BuildStop) {
                if stop == nil { stop = reason }
                group.cancelAll()
            }
            for _ in 0..<(jobs + ahead) { launch() }
            while let finished = await group.next() {
                // Cancelled (Ctrl-C): in-flight labels finish being cancelled; nothing new starts.
                guard let outcome = finished else { halt(.interrupted); continue }
                if let index = positions[outcome.label.rawName] {
                    writer.submit(outcome, position: index)
                } else {
                    counted.add(outcome)
                    events(.labelFinished(outcome))
                }
                if let error = writer.error { halt(storeFailure(error)); continue }
                if let fatal = outcome.fatalError { halt(.failed(fatal)); continue }
                consecutiveFailures = outcome.state == .failed ? consecutiveFailures + 1 : 0
                if consecutiveFailures >= options.maxConsecutiveFailures {
                    halt(.failed("\(consecutiveFailures) labels in a row failed; stopping instead of burning through the rest. Last error: \(outcome.message ?? "unknown"). Fix the endpoint and run the same command again to resume."))
                    continue
                }
                if Task.isCancelled { halt(.interrupted); continue }
                launch()
            }
        }
        if let error = await writer.drain(), stop == nil { stop = storeFailure(error) }
        summary = counted.value
        // The run, once registered (a new store's registration may have failed: then there is no run to close).
        let runID = writer.rows?.runID
        if let runID { summary.runID = runID }
        if Task.isCancelled, stop == nil { stop = .interrupted }
        summary.seconds = JSONPoster.seconds(ContinuousClock.now - started)
        switch stop {
        case .interrupted?:
            summary.status = .interrupted
            summary.message = "interrupted after \(summary.done) of \(todo.count) labels; run the same command again to resume"
            if let runID { try? store.finishRun(runID, status: .interrupted, message: summary.message) }
            throw BuildStopped(summary: summary, reason: summary.message!, interrupted: true)
        case .failed(let reason)?, .storeFailure(let reason)?:
            summary.status = .failed
            summary.message = reason
            if let runID { try? store.finishRun(runID, status: .failed, message: reason) }
            var stopped = BuildStopped(summary: summary, reason: reason, interrupted: false)
            if case .storeFailure? = stop { stopped.storeFailure = true }
            throw stopped
        case nil:
            break
        }
        guard let runID else { throw StoreError("\(path): the build's run was not registered") }
        let remaining = try store.labelStates(runID: runID)
        let unfinished = set.labels.filter { remaining[$0.rawName] == nil || remaining[$0.rawName] == .failed }
        summary.status = unfinished.isEmpty ? .complete : .failed
        summary.message = unfinished.isEmpty ? nil : "\(unfinished.count) labels failed; run the same command again to retry them"
        try store.finishRun(runID, status: summary.status, message: summary.message)
        return summary
    }

    /// The worker that asks about one label.
    var worker: LabelWorker {
        LabelWorker(provider: provider, prompts: prompts, sampling: sampling,
                    maxAttempts: provider.kind == .offline ? 1 : options.maxAttempts, wordnet: wordnet)
    }
}

/// The summary a build's writer adds stored labels to.
private final class SummaryBox: @unchecked Sendable {
    private let lock = NSLock()
    private var summary: BuildSummary

    init(_ summary: BuildSummary) { self.summary = summary }

    func add(_ outcome: LabelOutcome) { lock.withLock { summary.add(outcome) } }

    var value: BuildSummary { lock.withLock { summary } }
}

extension LabelOutcome {
    var fatalError: String? { fatal ? message : nil }
}

extension BuildSummary {
    mutating func add(_ outcome: LabelOutcome) {
        done += 1
        descriptions += outcome.usable
        flagged += outcome.descriptions.count - outcome.usable
        requests += outcome.requests.count
        for request in outcome.requests {
            promptTokens += request.response?.promptTokens ?? 0
            completionTokens += request.response?.completionTokens ?? 0
        }
        switch outcome.state {
        case .complete: complete += 1
        case .short: short.append(outcome.label.rawName)
        case .none: none.append(outcome.label.rawName)
        case .failed:
            failed.append(outcome.label.rawName)
            lastFailure = outcome.message ?? lastFailure
        }
    }
}
