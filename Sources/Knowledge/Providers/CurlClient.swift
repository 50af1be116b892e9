import CCurl
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// libcurl's multi interface behind `HTTPClient`: one thread drives every request of a client through one
/// `curl_multi` handle, so connections are reused, HTTP/2 is multiplexed where a TLS server offers it, and a request
/// costs a few microseconds of bookkeeping instead of URLSession's machinery.
///
/// Time-outs are libcurl's own (`--timeout` for the whole request, a separate connect time-out); proxies come from
/// `http_proxy`, `HTTPS_PROXY` and `NO_PROXY` and certificates from the system store, as libcurl handles them.
/// Cancelling the calling task removes its transfer from the multi handle at once: no thread blocks in a read.
final class CurlEngine: @unchecked Sendable {
    struct Options: Sendable {
        /// The whole request, connection included, in seconds.
        var timeout: Double
        /// Connecting (TCP and TLS), in seconds.
        var connectTimeout: Double
        /// Connections to one host at once (HTTP/1.1 requests beyond this wait for a free one).
        var connectionsPerHost: Int
    }

    /// One request in flight.
    final class Transfer: @unchecked Sendable {
        let easy: UnsafeMutableRawPointer
        let url: URL
        var headerList: UnsafeMutablePointer<curl_slist>?
        var response = Data()
        var headers: [String: String] = [:]
        let errorBuffer: UnsafeMutablePointer<CChar> = {
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
            buffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
            return buffer
        }()
        var continuation: CheckedContinuation<(Data, HTTPURLResponse), Error>?
        var cancelled = false

        init(easy: UnsafeMutableRawPointer, url: URL) {
            self.easy = easy
            self.url = url
        }
    }

    private let options: Options
    private let multi: UnsafeMutableRawPointer
    private let lock = NSLock()
    private var incoming: [Transfer] = []
    private var cancelling: [Transfer] = []
    /// Transfers added to the multi handle, by easy handle; touched only by the loop thread.
    private var active: [UnsafeMutableRawPointer: Transfer] = [:]

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    init(options: Options) {
        _ = Self.globalInit
        self.options = options
        multi = curl_multi_init()
        _ = sspa_curl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, max(options.connectionsPerHost, 1))
        _ = sspa_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "sspa-curl"
        thread.start()
    }

    // MARK: - Requests

    func send(_ request: URLRequest) async throws -> (Data, HTTPURLResponse) {
        guard let url = request.url else { throw URLError(.badURL) }
        let transfer = try makeTransfer(request, url: url)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let cancelledAlready = lock.withLock { () -> Bool in
                    if transfer.cancelled { return true }
                    transfer.continuation = continuation
                    incoming.append(transfer)
                    return false
                }
                if cancelledAlready {
                    Self.release(transfer)
                    continuation.resume(throwing: CancellationError())
                } else {
                    curl_multi_wakeup(multi)
                }
            }
        } onCancel: {
            lock.withLock {
                transfer.cancelled = true
                cancelling.append(transfer)
            }
            curl_multi_wakeup(multi)
        }
    }

    private func makeTransfer(_ request: URLRequest, url: URL) throws -> Transfer {
        guard let easy = curl_easy_init() else { throw URLError(.cannotLoadFromNetwork) }
        let transfer = Transfer(easy: easy, url: url)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        _ = sspa_curl_setopt_string(easy, CURLOPT_URL, url.absoluteString)
        _ = sspa_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = sspa_curl_setopt_long(easy, CURLOPT_TCP_NODELAY, 1)
        _ = sspa_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int(options.timeout * 1000))
        _ = sspa_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(min(options.connectTimeout, options.timeout) * 1000))
        // HTTP/2 over TLS when the server offers it (OpenAI does), HTTP/1.1 in the clear; wait for a connection to
        // multiplex on rather than opening another.
        _ = sspa_curl_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        _ = sspa_curl_setopt_long(easy, CURLOPT_PIPEWAIT, 1)
        _ = sspa_curl_setopt_string(easy, CURLOPT_ACCEPT_ENCODING, "")
        // Certificates: the system store, or the PEM file SSL_CERT_FILE names (as OpenSSL, Python and curl users set it
        // for a private CA).
        if let caFile = Self.caFile { _ = sspa_curl_setopt_string(easy, CURLOPT_CAINFO, caFile) }
        _ = sspa_curl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, transfer.errorBuffer)
        _ = sspa_curl_setopt_write(easy, CURLOPT_WRITEFUNCTION, curlWrite)
        _ = sspa_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, context)
        _ = sspa_curl_setopt_write(easy, CURLOPT_HEADERFUNCTION, curlHeader)
        _ = sspa_curl_setopt_pointer(easy, CURLOPT_HEADERDATA, context)
        let method = request.httpMethod ?? "GET"
        if let body = request.httpBody {
            _ = sspa_curl_setopt_long(easy, CURLOPT_POSTFIELDSIZE, body.count)
            body.withUnsafeBytes { _ = sspa_curl_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0.baseAddress)) }
            if method != "POST" { _ = sspa_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method) }
        } else if method != "GET" {
            _ = sspa_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method)
        }
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in request.allHTTPHeaderFields ?? [:] { list = curl_slist_append(list, "\(name): \(value)") }
        // libcurl sends "Expect: 100-continue" for large bodies, which costs a round trip to servers that ignore it.
        list = curl_slist_append(list, "Expect:")
        transfer.headerList = list
        _ = sspa_curl_setopt_slist(easy, CURLOPT_HTTPHEADER, list)
        return transfer
    }

    static let caFile: String? = ProcessInfo.processInfo.environment["SSL_CERT_FILE"].flatMap { $0.isEmpty ? nil : $0 }

    private static func release(_ transfer: Transfer) {
        curl_easy_cleanup(transfer.easy)
        curl_slist_free_all(transfer.headerList)
        transfer.errorBuffer.deallocate()
    }

    // MARK: - The loop

    private func loop() {
        while true {
            let (added, removed) = lock.withLock { () -> ([Transfer], [Transfer]) in
                defer { incoming.removeAll(); cancelling.removeAll() }
                return (incoming, cancelling)
            }
            for transfer in added {
                active[transfer.easy] = transfer
                curl_multi_add_handle(multi, transfer.easy)
            }
            for transfer in removed where active[transfer.easy] != nil {
                finish(transfer, .failure(CancellationError()))
            }
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle, let transfer = active[easy] else { continue }
                let code = message.pointee.data.result
                if code == CURLE_OK {
                    var status = 0
                    _ = sspa_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
                    var version = 0
                    _ = sspa_curl_getinfo_long(easy, CURLINFO_HTTP_VERSION, &version)
                    let http = HTTPURLResponse(url: transfer.url, statusCode: status, httpVersion: version == Int(CURL_HTTP_VERSION_2_0) ? "HTTP/2" : "HTTP/1.1",
                                               headerFields: transfer.headers)!
                    finish(transfer, .success((transfer.response, http)))
                } else {
                    finish(transfer, .failure(Self.error(code, detail: String(cString: transfer.errorBuffer), url: transfer.url)))
                }
            }
            // Sleep until a socket is ready, a time-out is due, or a request arrives or is cancelled (wakeup).
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
    }

    private func finish(_ transfer: Transfer, _ result: Result<(Data, HTTPURLResponse), Error>) {
        curl_multi_remove_handle(multi, transfer.easy)
        active[transfer.easy] = nil
        let continuation = lock.withLock { () -> CheckedContinuation<(Data, HTTPURLResponse), Error>? in
            defer { transfer.continuation = nil }
            return transfer.continuation
        }
        Self.release(transfer)
        continuation?.resume(with: result)
    }

    /// libcurl's result as the URL error the retry policy classifies, with libcurl's own words.
    static func error(_ code: CURLcode, detail: String, url: URL) -> Error {
        let kind: Int
        switch code {
        case CURLE_OPERATION_TIMEDOUT: kind = NSURLErrorTimedOut
        case CURLE_COULDNT_CONNECT: kind = NSURLErrorCannotConnectToHost
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: kind = NSURLErrorCannotFindHost
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_HTTP2, CURLE_HTTP2_STREAM:
            kind = NSURLErrorNetworkConnectionLost
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: kind = NSURLErrorUnsupportedURL
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CACERT_BADFILE:
            kind = NSURLErrorSecureConnectionFailed
        default: kind = NSURLErrorUnknown
        }
        let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        return NSError(domain: NSURLErrorDomain, code: kind, userInfo: [NSLocalizedDescriptionKey: text, NSURLErrorFailingURLErrorKey: url])
    }
}

/// libcurl's body callback: appends to the transfer's response.
private let curlWrite: sspa_curl_write_callback = { data, size, count, context in
    guard let data, let context else { return 0 }
    let transfer = Unmanaged<CurlEngine.Transfer>.fromOpaque(context).takeUnretainedValue()
    let bytes = size * count
    data.withMemoryRebound(to: UInt8.self, capacity: bytes) { transfer.response.append($0, count: bytes) }
    return bytes
}

/// libcurl's header callback: one header line per call; a status line starts a new response (after a 100 Continue
/// or a redirect), so earlier headers are dropped. Parsed on bytes: the name in canonical case ("retry-after" over
/// HTTP/2 → Retry-After, so lookups by the usual name find it), the value without surrounding white space.
private let curlHeader: sspa_curl_write_callback = { data, size, count, context in
    guard let data, let context else { return 0 }
    let transfer = Unmanaged<CurlEngine.Transfer>.fromOpaque(context).takeUnretainedValue()
    let bytes = size * count
    data.withMemoryRebound(to: UInt8.self, capacity: bytes) { pointer in
        let line = UnsafeBufferPointer(start: pointer, count: bytes)
        if line.starts(with: "HTTP/".utf8) { transfer.headers.removeAll(); return }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return }
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }
        var name: [UInt8] = []
        name.reserveCapacity(colon)
        var startOfWord = true
        for byte in line[..<colon] where !isSpace(byte) {
            let lower = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
            name.append(startOfWord && lower >= 0x61 && lower <= 0x7A ? lower - 0x20 : lower)
            startOfWord = byte == UInt8(ascii: "-")
        }
        var start = colon + 1
        var end = bytes
        while start < end, isSpace(line[start]) { start += 1 }
        while end > start, isSpace(line[end - 1]) { end -= 1 }
        transfer.headers[String(decoding: name, as: UTF8.self)] = String(decoding: UnsafeBufferPointer(rebasing: line[start..<end]), as: UTF8.self)
    }
    return bytes
}
