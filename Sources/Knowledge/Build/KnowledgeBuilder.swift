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
    public var wordnet: WordNetDatabase?

    public init(store: KnowledgeStore, provider: KnowledgeProvider, prompts: PromptBuilder, sampling: Sampling, options: BuildOptions,
                toolVersion: String, wordnet: WordNetDatabase? = nil) {
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
        // A build with nothing to do reads, says so, and writes nothing (not even a timestamp).
        if !options.force, let summary = try store.upToDate(set, spec: spec, resampleShort: options.resampleShort) {
            events(.started(total: summary.total, todo: 0, skipped: summary.skipped, runID: summary.runID))
            return summary
        }
        let replaces = try store.hasRun(spec) ? [] : store.otherModels(labelSet: set.name, spec: spec)
        let (setID, labelIDs) = try store.saveLabelSet(set)
        let runID = try store.beginRun(spec, labelSetID: setID, force: options.force, toolVersion: toolVersion)
        let states = try store.labelStates(runID: runID)
        let todo = set.labels.indices.filter { index in
            let state = states[set.labels[index].rawName]
            if options.force { return true }
            if options.resampleShort { return state == .short }
            return state == nil || state == .failed
        }
        var summary = BuildSummary(runID: runID)
        summary.replaces = replaces
        summary.total = set.labels.count
        summary.skipped = set.labels.count - todo.count
        events(.started(total: set.labels.count, todo: todo.count, skipped: summary.skipped, runID: runID))

        var consecutiveFailures = 0
        var stopReason: String?
        var interrupted = false
        var storeFailure = false
        await withTaskGroup(of: LabelOutcome?.self) { group in
            var next = 0
            func launch() {
                guard next < todo.count else { return }
                let index = todo[next]
                next += 1
                group.addTask { await self.process(set.labels[index], in: set.labels, events: events) }
            }
            for _ in 0..<max(options.jobs, 1) { launch() }
            while let finished = await group.next() {
                guard let outcome = finished else {
                    // Cancelled: stop launching, let in-flight labels finish being cancelled.
                    interrupted = true
                    continue
                }
                if let index = set.labels.firstIndex(where: { $0.rawName == outcome.label.rawName }) {
                    do {
                        try store.saveOutcome(outcome, runID: runID, labelID: labelIDs[index])
                    } catch {
                        stopReason = KnowledgeStore.explain(error, path: store.path)?.message ?? "cannot write to \(store.path): \(error)"
                        storeFailure = true
                        group.cancelAll()
                        continue
                    }
                }
                summary.add(outcome)
                events(.labelFinished(outcome))
                if let fatal = outcome.fatalError {
                    stopReason = fatal
                    group.cancelAll()
                    continue
                }
                consecutiveFailures = outcome.state == .failed ? consecutiveFailures + 1 : 0
                if consecutiveFailures >= options.maxConsecutiveFailures {
                    stopReason = "\(consecutiveFailures) labels in a row failed; stopping instead of burning through the rest. Last error: \(outcome.message ?? "unknown"). Fix the endpoint and run the same command again to resume."
                    group.cancelAll()
                    continue
                }
                if Task.isCancelled {
                    interrupted = true
                    group.cancelAll()
                    continue
                }
                if stopReason == nil { launch() }
            }
        }
        if Task.isCancelled { interrupted = true }
        summary.seconds = JSONPoster.seconds(ContinuousClock.now - started)
        if interrupted, stopReason == nil {
            summary.status = .interrupted
            summary.message = "interrupted after \(summary.done) of \(todo.count) labels; run the same command again to resume"
            try? store.finishRun(runID, status: .interrupted, message: summary.message)
            throw BuildStopped(summary: summary, reason: summary.message!, interrupted: true)
        }
        if let stopReason {
            summary.status = .failed
            summary.message = stopReason
            try? store.finishRun(runID, status: .failed, message: stopReason)
            throw BuildStopped(summary: summary, reason: stopReason, interrupted: false, storeFailure: storeFailure)
        }
        let remaining = try store.labelStates(runID: runID)
        let unfinished = set.labels.filter { remaining[$0.rawName] == nil || remaining[$0.rawName] == .failed }
        summary.status = unfinished.isEmpty ? .complete : .failed
        summary.message = unfinished.isEmpty ? nil : "\(unfinished.count) labels failed; run the same command again to retry them"
        try store.finishRun(runID, status: summary.status, message: summary.message)
        return summary
    }

    /// Asks about one label until it has enough usable descriptions or runs out of attempts. Every description is
    /// judged (`DescriptionQuality`) and kept with its flags; an attempt whose answer is mostly copied or off topic
    /// leaves the label short of usable ones, so it is asked again with the next seed. Returns nil when cancelled.
    func process(_ label: Label, in labelSet: [Label], events: @escaping @Sendable (BuildEvent) -> Void) async -> LabelOutcome? {
        let wanted = prompts.count
        let prompt = prompts.render(for: label)
        let context = DescriptionQuality.Context(label: label, in: labelSet, related: wordnet?.relatedWords(for: label) ?? [])
        // What the request shows as answers to copy from: the demonstrations' descriptions, as rendered.
        let shown: [(label: String, text: String)] = provider.readsPrompt
            ? prompts.chooseDemonstrations(for: label).flatMap { demo in demo.descriptions.prefix(wanted).map { (demo.label, $0) } }
            : []
        var outcome = LabelOutcome(label: label, requests: [], descriptions: [], state: .failed, wanted: wanted)
        var seen = Set<String>()
        var lastError: String?
        var anyAnswer = false
        var usable = 0
        for attempt in 1...max(options.maxAttempts, 1) {
            if Task.isCancelled { return nil }
            var sampling = self.sampling
            sampling.seed = self.sampling.seed + attempt - 1
            let request = KnowledgeRequest(label: label, prompt: prompt, sampling: sampling, count: wanted, domain: prompts.template.domain,
                                           labelSet: labelSet)
            var record = RequestRecord(attempt: attempt, prompt: prompt, sampling: sampling)
            if !provider.readsPrompt {
                record.sourceInput = String(decoding: (try? JSONValue.object([
                    "names": .array(label.allNames.map(JSONValue.string)), "domain": .string(request.domain), "count": .int(wanted),
                ]).data()) ?? Data(), as: UTF8.self)
            }
            do {
                let response = try await provider.describe(request)
                record.response = response
                anyAnswer = true
                if response.noKnowledge {
                    outcome.requests.append(record)
                    outcome.state = .none
                    outcome.message = "the source has no knowledge of '\(label.displayName)'"
                    return outcome
                }
                var flags: [String] = []
                var formats: [String] = []
                for choice in response.choices {
                    let parsed = ResponseParser.parse(choice.content, label: label, related: context.related)
                    formats.append(parsed.format.rawValue)
                    if let flag = parsed.flag { flags.append(flag.rawValue) }
                    let onTopic = parsed.flag != .offTopic
                    let answer = onTopic ? parsed.descriptions : parsed.offTopic
                    let cutOff = choice.finishReason == "length"
                    for (index, text) in answer.enumerated() where seen.insert(text.lowercased()).inserted {
                        let verdict = DescriptionQuality.assess(
                            text, context: context, demonstrations: shown, earlier: outcome.descriptions.map(\.text),
                            answerOnTopic: onTopic, cutOff: cutOff && index == answer.count - 1)
                        if verdict.usable {
                            // Enough usable ones: the rest of this answer is not needed.
                            guard usable < wanted else { continue }
                            usable += 1
                        }
                        outcome.descriptions.append((outcome.requests.count, text, verdict))
                    }
                }
                record.parseFormat = Set(formats).sorted().joined(separator: ",")
                record.flag = flags.isEmpty ? nil : Set(flags).sorted().joined(separator: ",")
                outcome.requests.append(record)
            } catch is CancellationError {
                return nil
            } catch let error as ProviderError {
                if Task.isCancelled { return nil }
                record.error = error.message
                record.errorStatus = error.httpStatus
                record.errorBody = error.body
                outcome.requests.append(record)
                lastError = error.message
                if error.isFatal {
                    outcome.state = .failed
                    outcome.message = error.message
                    outcome.fatal = true
                    return outcome
                }
            } catch {
                if Task.isCancelled { return nil }
                record.error = String(describing: error)
                outcome.requests.append(record)
                lastError = record.error
            }
            if usable >= wanted { break }
        }
        if usable >= wanted {
            outcome.state = .complete
        } else if anyAnswer {
            outcome.state = .short
            let flagged = outcome.descriptions.count - usable
            outcome.message = "\(usable) of \(wanted) usable descriptions after \(outcome.requests.count) attempts"
                + (flagged > 0 ? " (\(flagged) more flagged: \(Self.flagCounts(outcome)))" : "")
        } else {
            outcome.state = .failed
            outcome.message = lastError
        }
        return outcome
    }

    /// "copied 3, off-topic 2": the flags that kept descriptions of a label out.
    static func flagCounts(_ outcome: LabelOutcome) -> String {
        var counts: [DescriptionFlag: Int] = [:]
        for description in outcome.descriptions where !description.verdict.usable {
            for flag in description.verdict.flags where flag.excludesByDefault { counts[flag, default: 0] += 1 }
        }
        return counts.keys.sorted().map { "\($0.rawValue) \(counts[$0]!)" }.joined(separator: ", ")
    }
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
        case .failed: failed.append(outcome.label.rawName)
        }
    }
}
