import Foundation

/// An LLM server's base URL as the user gave it, split into what may be shown and stored (scheme, host, port, path
/// and ordinary query parameters) and the credentials that may only be sent: userinfo (`http://user:secret@host`)
/// and `api_key`-like query parameters.
///
/// Userinfo never goes on the wire in the URL: it becomes an `Authorization: Basic` header (unless an API key gives
/// a bearer token). Credential query parameters stay on the request URL, since the server needs them there, but
/// every message and the store see `display`, which has none of them.
public struct EndpointURL: Sendable, Hashable {
    /// `scheme://host[:port][/path]`: no userinfo, no query, no trailing slash.
    public private(set) var base: String
    /// Query parameters that are not credentials, in their order.
    public private(set) var publicQuery: [URLQueryItem]
    /// Query parameters whose names look like credentials (`api_key`, `token`, `sig`, …).
    public private(set) var secretQuery: [URLQueryItem]
    public private(set) var user: String?
    public private(set) var password: String?

    /// Parses `text`; anything but an http(s) URL with a host is an error that never echoes a credential.
    public init(_ text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let shown = trimmed.contains("@") ? "the --endpoint value" : "'\(trimmed)'"
        guard let components = URLComponents(string: trimmed), let scheme = components.scheme?.lowercased(),
              ["http", "https"].contains(scheme), let host = components.host, !host.isEmpty else {
            throw ProviderError(.configuration, "\(shown) is not an http(s) URL with a host. Pass the server's base URL, e.g. --endpoint http://127.0.0.1:8080.")
        }
        user = components.user.flatMap { $0.isEmpty ? nil : $0 }
        password = components.password.flatMap { $0.isEmpty ? nil : $0 }
        let items = components.queryItems ?? []
        publicQuery = items.filter { !Self.isSecret($0.name) }
        secretQuery = items.filter { Self.isSecret($0.name) }
        var stripped = URLComponents()
        stripped.scheme = scheme
        stripped.host = components.host
        stripped.port = components.port
        stripped.percentEncodedPath = components.percentEncodedPath
        var value = stripped.string ?? "\(scheme)://\(host)"
        while value.hasSuffix("/") { value.removeLast() }
        base = value
    }

    /// Whether a query parameter's name marks it as a credential.
    static func isSecret(_ name: String) -> Bool {
        let lower = name.lowercased()
        return ["key", "token", "secret", "password", "passwd", "auth", "sig", "credential", "session"].contains { lower.contains($0) }
    }

    /// This endpoint with an API suffix the user may have included (`/v1`, `/api`) removed from its path.
    public func stripping(suffix: String) -> EndpointURL {
        var copy = self
        if copy.base.hasSuffix(suffix) { copy.base.removeLast(suffix.count) }
        return copy
    }

    /// What may be stored and printed: the base and the ordinary query parameters, never a credential.
    public var display: String { Self.join(base, publicQuery) }

    /// The URL a request goes to: the base, `path`, and every query parameter (credentials included), no userinfo.
    public func requestURL(path: String) -> URL? { URL(string: Self.join(base + path, publicQuery + secretQuery)) }

    /// `Authorization: Basic` for userinfo, if the URL had any.
    public var basicAuthorization: String? {
        guard let user else { return nil }
        let plain = (user.removingPercentEncoding ?? user) + ":" + ((password?.removingPercentEncoding ?? password) ?? "")
        return "Basic " + Data(plain.utf8).base64EncodedString()
    }

    /// The credential values, for redacting text a server may echo: the password (or the user name when it is
    /// the only userinfo, as with token-as-user URLs) and the credential query values.
    public var secrets: [String] {
        let userinfo = password == nil ? [user, user?.removingPercentEncoding] : [password, password?.removingPercentEncoding]
        return Array(Set((userinfo + secretQuery.map(\.value)).compactMap { $0 }.filter { $0.count >= 4 }))
    }

    /// `text` with every credential value of this endpoint replaced by `[redacted]`.
    public func redact(_ text: String) -> String {
        secrets.reduce(text) { $0.replacingOccurrences(of: $1, with: "[redacted]") }
    }

    /// `url` as it may be shown: without userinfo or credential query parameters.
    public static func shown(_ url: URL) -> String {
        guard var components = URLComponents(url: url, resolvingAgainstBaseURL: false) else { return "the endpoint" }
        components.user = nil
        components.password = nil
        let kept = (components.queryItems ?? []).filter { !isSecret($0.name) }
        components.queryItems = kept.isEmpty ? nil : kept
        return components.string ?? "the endpoint"
    }

    static func join(_ base: String, _ items: [URLQueryItem]) -> String {
        guard !items.isEmpty else { return base }
        var components = URLComponents()
        components.queryItems = items
        return base + "?" + (components.percentEncodedQuery ?? "")
    }
}
