import Foundation

/// Settings shared by the HTTP providers.
public struct EndpointSettings: Sendable {
    public var baseURL: String
    public var model: String
    public var apiKey: String?
    public var timeout: Double
    public var structured: StructuredMode
    public var retry: RetryPolicy
    public var onRetry: @Sendable (_ label: String, _ error: ProviderError, _ wait: Double) -> Void

    public init(
        baseURL: String, model: String, apiKey: String?, timeout: Double = 120, structured: StructuredMode = .auto,
        retry: RetryPolicy = RetryPolicy(), onRetry: @escaping @Sendable (String, ProviderError, Double) -> Void = { _, _, _ in }
    ) {
        self.baseURL = baseURL
        self.model = model
        self.apiKey = apiKey
        self.timeout = timeout
        self.structured = structured
        self.retry = retry
        self.onRetry = onRetry
    }
}

/// The JSON schema every structured request asks for.
enum DescriptionSchema {
    static func schema(count: Int) -> JSONValue {
        .object([
            "type": .string("object"),
            "properties": .object([
                "descriptions": .object([
                    "type": .string("array"),
                    "items": .object(["type": .string("string")]),
                    "minItems": .int(1),
                    "maxItems": .int(max(count, 1) * 2),
                ]),
            ]),
            "required": .array([.string("descriptions")]),
            "additionalProperties": .bool(false),
        ])
    }
}

/// Remembers, for the whole run, which structured-output form the server accepted.
final class StructuredFallback: @unchecked Sendable {
    private let lock = NSLock()
    private var index = 0
    func current() -> Int { lock.withLock { index } }
    func advance(from seen: Int) { lock.withLock { if index == seen { index += 1 } } }
}

extension KnowledgeProvider {
    /// An OpenAI-compatible `POST {base}/v1/chat/completions` endpoint: OpenAI, vLLM, llama.cpp's server, LM Studio.
    ///
    /// With `structured: auto` it asks for `{"descriptions": [...]}` through `response_format`, first as OpenAI's
    /// `json_schema`, then as the `json_object` + `schema` form llama.cpp's servers take, and, if the server rejects
    /// both, as plain text; the form that worked is kept for the rest of the run.
    public static func openAI(_ settings: EndpointSettings, http: HTTPClient) throws -> KnowledgeProvider {
        let endpoint = try EndpointURL(settings.baseURL).stripping(suffix: "/v1")
        guard let url = endpoint.requestURL(path: "/v1/chat/completions") else {
            throw ProviderError(.configuration, "\(endpoint.display) is not a valid URL. Pass the server's base URL, e.g. http://127.0.0.1:8080.")
        }
        let poster = JSONPoster(http: http, policy: settings.retry, apiKey: settings.apiKey, timeout: settings.timeout, onRetry: settings.onRetry, endpoint: endpoint)
        let forms: [String] = switch settings.structured {
        case .off: ["none"]
        case .on: ["json_schema", "json_object"]
        case .auto: ["json_schema", "json_object", "none"]
        }
        let fallback = StructuredFallback()

        var provider = KnowledgeProvider(name: "openai", endpoint: endpoint.display, model: settings.model) { request in
            while true {
                let index = fallback.current()
                let form = forms[min(index, forms.count - 1)]
                var body: [String: JSONValue] = [
                    "model": .string(settings.model),
                    "messages": .encoded(request.prompt.encoded),
                    "temperature": .double(request.sampling.temperature),
                    "seed": .int(request.sampling.seed),
                    "max_tokens": .int(request.sampling.maxTokens),
                ]
                if request.sampling.n > 1 { body["n"] = .int(request.sampling.n) }
                let schema = DescriptionSchema.schema(count: request.count)
                switch form {
                case "json_schema":
                    body["response_format"] = .object(["type": .string("json_schema"), "json_schema": .object(["name": .string("descriptions"), "schema": schema])])
                case "json_object":
                    body["response_format"] = .object(["type": .string("json_object"), "schema": schema])
                default: break
                }
                let reply: JSONPoster.Reply
                do {
                    reply = try await poster.post(url, body: .object(body), label: request.label.rawName)
                } catch let error as ProviderError where error.kind == .badRequest && form != "none" && index + 1 < forms.count
                    && rejectsResponseFormat(error) {
                    // The server rejected this response_format: try the next form once, for every later request too.
                    fallback.advance(from: index)
                    continue
                }
                return try parseChatCompletion(reply, form: form, url: url, redact: poster.redact)
            }
        }
        provider.requestLimit = http.requestLimit
        return provider
    }

    static func parseChatCompletion(_ reply: JSONPoster.Reply, form: String, url: URL, redact: (String) -> String) throws -> KnowledgeResponse {
        let raw = redact(reply.data.withUnsafeBytes { String(decoding: $0, as: UTF8.self) })
        guard let document = try? ParsedJSON.parse(reply.data), let object = document.object else {
            throw ProviderError(.badResponse, "\(EndpointURL.shown(url)) answered HTTP \(reply.status) with a body that is not JSON (\(describeBody(reply.data))). Is --endpoint an OpenAI-compatible server?", httpStatus: reply.status, body: raw)
        }
        guard let choices = object["choices"]?.array, !choices.isEmpty, choices.allSatisfy({ $0.object != nil }) else {
            throw ProviderError(.badResponse, "\(EndpointURL.shown(url)) answered JSON without 'choices'; not an OpenAI chat completion.", httpStatus: reply.status, body: raw)
        }
        let parsed = choices.map { choice -> KnowledgeResponse.Choice in
            let content = choice["message"]?["content"]?.string ?? choice["text"]?.string ?? ""
            return KnowledgeResponse.Choice(content: content, finishReason: choice["finish_reason"]?.string)
        }
        let usage = object["usage"]
        var metadata = ["structured": form]
        if let model = object["model"]?.string { metadata["served_model"] = model }
        return KnowledgeResponse(
            .choices(parsed),
            promptTokens: usage?["prompt_tokens"]?.int,
            completionTokens: usage?["completion_tokens"]?.int,
            systemFingerprint: object["system_fingerprint"]?.string,
            raw: raw,
            httpStatus: reply.status,
            latency: reply.latency,
            metadata: metadata
        )
    }

    /// Whether a 4xx answer is about `response_format` rather than, say, an over-long prompt.
    static func rejectsResponseFormat(_ error: ProviderError) -> Bool {
        let text = (error.body ?? error.message).lowercased()
        return ["response_format", "json_schema", "schema", "json_object", "format"].contains { text.contains($0) }
    }

    static func describeBody(_ data: Data) -> String {
        let text = String(decoding: data.prefix(60), as: UTF8.self).replacingOccurrences(of: "\n", with: " ")
        if data.isEmpty { return "empty" }
        return "\(data.count) bytes starting \"\(text)\(data.count > 60 ? "…" : "")\""
    }
}
