import CCurl
import Foundation

/// An HTTP request, as `HTTPClient` sends it. Foundation's `URLRequest` lives in FoundationNetworking, which links
/// libcurl and its thirty-odd dependencies into every start of every command; this project's client opens libcurl
/// itself, on first use (Sources/CCurl), so it speaks its own small types. The names follow `URLRequest`'s.
public struct HTTPRequest: Sendable {
    public var url: URL?
    public var httpMethod: String? = "GET"
    public var httpBody: Data?
    /// Seconds for the whole request, when less than the client's own time-out.
    public var timeoutInterval: Double?
    /// In the order set; names compare without regard to ASCII case, as HTTP's do.
    public private(set) var headers: [(name: String, value: String)] = []

    public init(url: URL, timeoutInterval: Double? = nil) {
        self.url = url
        self.timeoutInterval = timeoutInterval
    }

    /// Sets (or, with nil, removes) a header, replacing one of the same name in any case.
    public mutating func setValue(_ value: String?, forHTTPHeaderField name: String) {
        headers.removeAll { FastText.equalsIgnoringASCIICase($0.name, name) }
        if let value { headers.append((name, value)) }
    }

    public func value(forHTTPHeaderField name: String) -> String? {
        headers.first { FastText.equalsIgnoringASCIICase($0.name, name) }?.value
    }
}

/// An HTTP response's status line and headers (the body comes beside it).
public struct HTTPResponse: Sendable {
    public var statusCode: Int
    /// "HTTP/1.1" or "HTTP/2".
    public var httpVersion: String
    public var headers: [String: String]

    public init(statusCode: Int, httpVersion: String = "HTTP/1.1", headers: [String: String] = [:]) {
        self.statusCode = statusCode
        self.httpVersion = httpVersion
        self.headers = headers
    }

    /// A header's value; names compare case-insensitively.
    public func value(forHTTPHeaderField name: String) -> String? {
        if let exact = headers[name] { return exact }
        return headers.first { FastText.equalsIgnoringASCIICase($0.key, name) }?.value
    }
}

/// The HTTP seam: one closure that sends a request and returns the body and response.
public struct HTTPClient: Sendable {
    public var send: @Sendable (HTTPRequest) async throws -> (Data, HTTPResponse)
    /// The most requests this client has in flight at once, when it holds the rest back itself (in the order they
    /// were sent); nil when every request goes out at once.
    public var requestLimit: Int?

    public init(requestLimit: Int? = nil, send: @escaping @Sendable (HTTPRequest) async throws -> (Data, HTTPResponse)) {
        self.requestLimit = requestLimit
        self.send = send
    }

    /// A client on libcurl's multi interface (`CurlEngine`): one event loop for every request, connections kept and
    /// shared (`connections` per host at once), `timeout` seconds for a whole request and at most 10 s to connect.
    /// With a `requestLimit`, at most that many requests are in flight; the others wait their turn in order, and
    /// their time-out starts when they go out.
    ///
    /// The engine is made by the first request, not here: making it waits for libcurl to finish loading (`preload`),
    /// and a build readies its store and its first prompts meanwhile.
    public static func live(timeout: Double, connections: Int, requestLimit: Int? = nil) -> HTTPClient {
        let options = CurlEngine.Options(timeout: timeout, connectTimeout: min(timeout, 10), connectionsPerHost: connections,
                                         requestLimit: max(requestLimit ?? 0, 0))
        let engine = MadeOnFirstUse { CurlEngine(options: options) }
        return HTTPClient(requestLimit: requestLimit) { request in try await engine.value.send(request) }
    }

    /// Starts opening libcurl on a thread of its own, for a command that will make requests: it is opened on first
    /// use (Sources/CCurl), and binding it and its thirty-odd dependencies takes longer than reading a build's
    /// arguments, label files and template, which it can overlap. Harmless when no request follows.
    public static func preload() {
        sspa_curl_preload()
    }
}

/// Sends JSON requests with retries, turning every failure into a `ProviderError` whose text never holds the key.
struct JSONPoster: Sendable {
    var http: HTTPClient
    var policy: RetryPolicy
    var apiKey: String?
    var timeout: Double
    /// Called before each retry, so the command can show it.
    var onRetry: @Sendable (_ label: String, _ error: ProviderError, _ wait: Double) -> Void
    /// The endpoint's credentials: userinfo sent as basic authorization, values redacted from every text.
    var endpoint: EndpointURL? = nil

    struct Reply {
        var data: Data
        var status: Int
        var latency: Double
    }

    func post(_ url: URL, body: JSONValue, label: String, extraHeaders: [String: String] = [:]) async throws -> Reply {
        let payload = try body.data()
        var request = HTTPRequest(url: url)
        request.httpMethod = "POST"
        request.httpBody = payload
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        request.setValue(FastText.percentEncodingAllButASCIIAlphanumerics(label), forHTTPHeaderField: "X-SSPA-Label")
        for (name, value) in extraHeaders { request.setValue(value, forHTTPHeaderField: name) }
        return try await send(request, label: label)
    }

    /// Sends `request` (with its Authorization already set, or set here from the key or the endpoint's userinfo),
    /// retrying 429, 5xx, time-outs and connection errors under the policy and honouring Retry-After.
    func send(_ request: HTTPRequest, label: String) async throws -> Reply {
        var request = request
        if request.value(forHTTPHeaderField: "Authorization") == nil {
            if let apiKey, !apiKey.isEmpty {
                request.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization")
            } else if let basic = endpoint?.basicAuthorization {
                request.setValue(basic, forHTTPHeaderField: "Authorization")
            }
        }
        let url = request.url!
        let method = request.httpMethod ?? "GET"
        var retry = 0
        var generator = SystemRandomNumberGenerator()
        while true {
            try Task.checkCancellation()
            let started = ContinuousClock.now
            do {
                let (data, response) = try await http.send(request)
                let latency = Self.seconds(ContinuousClock.now - started)
                if (200..<300).contains(response.statusCode) {
                    return Reply(data: data, status: response.statusCode, latency: latency)
                }
                let error = classify(status: response.statusCode, data: data, url: url, method: method)
                guard error.isRetryable, retry < policy.maxRetries else { throw error }
                retry += 1
                let retryAfter = response.value(forHTTPHeaderField: "Retry-After").flatMap { RetryPolicy.parseRetryAfter($0) }
                let wait = policy.delay(retry: retry, retryAfter: retryAfter, jitter: Double.random(in: 0..<1, using: &generator))
                onRetry(label, error, wait)
                try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
            } catch let error as ProviderError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                if Task.isCancelled { throw CancellationError() }
                let failure = classifyTransport(error, url: url, method: method)
                guard failure.isRetryable, retry < policy.maxRetries else { throw failure }
                retry += 1
                let wait = policy.delay(retry: retry, retryAfter: nil, jitter: Double.random(in: 0..<1, using: &generator))
                onRetry(label, failure, wait)
                try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
            }
        }
    }

    func classify(status: Int, data: Data, url: URL, method: String = "POST") -> ProviderError {
        let body = redact(String(decoding: data.prefix(4000), as: UTF8.self))
        let (message, type, code) = Self.errorFields(data)
        let detail = message.map { ": " + Self.firstLine(redact($0)) } ?? ""
        let where_ = "\(method) \(EndpointURL.shown(url)) answered HTTP \(status)"
        // Some servers (llama-cpp-python) answer 500 when they reject a request field; that is no transient fault.
        if body.contains("response_format") || body.contains("json_schema") {
            return ProviderError(.badRequest, "\(where_)\(detail)", httpStatus: status, body: body)
        }
        if code == "insufficient_quota" || type == "insufficient_quota" {
            return ProviderError(.quota, "\(where_) (insufficient_quota)\(detail). The account has no quota left; add credit or use another endpoint.", httpStatus: status, body: body)
        }
        switch status {
        case 401, 403:
            return ProviderError(.authentication, "\(where_): the endpoint rejected the credentials. Set the key in the environment variable named by --api-key-env (default OPENAI_API_KEY).", httpStatus: status, body: body)
        case 404:
            return ProviderError(.notFound, "\(where_)\(detail). Check --endpoint (the server's base URL) and --model.", httpStatus: status, body: body)
        case 408, 429:
            return ProviderError(.rateLimited, "\(where_)\(detail)", httpStatus: status, body: body)
        case 500...599:
            return ProviderError(.server, "\(where_)\(detail)", httpStatus: status, body: body)
        default:
            return ProviderError(.badRequest, "\(where_)\(detail)", httpStatus: status, body: body)
        }
    }

    func classifyTransport(_ error: Error, url: URL, method: String = "POST") -> ProviderError {
        let ns = error as NSError
        if ns.domain == NSURLErrorDomain {
            switch ns.code {
            case NSURLErrorTimedOut:
                return ProviderError(.timeout, "\(method) \(EndpointURL.shown(url)) timed out after \(Self.format(timeout)) s (--timeout).")
            case NSURLErrorCannotConnectToHost, NSURLErrorCannotFindHost, NSURLErrorNetworkConnectionLost,
                 NSURLErrorNotConnectedToInternet, NSURLErrorDNSLookupFailed, NSURLErrorResourceUnavailable:
                return ProviderError(.connection, "cannot talk to \(EndpointURL.shown(url)): \(redact(ns.localizedDescription)). Is the server running?")
            case NSURLErrorUnsupportedURL, NSURLErrorBadURL:
                return ProviderError(.configuration, "\(EndpointURL.shown(url)) is not a usable URL. Check --endpoint.")
            default:
                return ProviderError(.connection, "\(method) \(EndpointURL.shown(url)) failed: \(redact(ns.localizedDescription)) (URL error \(ns.code)).")
            }
        }
        return ProviderError(.connection, "\(method) \(EndpointURL.shown(url)) failed: \(redact(String(describing: error))).")
    }

    /// Removes the key, and anything shaped like a key, from text that may reach the terminal or the store.
    func redact(_ text: String) -> String {
        var result = text
        if let apiKey, apiKey.count >= 4 { result = result.replacingOccurrences(of: apiKey, with: "[redacted]") }
        if let endpoint { result = endpoint.redact(result) }
        return Self.redactingKeyShapes(result)
    }

    /// `text` with anything shaped like an API key replaced by "[redacted]": `sk-`, `pk-` or `key-` followed by six
    /// or more of `A-Z a-z 0-9 _ * . -` (the regular expression `(sk|pk|key)-[A-Za-z0-9_*.\-]{6,}`, leftmost and
    /// longest). Scanned on the UTF-8 bytes: every raw answer passes here, and ICU's regular expression engine cost
    /// more than parsing the answer. Every byte of the pattern is ASCII, which no multi-byte UTF-8 sequence holds.
    static func redactingKeyShapes(_ text: String) -> String {
        var bytesOf = text
        let redacted = bytesOf.withUTF8 { bytes -> String? in
            func isKeyByte(_ byte: UInt8) -> Bool {
                switch byte {
                case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, UInt8(ascii: "_"), UInt8(ascii: "*"), UInt8(ascii: "."), UInt8(ascii: "-"): true
                default: false
                }
            }
            /// The end of a key shape starting at `start`, if one does.
            func keyEnd(at start: Int) -> Int? {
                var body = start
                if start + 3 <= bytes.count, bytes[start + 1] == UInt8(ascii: "k"), bytes[start + 2] == UInt8(ascii: "-"),
                   bytes[start] == UInt8(ascii: "s") || bytes[start] == UInt8(ascii: "p") {
                    body = start + 3
                } else if start + 4 <= bytes.count, bytes[start] == UInt8(ascii: "k"), bytes[start + 1] == UInt8(ascii: "e"),
                          bytes[start + 2] == UInt8(ascii: "y"), bytes[start + 3] == UInt8(ascii: "-") {
                    body = start + 4
                } else {
                    return nil
                }
                var end = body
                while end < bytes.count, isKeyByte(bytes[end]) { end += 1 }
                return end - body >= 6 ? end : nil
            }
            var out: [UInt8] = []
            var copied = 0
            var index = 0
            while index < bytes.count {
                if bytes[index] == UInt8(ascii: "s") || bytes[index] == UInt8(ascii: "p") || bytes[index] == UInt8(ascii: "k"),
                   let end = keyEnd(at: index) {
                    if out.isEmpty { out.reserveCapacity(bytes.count) }
                    out.append(contentsOf: bytes[copied..<index])
                    out.append(contentsOf: "[redacted]".utf8)
                    copied = end
                    index = end
                } else {
                    index += 1
                }
            }
            if copied == 0 { return nil }
            out.append(contentsOf: bytes[copied...])
            return String(decoding: out, as: UTF8.self)
        }
        return redacted ?? text
    }

    static func errorFields(_ data: Data) -> (message: String?, type: String?, code: String?) {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return (nil, nil, nil) }
        if let error = object["error"] as? [String: Any] {
            return (error["message"] as? String, error["type"] as? String, error["code"] as? String)
        }
        if let message = object["error"] as? String { return (message, nil, nil) }
        if let detail = object["detail"] { return (String(describing: detail), nil, nil) }
        return (nil, nil, nil)
    }

    /// The first line of a server message, at most 300 characters: tracebacks stay in the request log.
    static func firstLine(_ text: String) -> String {
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? text
        return line.count > 300 ? String(line.prefix(300)) + "…" : line
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}

/// A value made by its first reader, once; later readers get the same one.
private final class MadeOnFirstUse<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var made: Value?
    private let make: @Sendable () -> Value

    init(_ make: @escaping @Sendable () -> Value) { self.make = make }

    var value: Value {
        lock.withLock {
            if let made { return made }
            let value = make()
            made = value
            return value
        }
    }
}
