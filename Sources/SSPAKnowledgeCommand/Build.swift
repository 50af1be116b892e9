import ArgumentParser
import CommandSupport
import Foundation
import Knowledge

struct Build: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Ask an LLM (or WordNet, offline) for visual knowledge of every label, and store it.",
        discussion: """
            Without --endpoint (or SSPA_LLM_URL) the offline WordNet source is used. With one, every label is asked \
            of the server by in-context learning, --jobs at a time, with retries on 429/5xx/timeouts.

            A build is resumable: running the same command again skips labels already done. A run is identified by \
            the label set, provider, endpoint, model, template SHA-256 and sampling parameters. Ctrl-C saves every \
            finished label and exits 130.

            A label file has one label per line: the raw name, optionally `=> display name`, optionally `| \
            synonym, synonym`, optionally `@ SENSE` to pin the WordNet sense the offline source uses (a noun sense \
            key from WordNet's index.sense, or `none` for no offline knowledge; recorded as pinned). `#` \
            starts a comment; `# template: NAME` before the first label picks the template (natural, pedestrian, \
            remote-sensing).
              # template: natural
              diningtable => dining table | table
              mouse => computer mouse | mouse @ mouse%1:06:00::

            Examples:
              sspa-knowledge build --labels labels/voc.txt
              sspa-knowledge build --labels labels/ --db knowledge.db
              sspa-knowledge build --labels labels/coco.txt \\
                --endpoint https://api.openai.com --model gpt-4o-mini
              sspa-knowledge build --labels labels/voc.txt \\
                --endpoint http://127.0.0.1:11434 --provider ollama --model llama3.2
              sspa-knowledge build --labels labels/openimages.txt \\
                --provider openai-batch --model gpt-4o-mini

            With --provider openai-batch the requests go through an OpenAI-compatible Batch API (half the price, \
            results within 24 h): uploaded as a file, run as a batch, polled, then imported. Ctrl-C leaves the batch \
            running; `sspa-knowledge batch resume ID` (or the same build) collects it later.
            """
    )

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("A label file (syntax above), or a folder of .txt label files. Repeatable.", valueName: "file|dir"))
    var labels: [String] = []

    @Option(help: ArgumentHelp("The label set's name (default: the file's stem). Only with a single label file.", valueName: "name"))
    var name: String?

    @OptionGroup(title: "Store") var store: StoreOptions
    @OptionGroup(title: "Knowledge source") var endpoint: EndpointOptions
    @OptionGroup(title: "Prompts") var prompt: PromptOptions
    @OptionGroup(title: "Sampling") var sampling: SamplingOptions
    @OptionGroup(title: "Batch API polling") var poll: PollOptions

    @Option(help: ArgumentHelp("Requests in flight at once.", valueName: "n"))
    var jobs: Int = 4

    @Option(name: .customLong("max-attempts"), help: ArgumentHelp("Requests per label (each with a new seed) before it is recorded as short.", valueName: "n"))
    var maxAttempts: Int = 3

    @Option(name: .customLong("max-failures"), help: ArgumentHelp("Labels failing in a row before the run stops.", valueName: "n"))
    var maxFailures: Int = 5

    @Flag(help: "Regenerate every label, even those already done.")
    var force = false

    @Flag(name: .customLong("resample-short"), help: "Only ask again for labels recorded as short.")
    var resampleShort = false

    @Flag(name: .shortAndLong, help: "No progress output; errors and the summary only.")
    var quiet = false

    func validate() throws {
        if labels.isEmpty { throw ValidationError("Pass --labels FILE (or a folder of label files).") }
        if name != nil, labels.count > 1 { throw ValidationError("--name goes with a single label file.") }
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1.") }
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1.") }
        guard maxFailures >= 1 else { throw ValidationError("--max-failures must be at least 1.") }
        if force, resampleShort { throw ValidationError("--force and --resample-short exclude each other.") }
    }

    func run() async throws {
        try await reportingErrors {
            // A build that talks to an endpoint opens libcurl on a thread of its own while it reads its files. (Opened
            // beside argument parsing instead, it made that slower: both want the dynamic loader's lock.)
            if endpoint.resolvedProvider != .wordnet { HTTPClient.preload() }
            // A store that does not exist yet is created (locked, its schema written) on another thread while the
            // label files, templates and endpoint are read: a fifth of a build's start. Its errors are reported
            // only after theirs, as before, and a build that does not run removes it again. An existing store is
            // opened only once they are read, so a bad file leaves it as it was.
            var opening = endpoint.resolvedProvider != .openaiBatch && !FileManager.default.fileExists(atPath: store.db)
                ? NewStoreOpening(path: store.db) : nil
            let sets: [LabelSet]
            let templates: [PromptTemplate]
            let progress = ProgressDisplay(quiet: quiet)
            let provider: KnowledgeProvider
            do {
                let files = try LabelSources.files(labels)
                if name != nil, files.count > 1 { throw CLIError("--name goes with a single label file, but \(labels[0]) holds \(files.count).") }
                // Parse every file before writing to the store, so a bad file writes nothing.
                sets = try files.map { try LabelFile.load($0, name: name) }
                templates = try sets.map { try prompt.loadTemplate(for: $0) }
                if endpoint.resolvedProvider == .openaiBatch {
                    try await buildThroughBatchAPI(sets: sets, templates: templates, progress: progress)
                    return
                }
                // The provider first: a bad endpoint or a missing WordNet must not leave a new, empty store behind.
                provider = try await makeProvider(progress: progress)
            } catch {
                await opening?.abandon()
                throw error
            }
            var lock: BuildLock
            var knowledgeStore: KnowledgeStore?
            var storeIsNew = false
            if let started = opening {
                opening = nil
                (lock, knowledgeStore) = try await started.take()
                storeIsNew = lock.createdFile
            } else {
                lock = try BuildLock(path: store.db)
                do { knowledgeStore = try store.open() } catch {
                    if lock.createdFile { KnowledgeStore.removeIfHoldsNoWork(path: store.db) }
                    lock.release()
                    throw error
                }
            }
            defer { lock.release() }
            do {
                try await build(sets: sets, templates: templates, provider: provider, store: knowledgeStore!, newStore: storeIsNew,
                                progress: progress)
                knowledgeStore = nil  // closed (the log folded into the file) before the lock is released
            } catch {
                // A build that fails before writing any request removes the store it created (and only that one,
                // under its lock), once closed; resumable work stays.
                knowledgeStore = nil
                if lock.createdFile { KnowledgeStore.removeIfHoldsNoWork(path: store.db) }
                throw error
            }
        }
    }

    /// - Parameter newStore: the store was just created empty and not migrated (`KnowledgeStore(migrateNow: false)`):
    ///   the first set's build writes its schema.
    func build(sets: [LabelSet], templates: [PromptTemplate], provider: KnowledgeProvider, store knowledgeStore: KnowledgeStore,
               newStore: Bool, progress: ProgressDisplay) async throws {
        if provider.kind == .offline, !quiet {
            Console.error("note: no --endpoint given, so knowledge comes from WordNet offline (\(endpoint.wordnetDirectory)). Point it at an LLM with --endpoint http://HOST:PORT (or SSPA_LLM_URL).")
        }
        var options = BuildOptions()
        options.jobs = jobs
        options.maxAttempts = maxAttempts
        options.maxConsecutiveFailures = maxFailures
        options.force = force
        options.resampleShort = resampleShort

        // WordNet's relations widen what counts as naming a label in the off-topic check; without it, names only.
        // Opened only if an answer names none of a label's names (the offline source brings its own).
        let wordnet = provider.wordnet.map { LazyWordNet($0) } ?? LazyWordNet(directory: endpoint.wordnetDirectory)

        let interrupt = InterruptHandler()
        defer { interrupt.restore() }
        var failures = 0
        var upToDate: [String] = []
        for (index, (set, template)) in zip(sets, templates).enumerated() {
            options.newStore = newStore && index == 0
            let builder = KnowledgeBuilder(
                store: knowledgeStore, provider: provider, prompts: prompt.builder(template: template, seed: sampling.seed),
                sampling: sampling.sampling, options: options, toolVersion: SSPAKnowledge.version, wordnet: wordnet)
            let task = Task { try await builder.run(set, structured: endpoint.structured) { progress.handle($0, set: set.name) } }
            interrupt.onSignal = { signal in
                progress.finishLine()
                Console.error("\(signal == SIGINT ? "interrupted" : "terminated"): finishing… every completed label is saved. Press Ctrl-C again to quit at once.")
                task.cancel()
            }
            do {
                let summary = try await task.value
                progress.summary(summary, set: set.name, provider: provider)
                if summary.status != .complete { failures += 1 }
                if summary.upToDate { upToDate.append(set.name) }
            } catch let stopped as BuildStopped {
                progress.summary(stopped.summary, set: set.name, provider: provider)
                if stopped.interrupted { throw CLIError(stopped.reason, code: .interrupted) }
                throw CLIError(stopped.reason, code: stopped.storeFailure ? .ioError : .failure)
            }
            if interrupt.fired { throw CLIError("interrupted; run the same command again to resume.", code: .interrupted) }
        }
        if failures > 0 { throw CLIError("\(failures) label set(s) have failed labels; run the same command again to retry them.") }
        if let example = upToDate.first, !quiet {
            Console.error("The knowledge is in \(store.db). Look with `sspa-knowledge show LABEL --label-set \(example)` or "
                + "`sqlite3 \(store.db) \"select label, description from descriptions_view where label_set='\(example)'\"`; rebuild with --force.")
        }
    }

    /// `--provider openai-batch`: rounds of upload, batch, poll and import for every set (BatchRoundTrip).
    func buildThroughBatchAPI(sets: [LabelSet], templates: [PromptTemplate], progress: ProgressDisplay) async throws {
        guard let base = endpoint.resolvedEndpoint else { throw CLIError("--provider openai-batch needs --endpoint URL.", code: .usage) }
        if force || resampleShort { throw CLIError("--force and --resample-short are not available with --provider openai-batch yet; start a new store, or use --provider openai.", code: .usage) }
        let key = ProcessInfo.processInfo.environment[endpoint.apiKeyEnv].flatMap { $0.isEmpty ? nil : $0 }
        let http = HTTPClient.live(timeout: endpoint.timeout, connections: 4)
        let api: BatchAPIClient
        do {
            api = try BatchAPIClient(baseURL: base, apiKey: key, http: http, timeout: endpoint.timeout, retry: RetryPolicy(maxRetries: endpoint.retries),
                                     onRetry: { what, error, wait in progress.retry(label: what, error: error.message, wait: wait) })
        } catch let error as ProviderError { throw CLIError(error.message, code: .usage) }
        let model: String
        if let named = endpoint.model ?? ProcessInfo.processInfo.environment["SSPA_LLM_MODEL"] {
            model = named
        } else {
            model = try await discoverModel(base: base, kind: .openai, key: key, http: http)
        }
        let lock = try BuildLock(path: store.db)
        defer { lock.release() }
        let knowledgeStore: KnowledgeStore
        do { knowledgeStore = try store.open() } catch {
            if lock.createdFile { KnowledgeStore.removeIfHoldsNoWork(path: store.db) }
            throw error
        }
        var options = BuildOptions()
        options.maxAttempts = maxAttempts
        let wordnet = LazyWordNet(directory: endpoint.wordnetDirectory)
        let display = BatchAPIDisplay(quiet: quiet)
        let importer = BatchImporter(store: knowledgeStore, wordnet: wordnet, prompts: batchPrompts(override: prompt.template, known: templates))
        let trip = BatchRoundTrip(store: knowledgeStore, api: api, importer: importer, poll: poll.policy) { display.handle($0) }
        let interrupt = InterruptHandler()
        defer { interrupt.restore() }
        var failed = 0
        for (set, template) in zip(sets, templates) {
            let builder = KnowledgeBuilder(store: knowledgeStore, provider: .batch(model: model, name: "openai-batch", endpoint: api.display),
                                           prompts: prompt.builder(template: template, seed: sampling.seed), sampling: sampling.sampling,
                                           options: options, toolVersion: SSPAKnowledge.version, wordnet: wordnet)
            let task = Task { try await trip.run(set, builder: builder, structured: endpoint.structured) }
            interrupt.onSignal = { signal in
                Console.error("\(signal == SIGINT ? "interrupted" : "terminated"): stopping; a batch already created keeps running remotely. Press Ctrl-C again to quit at once.")
                task.cancel()
            }
            do {
                let runID = try await task.value
                failed += try reportBatchRun(knowledgeStore, runID: runID, set: set.name)
            } catch {
                if interrupt.fired || error is CancellationError { throw batchInterrupted(knowledgeStore, db: store.db) }
                if lock.createdFile { KnowledgeStore.removeIfHoldsNoWork(path: store.db) }
                throw error
            }
        }
        if failed > 0 { throw CLIError("\(failed) label(s) failed in every attempt; see `sspa-knowledge validate`, or raise --max-attempts and run again.") }
    }

    func makeProvider(progress: ProgressDisplay) async throws -> KnowledgeProvider {
        let kind = endpoint.resolvedProvider
        if kind == .wordnet { return try .wordnet(directory: endpoint.wordnetDirectory) }
        guard let base = endpoint.resolvedEndpoint else {
            throw CLIError("--provider \(kind.rawValue) needs --endpoint URL (or SSPA_LLM_URL).", code: .usage)
        }
        let key = ProcessInfo.processInfo.environment[endpoint.apiKeyEnv].flatMap { $0.isEmpty ? nil : $0 }
        // At most --jobs requests in flight; the builder keeps more labels ready, which the client sends in order.
        let http = HTTPClient.live(timeout: endpoint.timeout, connections: jobs + 2, requestLimit: jobs)
        let model: String
        if let named = endpoint.model ?? ProcessInfo.processInfo.environment["SSPA_LLM_MODEL"] {
            model = named
        } else {
            model = try await discoverModel(base: base, kind: kind, key: key, http: http)
        }
        let settings = EndpointSettings(
            baseURL: base, model: model, apiKey: key, timeout: endpoint.timeout, structured: endpoint.structured,
            retry: RetryPolicy(maxRetries: endpoint.retries),
            onRetry: { label, error, wait in progress.retry(label: label, error: error.message, wait: wait) })
        return kind == .ollama ? try .ollama(settings, http: http) : try .openAI(settings, http: http)
    }

    /// Asks an OpenAI-compatible server for its models and takes the only one; more than one needs --model.
    func discoverModel(base: String, kind: EndpointOptions.ProviderName, key: String?, http: HTTPClient) async throws -> String {
        guard kind == .openai else { throw CLIError("pass --model NAME (the model the Ollama server should run).", code: .usage) }
        let endpointURL: EndpointURL
        do { endpointURL = try EndpointURL(base).stripping(suffix: "/v1") } catch let error as ProviderError { throw CLIError(error.message, code: .usage) }
        guard let url = endpointURL.requestURL(path: "/v1/models") else { throw CLIError("\(endpointURL.display) is not a valid URL.", code: .usage) }
        let shown = EndpointURL.shown(url)
        var request = HTTPRequest(url: url, timeoutInterval: min(endpoint.timeout, 30))
        if let key {
            request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
        } else if let basic = endpointURL.basicAuthorization {
            request.setValue(basic, forHTTPHeaderField: "Authorization")
        }
        var names: [String]?
        var failure: String?
        do {
            let (data, response) = try await http.send(request)
            if response.statusCode == 200, let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
               let list = object["data"] as? [[String: Any]] {
                names = list.compactMap { $0["id"] as? String }
            } else {
                failure = "HTTP \(response.statusCode)"
            }
        } catch {
            failure = error.localizedDescription
        }
        guard let names else {
            throw CLIError("pass --model NAME: could not list the server's models at \(shown) (\(failure.map(endpointURL.redact) ?? "no answer")).", code: .usage)
        }
        guard names.count == 1 else {
            throw CLIError("pass --model NAME: the server offers \(names.isEmpty ? "no models" : names.joined(separator: ", ")).", code: .usage)
        }
        return names[0]
    }
}

/// A store that does not exist yet, being created beside the start of a build: its lock taken (which creates the
/// file) and its schema written on another thread. `take` gives the lock and the store, or the error a sequential
/// start would have met (having removed the file it created); `abandon` undoes it when the build will not run.
final class NewStoreOpening: @unchecked Sendable {
    private let path: String
    private let task: Task<BuildLock, Error>
    /// The opened store, held apart from the task's result so that it can be closed before its file is removed.
    private let box = StoreBox()

    private final class StoreBox: @unchecked Sendable {
        let lock = NSLock()
        var store: KnowledgeStore?
    }

    init(path: String) {
        self.path = path
        StoreOptions.lastOpened = path
        let box = box
        task = Task.detached {
            let lock = try BuildLock(path: path)
            do {
                // A file this lock created is empty: its schema is written by the build, beside its first requests.
                let store = try KnowledgeStore(path: path, migrateNow: !lock.createdFile)
                box.lock.withLock { box.store = store }
                return lock
            } catch {
                if lock.createdFile { KnowledgeStore.removeIfHoldsNoWork(path: path) }
                lock.release()
                throw error
            }
        }
    }

    func take() async throws -> (BuildLock, KnowledgeStore?) {
        let lock = try await task.value
        return (lock, box.lock.withLock { defer { box.store = nil }; return box.store })
    }

    func abandon() async {
        guard let lock = try? await task.value else { return }
        box.lock.withLock { box.store = nil }
        if lock.createdFile { KnowledgeStore.removeIfHoldsNoWork(path: path) }
        lock.release()
    }
}
