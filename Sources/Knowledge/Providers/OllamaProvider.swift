import Foundation

extension KnowledgeProvider {
    /// Ollama's `POST {base}/api/chat`, non-streaming, with `format` set to the descriptions JSON schema.
    ///
    /// Ollama has no `n`: one request gives one answer, and short labels are resampled with new seeds instead.
    public static func ollama(_ settings: EndpointSettings, http: HTTPClient) throws -> KnowledgeProvider {
        let endpoint = try EndpointURL(settings.baseURL).stripping(suffix: "/api")
        guard let url = endpoint.requestURL(path: "/api/chat") else {
            throw ProviderError(.configuration, "\(endpoint.display) is not a valid URL. Pass Ollama's base URL, e.g. http://127.0.0.1:11434.")
        }
        let poster = JSONPoster(http: http, policy: settings.retry, apiKey: settings.apiKey, timeout: settings.timeout, onRetry: settings.onRetry, endpoint: endpoint)
        var provider = KnowledgeProvider(name: "ollama", endpoint: endpoint.display, model: settings.model) { request in
            var body: [String: JSONValue] = [
                "model": .string(settings.model),
                "messages": .encoded(request.prompt.encoded),
                "stream": .bool(false),
                "options": .object([
                    "temperature": .double(request.sampling.temperature),
                    "seed": .int(request.sampling.seed),
                    "num_predict": .int(request.sampling.maxTokens),
                ]),
            ]
            if settings.structured != .off { body["format"] = DescriptionSchema.schema(count: request.count) }
            let reply = try await poster.post(url, body: .object(body), label: request.label.rawName)
            let raw = poster.redact(String(decoding: reply.data, as: UTF8.self))
            guard let object = try? JSONSerialization.jsonObject(with: reply.data) as? [String: Any] else {
                throw ProviderError(.badResponse, "\(EndpointURL.shown(url)) answered HTTP \(reply.status) with a body that is not JSON (\(describeBody(reply.data))). Is --endpoint an Ollama server?", httpStatus: reply.status, body: raw)
            }
            guard let message = object["message"] as? [String: Any], let content = message["content"] as? String else {
                throw ProviderError(.badResponse, "\(EndpointURL.shown(url)) answered JSON without 'message.content'; not an Ollama chat response.", httpStatus: reply.status, body: raw)
            }
            var metadata = ["structured": settings.structured == .off ? "none" : "ollama_format"]
            if let model = object["model"] as? String { metadata["served_model"] = model }
            return KnowledgeResponse(
                .choices([.init(content: content, finishReason: object["done_reason"] as? String)]),
                promptTokens: object["prompt_eval_count"] as? Int,
                completionTokens: object["eval_count"] as? Int,
                raw: raw,
                httpStatus: reply.status,
                latency: reply.latency,
                metadata: metadata
            )
        }
        provider.requestLimit = http.requestLimit
        return provider
    }
}
