import Foundation

/// Sampling parameters sent with every request, and part of a run's identity.
public struct Sampling: Sendable, Hashable, Codable {
    public var temperature: Double
    public var seed: Int
    public var maxTokens: Int
    public var n: Int

    public init(temperature: Double = 0.7, seed: Int = 0, maxTokens: Int = 400, n: Int = 1) {
        self.temperature = temperature
        self.seed = seed
        self.maxTokens = maxTokens
        self.n = n
    }

    enum CodingKeys: String, CodingKey {
        case temperature, seed, n
        case maxTokens = "max_tokens"
    }
}

/// Whether to ask for JSON-schema structured output.
public enum StructuredMode: String, Sendable, CaseIterable, Codable {
    /// Ask for the schema; if the server rejects it, fall back once to plain text for the rest of the run.
    case auto
    case on
    case off
}

/// One question to a knowledge source: the rendered prompt for one label.
public struct KnowledgeRequest: Sendable {
    public var label: Label
    public var prompt: RenderedPrompt
    public var sampling: Sampling
    /// Descriptions wanted.
    public var count: Int
    /// The template's domain phrase ("natural images"): what the prompt speaks of, for a source that does not read
    /// the prompt (the offline source picks word senses by it).
    public var domain: String
    /// Every label of the label set `label` belongs to (the context that tells "mouse" the device from the animal).
    public var labelSet: [Label]

    public init(label: Label, prompt: RenderedPrompt, sampling: Sampling, count: Int, domain: String, labelSet: [Label] = []) {
        self.label = label
        self.prompt = prompt
        self.sampling = sampling
        self.count = count
        self.domain = domain
        self.labelSet = labelSet
    }
}

/// What a source said about one label: free text to parse, ready descriptions, or that it knows nothing.
public enum KnowledgeAnswer: Sendable, Hashable {
    /// Free text, one per sampled choice, for `ResponseParser` (an LLM's answer).
    case choices([KnowledgeResponse.Choice])
    /// Descriptions ready to store, one sentence each (an offline source such as WordNet).
    case descriptions([String])
    /// The source has no knowledge of the label, and why (recorded as state `none`, never faked).
    case none(reason: String)
}

/// What a knowledge source answered, with the metadata provenance keeps.
public struct KnowledgeResponse: Sendable {
    public struct Choice: Sendable, Hashable {
        public var content: String
        public var finishReason: String?
        public init(content: String, finishReason: String?) {
            self.content = content
            self.finishReason = finishReason
        }
    }

    public var answer: KnowledgeAnswer
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var systemFingerprint: String?
    /// The response body as received (for LLMs), or the source's own record (for offline sources).
    public var raw: String
    public var httpStatus: Int?
    public var latency: Double
    /// Source-specific provenance: the structured-output mode used, WordNet sense keys, the model the server named.
    public var metadata: [String: String]

    public init(
        _ answer: KnowledgeAnswer, promptTokens: Int? = nil, completionTokens: Int? = nil, systemFingerprint: String? = nil,
        raw: String, httpStatus: Int? = nil, latency: Double, metadata: [String: String] = [:]
    ) {
        self.answer = answer
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.systemFingerprint = systemFingerprint
        self.raw = raw
        self.httpStatus = httpStatus
        self.latency = latency
        self.metadata = metadata
    }

    /// The free-text choices, when the answer is free text.
    public var choices: [Choice] {
        if case .choices(let choices) = answer { return choices }
        return []
    }
}

/// A knowledge source: one value with one closure, so a new backend is one new file and tests can pass their own.
public struct KnowledgeProvider: Sendable {
    /// How a source is asked and how far its answers vary.
    public enum Kind: String, Sendable {
        /// A language model: reads the rendered prompt; a new seed gives a new answer, so a short label is asked again.
        case model
        /// An offline source: reads only the label's names, the set and the domain, and always answers alike, so it is
        /// asked once per label, one label at a time.
        case offline
    }

    /// `openai`, `ollama` or `wordnet`: the `provider` column of a run.
    public var name: String
    /// The base URL, or the WordNet folder. Never holds a key.
    public var endpoint: String
    public var model: String
    public var kind: Kind
    public var describe: @Sendable (KnowledgeRequest) async throws -> KnowledgeResponse
    /// The WordNet the source reads, when it reads one (the quality checks reuse it).
    public var wordnet: WordNetDatabase?
    /// The most requests the source's HTTP client has in flight at once, when the client holds the others back in
    /// order itself (`HTTPClient.requestLimit`). A build whose `--jobs` is at least this then prepares as many labels
    /// again ahead: their requests wait, ready, in the client, and each goes out the moment a request ends instead of
    /// after its answer has been judged.
    public var requestLimit: Int?

    public init(name: String, endpoint: String, model: String, kind: Kind = .model, wordnet: WordNetDatabase? = nil,
                describe: @escaping @Sendable (KnowledgeRequest) async throws -> KnowledgeResponse) {
        self.name = name
        self.endpoint = endpoint
        self.model = model
        self.kind = kind
        self.wordnet = wordnet
        self.describe = describe
    }

    /// Whether the source reads the rendered chat prompt. An offline source reads only the label's names, the domain
    /// and the count, so its request log keeps those instead of a 4 KB prompt it never saw.
    public var readsPrompt: Bool { kind == .model }
}

/// Why a request failed. `isFatal` errors stop the whole run (a bad key, no quota, a wrong URL).
public struct ProviderError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        case authentication, quota, notFound, badRequest, rateLimited, server, timeout, connection, badResponse, configuration
    }

    public var kind: Kind
    public var message: String
    public var httpStatus: Int?
    /// The body the server sent, redacted, kept for the request log.
    public var body: String?

    public init(_ kind: Kind, _ message: String, httpStatus: Int? = nil, body: String? = nil) {
        self.kind = kind
        self.message = message
        self.httpStatus = httpStatus
        self.body = body
    }

    public var isFatal: Bool { [.authentication, .quota, .notFound, .configuration].contains(kind) }
    public var isRetryable: Bool { [.rateLimited, .server, .timeout, .connection].contains(kind) }
    public var description: String { message }
}
