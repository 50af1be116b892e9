import Foundation

/// A batch as an OpenAI-compatible Batch API reports it (`GET /v1/batches/{id}`).
public struct RemoteBatch: Sendable, Hashable, Decodable {
    public struct Counts: Sendable, Hashable, Decodable {
        public var total: Int
        public var completed: Int
        public var failed: Int
    }

    public struct Errors: Sendable, Hashable, Decodable {
        public struct Item: Sendable, Hashable, Decodable {
            public var code: String?
            public var message: String?
            public var line: Int?
        }

        public var data: [Item]?
    }

    public var id: String
    public var status: String
    public var inputFileID: String?
    public var outputFileID: String?
    public var errorFileID: String?
    public var requestCounts: Counts?
    public var errors: Errors?

    enum CodingKeys: String, CodingKey {
        case id, status, errors
        case inputFileID = "input_file_id"
        case outputFileID = "output_file_id"
        case errorFileID = "error_file_id"
        case requestCounts = "request_counts"
    }

    /// The batch will change no more: its output and error files (if any) are final.
    public var isTerminal: Bool { ["completed", "failed", "expired", "cancelled"].contains(status) }

    /// "in_progress, 120/500 done, 2 failed".
    public var shown: String {
        guard let counts = requestCounts, counts.total > 0 else { return status }
        return "\(status), \(counts.completed)/\(counts.total) done" + (counts.failed > 0 ? ", \(counts.failed) failed" : "")
    }

    /// The reasons a batch failed validation, one per line, with the input line they name.
    public var errorSummary: String {
        let items = errors?.data ?? []
        if items.isEmpty { return "no reason given" }
        return items.prefix(5).map { item in
            (item.line.map { "line \($0): " } ?? "") + (item.message ?? item.code ?? "unknown error")
        }.joined(separator: "; ") + (items.count > 5 ? "; … \(items.count - 5) more" : "")
    }
}

/// The four calls of OpenAI's Batch API that a round trip needs: upload the input file, create the batch, retrieve
/// it, download a file's content. Every call goes through the build's retry policy (429 with Retry-After, 5xx,
/// time-outs), and no message holds the key.
public struct BatchAPIClient: Sendable {
    let endpoint: EndpointURL
    let poster: JSONPoster

    public init(baseURL: String, apiKey: String?, http: HTTPClient, timeout: Double, retry: RetryPolicy,
                onRetry: @escaping @Sendable (_ what: String, _ error: ProviderError, _ wait: Double) -> Void = { _, _, _ in }) throws {
        endpoint = try EndpointURL(baseURL).stripping(suffix: "/v1")
        poster = JSONPoster(http: http, policy: retry, apiKey: apiKey, timeout: timeout, onRetry: onRetry, endpoint: endpoint)
    }

    /// What may be shown and stored of the endpoint.
    public var display: String { endpoint.display }

    func url(_ path: String) throws -> URL {
        guard let url = endpoint.requestURL(path: path) else {
            throw ProviderError(.configuration, "\(endpoint.display) is not a valid URL. Pass the Batch API's base URL, e.g. https://api.openai.com.")
        }
        return url
    }

    /// `POST /v1/files` (multipart, purpose `batch`): the file's id.
    public func upload(_ data: Data, filename: String) async throws -> String {
        let boundary = "sspa-" + UUID().uuidString
        var body = Data()
        func field(_ header: String, _ content: Data) {
            body.append(Data("--\(boundary)\r\n\(header)\r\n\r\n".utf8))
            body.append(content)
            body.append(Data("\r\n".utf8))
        }
        field("Content-Disposition: form-data; name=\"purpose\"", Data("batch".utf8))
        field("Content-Disposition: form-data; name=\"file\"; filename=\"\(filename)\"\r\nContent-Type: application/jsonl", data)
        body.append(Data("--\(boundary)--\r\n".utf8))
        var request = HTTPRequest(url: try url("/v1/files"))
        request.httpMethod = "POST"
        request.httpBody = body
        request.setValue("multipart/form-data; boundary=\(boundary)", forHTTPHeaderField: "Content-Type")
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        let reply = try await poster.send(request, label: "upload \(filename)")
        guard let object = try? JSONSerialization.jsonObject(with: reply.data) as? [String: Any], let id = object["id"] as? String, !id.isEmpty else {
            throw ProviderError(.badResponse, "POST \(endpoint.display)/v1/files answered without a file id: \(JSONPoster.firstLine(String(decoding: reply.data.prefix(300), as: UTF8.self)))")
        }
        return id
    }

    /// `POST /v1/batches` for chat completions over `inputFileID`.
    public func create(inputFileID: String, window: String = "24h", metadata: [String: String] = [:]) async throws -> RemoteBatch {
        var body: [String: JSONValue] = [
            "input_file_id": .string(inputFileID), "endpoint": .string("/v1/chat/completions"), "completion_window": .string(window),
        ]
        if !metadata.isEmpty { body["metadata"] = .object(metadata.mapValues { .string($0) }) }
        let reply = try await poster.post(try url("/v1/batches"), body: .object(body), label: "create batch")
        return try decode(reply.data, what: "POST \(endpoint.display)/v1/batches")
    }

    /// `GET /v1/batches/{id}`.
    public func retrieve(_ id: String) async throws -> RemoteBatch {
        let reply = try await poster.send(get("/v1/batches/\(Self.pathComponent(id))"), label: "batch \(id)")
        return try decode(reply.data, what: "GET \(endpoint.display)/v1/batches/\(id)")
    }

    /// `GET /v1/files/{id}/content`: the file's bytes.
    public func content(ofFile id: String) async throws -> Data {
        try await poster.send(get("/v1/files/\(Self.pathComponent(id))/content"), label: "file \(id)").data
    }

    func get(_ path: String) throws -> HTTPRequest {
        var request = HTTPRequest(url: try url(path))
        request.httpMethod = "GET"
        return request
    }

    func decode(_ data: Data, what: String) throws -> RemoteBatch {
        do {
            return try JSONDecoder().decode(RemoteBatch.self, from: data)
        } catch {
            throw ProviderError(.badResponse, "\(what) answered something that is not a batch: \(JSONPoster.firstLine(String(decoding: data.prefix(300), as: UTF8.self)))")
        }
    }

    /// An id as one path segment: anything outside [A-Za-z0-9_.-] is percent-encoded, so an id can never change the path.
    static func pathComponent(_ id: String) -> String {
        let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
        return id.addingPercentEncoding(withAllowedCharacters: allowed) ?? id
    }
}
