import ArgumentParser
import CommandSupport
import Foundation
import Knowledge

/// `--db`, on every command.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The knowledge store, a SQLite file.", valueName: "path"))
    var db: String = "knowledge.db"

    /// The store the command opened last, for messages about errors that reach the top.
    nonisolated(unsafe) static var lastOpened = "knowledge.db"

    func open(readOnly: Bool = false) throws -> KnowledgeStore {
        Self.lastOpened = db
        let store = try KnowledgeStore(path: db, readOnly: readOnly)
        if !store.unknownMigrations.isEmpty {
            Console.error("warning: \(db) was written by a newer version of sspa-knowledge (schema \(store.unknownMigrations.joined(separator: ", "))); reading it as this version understands it. Upgrade sspa-knowledge.")
        }
        return store
    }
}

/// Which knowledge source to ask, and how to reach it.
struct EndpointOptions: ParsableArguments {
    enum ProviderName: String, ExpressibleByArgument, CaseIterable {
        case auto, openai, ollama, wordnet
        case openaiBatch = "openai-batch"
    }

    @Option(help: ArgumentHelp(
        "The LLM server's base URL, e.g. http://127.0.0.1:8080 (also read from SSPA_LLM_URL). Without one, the offline WordNet source is used.",
        valueName: "url"))
    var endpoint: String?

    @Option(help: ArgumentHelp("openai (any OpenAI-compatible server), ollama, wordnet, openai-batch (an OpenAI-compatible Batch API: upload, poll, import; --endpoint defaults to https://api.openai.com), or auto: wordnet without an endpoint, ollama for port 11434, else openai."))
    var provider: ProviderName = .auto

    @Option(help: ArgumentHelp("The model name the server knows (also SSPA_LLM_MODEL). If omitted, the server's only model from /v1/models is used.", valueName: "name"))
    var model: String?

    @Option(name: .customLong("api-key-env"), help: ArgumentHelp("The environment variable holding the API key. The key is never stored or printed.", valueName: "name"))
    var apiKeyEnv: String = "OPENAI_API_KEY"

    @Option(help: ArgumentHelp("Seconds before a request is abandoned and retried.", valueName: "seconds"))
    var timeout: Double = 120

    @Option(help: ArgumentHelp("Retries of a request after 429, 5xx, timeouts and connection errors, with capped exponential backoff.", valueName: "n"))
    var retries: Int = 5

    @Option(help: ArgumentHelp("Ask for JSON-schema structured output: on, off, or auto (try it, fall back to plain text once if the server rejects it)."))
    var structured: StructuredMode = .auto

    @Option(name: .customLong("wordnet"), help: ArgumentHelp("The WordNet database folder for the offline source.", valueName: "dir"))
    var wordnetDirectory: String = "/usr/share/wordnet"

    func validate() throws {
        guard timeout.isFinite, timeout > 0 else { throw ValidationError("--timeout must be a finite number of seconds above 0.") }
        guard retries >= 0 else { throw ValidationError("--retries must not be negative.") }
        if let url = resolvedEndpoint {
            // Checked first, so a malformed URL is named as such (and never echoed with its credentials).
            do { _ = try EndpointURL(url) } catch let error as ProviderError {
                throw ValidationError((endpoint == nil ? "SSPA_LLM_URL: " : "") + error.message)
            }
        }
    }

    /// The endpoint from the flag or SSPA_LLM_URL.
    var resolvedEndpoint: String? {
        if let endpoint, !endpoint.isEmpty { return endpoint }
        if let env = ProcessInfo.processInfo.environment["SSPA_LLM_URL"], !env.isEmpty { return env }
        return provider == .openaiBatch ? "https://api.openai.com" : nil
    }

    var resolvedProvider: ProviderName {
        if provider != .auto { return provider }
        guard let endpoint = resolvedEndpoint else { return .wordnet }
        return URLComponents(string: endpoint)?.port == 11434 ? .ollama : .openai
    }
}

extension StructuredMode: ExpressibleByArgument {}
extension DemoSelection: ExpressibleByArgument {}

/// How prompts are built.
struct PromptOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A template name in templates/ (natural, pedestrian, remote-sensing) or a path to a .yaml file. Default: the label file's `# template:` line, else natural.", valueName: "name|path"))
    var template: String?

    @Option(help: ArgumentHelp("Demonstrations shown before the question (default: the template's demonstration_count).", valueName: "k"))
    var demos: Int?

    @Option(name: .customLong("demo-selection"), help: ArgumentHelp("How demonstrations are picked: fixed (the first k), random (seeded by --seed), similar (closest label names)."))
    var demoSelection: DemoSelection = .fixed

    @Option(help: ArgumentHelp("Descriptions wanted per label (default: the template's description_count).", valueName: "n"))
    var count: Int?

    func validate() throws {
        if let demos, demos < 0 { throw ValidationError("--demos must not be negative.") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1.") }
    }

    func loadTemplate(for set: LabelSet) throws -> PromptTemplate {
        try TemplateLocator.standard().load(template ?? set.templateHint ?? "natural")
    }

    func builder(template: PromptTemplate, seed: Int) -> PromptBuilder {
        PromptBuilder(template: template, demos: demos, selection: demoSelection, seed: UInt64(bitPattern: Int64(seed)), count: count)
    }
}

/// Sampling parameters.
struct SamplingOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Sampling temperature.", valueName: "t"))
    var temperature: Double = 0.7

    @Option(help: ArgumentHelp("Seed of the first request for each label; resampling uses seed+1, seed+2, …", valueName: "n"))
    var seed: Int = 0

    @Option(name: .customLong("max-tokens"), help: ArgumentHelp("Tokens the model may generate per answer.", valueName: "n"))
    var maxTokens: Int = 400

    @Option(name: .customShort("n"), help: ArgumentHelp("Answers per request, where the server supports `n`.", valueName: "n"))
    var choices: Int = 1

    func validate() throws {
        guard temperature.isFinite, temperature >= 0 else { throw ValidationError("--temperature must be a finite number ≥ 0 (got \(temperature)).") }
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive.") }
        guard choices >= 1 else { throw ValidationError("-n must be at least 1.") }
    }

    var sampling: Sampling { Sampling(temperature: temperature, seed: seed, maxTokens: maxTokens, n: choices) }
}

/// Loads label files, turning parse errors into messages that name the file and line.
enum LabelSources {
    /// Expands directories into their `.txt` files, sorted.
    static func files(_ paths: [String]) throws -> [String] {
        var result: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw CLIError("\(path): no such label file. Write one label per line, e.g. `diningtable => dining table`.")
            }
            if isDirectory.boolValue {
                let entries = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".txt") }.sorted()
                if entries.isEmpty { throw CLIError("\(path): the folder has no .txt label files.") }
                result += entries.map { (path as NSString).appendingPathComponent($0) }
            } else {
                result.append(path)
            }
        }
        return result
    }
}
