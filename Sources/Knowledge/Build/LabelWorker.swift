import Foundation

/// Asks a source about one label until it has enough usable descriptions or runs out of attempts: the per-label
/// half of a build, free of the store and of the other labels' progress.
///
/// Each attempt uses the next seed. Every description is judged (`DescriptionQuality`) and kept with its flags; only
/// usable ones count towards the count wanted, so an answer that is mostly copied or off topic leads to another
/// attempt. An error that would fail every label (a bad key, no quota) ends the label at once, marked fatal.
public struct LabelWorker: Sendable {
    public var provider: KnowledgeProvider
    public var prompts: PromptBuilder
    public var sampling: Sampling
    public var maxAttempts: Int
    /// WordNet, when installed: its relations widen what counts as naming a label in the off-topic check. Loaded on
    /// first need (an answer that names none of the label's names), so most LLM builds never pay for it.
    public var wordnet: LazyWordNet?
    private let shownCache = ShownCache()

    public init(provider: KnowledgeProvider, prompts: PromptBuilder, sampling: Sampling, maxAttempts: Int, wordnet: LazyWordNet? = nil) {
        self.provider = provider
        self.prompts = prompts
        self.sampling = sampling
        self.maxAttempts = maxAttempts
        self.wordnet = wordnet
    }

    /// The outcome for `label` (one of `labelSet`), or nil when cancelled. `names` indexes the set's names; pass
    /// one built once per set when running many labels.
    public func run(_ label: Label, in labelSet: [Label], names: DescriptionQuality.NameIndex? = nil) async -> LabelOutcome? {
        let wanted = prompts.count
        let prompt = prompts.render(for: label)
        // WordNet's relations are looked up only for an answer that names none of the label's names (rare).
        var context = DescriptionQuality.Context(label: label, names: names ?? DescriptionQuality.NameIndex(labelSet))
        var relatedLoaded = false
        func onTopic(_ answer: [String]) -> Bool {
            if DescriptionQuality.onTopic(answer, context) { return true }
            if !relatedLoaded, let wordnet = wordnet?.database {
                relatedLoaded = true
                context.related = wordnet.relatedWords(for: label)
                return DescriptionQuality.onTopic(answer, context)
            }
            return false
        }
        // What the request shows as answers to copy from: the demonstrations' descriptions, as rendered (indexed once
        // per choice of demonstrations, which the rendered prompt names; with fixed selection that is once per run).
        let shown = shownCache.shown(for: provider.readsPrompt ? prompt.demonstrations : []) {
            let demos = provider.readsPrompt ? prompts.chooseDemonstrations(for: label) : []
            return DescriptionQuality.Shown(demos.flatMap { demo in demo.descriptions.prefix(wanted).map { (demo.label, $0) } })
        }
        var outcome = LabelOutcome(label: label, requests: [], descriptions: [], state: .failed, wanted: wanted)
        var seen = Set<String>()
        /// The kept descriptions' word sets, for the duplicate check (each description split once).
        var earlierWords: [Set<String>] = []
        var lastError: String?
        var anyAnswer = false
        var usable = 0

        /// Judges one answer's sentences and keeps them: flagged ones always, usable ones until enough.
        func keep(_ answer: [String], onTopic: Bool, cutOff: Bool) {
            for (index, text) in answer.enumerated() where seen.insert(text.lowercased()).inserted {
                let (verdict, words) = DescriptionQuality.judge(
                    text, context: context, shown: shown, earlierWords: earlierWords,
                    answerOnTopic: onTopic, cutOff: cutOff && index == answer.count - 1)
                if verdict.usable {
                    guard usable < wanted else { continue }
                    usable += 1
                }
                outcome.descriptions.append((outcome.requests.count, text, verdict))
                earlierWords.append(words)
            }
        }

        for attempt in 1...max(maxAttempts, 1) {
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
                switch response.answer {
                case .none(let reason):
                    outcome.requests.append(record)
                    outcome.state = .none
                    outcome.message = "the source has no knowledge of '\(label.displayName)' (\(reason))"
                    return outcome
                case .descriptions(let texts):
                    let answer = texts.map { FastText.trimmed($0) }.filter { !$0.isEmpty }
                    let topical = onTopic(answer)
                    record.parseFormat = "ready"
                    record.flag = answer.isEmpty ? ParsedResponse.Flag.empty.rawValue : topical ? nil : ParsedResponse.Flag.offTopic.rawValue
                    keep(answer, onTopic: topical, cutOff: false)
                case .choices(let choices):
                    var flags: [String] = []
                    var formats: [String] = []
                    for choice in choices {
                        var parsed = ResponseParser.parse(choice.content, label: label, related: context.related)
                        if parsed.flag == .offTopic, onTopic(parsed.offTopic) {
                            // Off topic by the names alone, on topic by WordNet's relations.
                            parsed = ParsedResponse(descriptions: parsed.offTopic, offTopic: [], format: parsed.format, flag: nil)
                        }
                        formats.append(parsed.format.rawValue)
                        if let flag = parsed.flag { flags.append(flag.rawValue) }
                        let topical = parsed.flag != .offTopic
                        keep(topical ? parsed.descriptions : parsed.offTopic, onTopic: topical, cutOff: choice.finishReason == "length")
                    }
                    record.parseFormat = Set(formats).sorted().joined(separator: ",")
                    record.flag = flags.isEmpty ? nil : Set(flags).sorted().joined(separator: ",")
                }
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

/// A WordNet database opened on first use, once, from any thread; nil when it is not installed.
public final class LazyWordNet: @unchecked Sendable {
    private let lock = NSLock()
    private var loaded: WordNetDatabase??
    private let open: @Sendable () -> WordNetDatabase?

    public init(directory: String) {
        open = { try? WordNetDatabase(directory: directory) }
    }

    public init(_ database: WordNetDatabase?) {
        loaded = .some(database)
        open = { database }
    }

    public var database: WordNetDatabase? {
        lock.withLock {
            if let loaded { return loaded }
            let database = open()
            loaded = .some(database)
            return database
        }
    }
}

/// The indexed demonstrations of a worker, by the labels of the demonstrations shown.
private final class ShownCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [[String]: DescriptionQuality.Shown] = [:]

    func shown(for labels: [String], make: () -> DescriptionQuality.Shown) -> DescriptionQuality.Shown {
        if let cached = lock.withLock({ entries[labels] }) { return cached }
        let value = make()
        lock.withLock { entries[labels] = value }
        return value
    }
}
