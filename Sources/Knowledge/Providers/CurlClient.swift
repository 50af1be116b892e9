import CCurl
import Foundation

/// libcurl's multi interface behind `HTTPClient`: one thread drives every request of a client through one
/// `curl_multi` handle, so connections are reused, HTTP/2 is multiplexed where a TLS server offers it, and a request
/// costs a few microseconds of bookkeeping instead of URLSession's machinery.
///
/// The loop uses the multi_socket interface on epoll: libcurl names the sockets to watch and when its next time-out
/// is due, and each ready socket runs only its own transfer. (`curl_multi_perform` runs every transfer on every
/// wake-up and polls each one's socket: with 128 requests in flight that was a fifth of the client's CPU.)
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
        /// Requests in flight at once (0: no limit). Requests beyond it wait in order, outside libcurl, and the loop
        /// starts the next one the moment a request ends: no hop through the caller, and no time-out running while a
        /// request waits its turn.
        var requestLimit: Int = 0
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
        var continuation: CheckedContinuation<(Data, HTTPResponse), Error>?
        var cancelled = false

        init(easy: UnsafeMutableRawPointer, url: URL) {
            self.easy = easy
            self.url = url
        }
    }

    private let options: Options
    private let multi: UnsafeMutableRawPointer
    /// The sockets libcurl asked to watch, and `wakeFD`; touched only by the loop thread.
    private let epollFD: Int32
    /// Written to wake the loop: a request arrived or is cancelled.
    private let wakeFD: Int32
    /// When libcurl wants `CURL_SOCKET_TIMEOUT` handled (its timer callback), in `DispatchTime` nanoseconds; nil for
    /// none. Touched only by the loop thread (libcurl calls its callbacks from within the loop's calls).
    private var deadline: UInt64?
    private let lock = NSLock()
    /// Easy handles of finished transfers, kept for the next requests (under `lock`). libcurl reuses a handle's
    /// allocations (its state and its receive buffer) where a new handle allocates and zeroes them again; each is
    /// reset before its next request, so nothing of the last request's options carries over.
    private var idle: [UnsafeMutableRawPointer] = []
    /// Idle handles kept at most: as many as requests in flight at once, or a few dozen.
    private var idleLimit: Int { options.requestLimit > 0 ? options.requestLimit : 64 }
    private var incoming: [Transfer] = []
    private var cancelling: [Transfer] = []
    /// Transfers added to the multi handle, by easy handle; touched only by the loop thread.
    private var active: [UnsafeMutableRawPointer: Transfer] = [:]
    /// Transfers waiting for one of the `requestLimit` places, oldest first (from `waitingStart`); loop thread only.
    private var waiting: [Transfer] = []
    private var waitingStart = 0

    init(options: Options) {
        self.options = options
        multi = sspa_curl_multi_init()
        epollFD = sspa_epoll_create()
        wakeFD = sspa_eventfd_create()
        precondition(epollFD >= 0 && wakeFD >= 0, "cannot create the HTTP client's event loop: \(String(cString: strerror(errno)))")
        _ = sspa_epoll_watch(epollFD, wakeFD, 1, 0, 0)
        _ = sspa_curl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, max(options.connectionsPerHost, 1))
        _ = sspa_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
        // The engine lives as long as its loop thread, which never ends: the unretained pointer stays valid.
        _ = sspa_curl_multi_set_callbacks(multi, curlSocket, curlTimer, Unmanaged.passUnretained(self).toOpaque())
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "sspa-curl"
        thread.start()
    }

    // MARK: - Requests

    func send(_ request: HTTPRequest) async throws -> (Data, HTTPResponse) {
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
                    release(transfer)
                    continuation.resume(throwing: CancellationError())
                } else {
                    sspa_eventfd_signal(wakeFD)
                }
            }
        } onCancel: {
            lock.withLock {
                transfer.cancelled = true
                cancelling.append(transfer)
            }
            sspa_eventfd_signal(wakeFD)
        }
    }

    private func makeTransfer(_ request: HTTPRequest, url: URL) throws -> Transfer {
        let reused = lock.withLock { idle.popLast() }
        if let reused { sspa_curl_easy_reset(reused) }
        guard let easy = reused ?? sspa_curl_easy_init() else { throw URLError(.cannotLoadFromNetwork) }
        let transfer = Transfer(easy: easy, url: url)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        _ = sspa_curl_setopt_string(easy, CURLOPT_URL, url.absoluteString)
        _ = sspa_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = sspa_curl_setopt_long(easy, CURLOPT_TCP_NODELAY, 1)
        let timeout = min(request.timeoutInterval ?? options.timeout, options.timeout)
        _ = sspa_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int(timeout * 1000))
        _ = sspa_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(min(options.connectTimeout, timeout) * 1000))
        // HTTP/2 over TLS when the server offers it (OpenAI does), HTTP/1.1 in the clear. Over TLS, wait for a
        // connection to multiplex on rather than opening another (ALPN says at the handshake whether it can). In the
        // clear there is never HTTP/2, and libcurl learns a connection's version only from its first answer, so
        // waiting would hold every other request of a build back for one whole answer (200 ms in the benchmark).
        _ = sspa_curl_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        _ = sspa_curl_setopt_long(easy, CURLOPT_PIPEWAIT, url.scheme?.lowercased() == "https" ? 1 : 0)
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
        for (name, value) in request.headers { list = sspa_curl_slist_append(list, "\(name): \(value)") }
        // libcurl sends "Expect: 100-continue" for large bodies, which costs a round trip to servers that ignore it.
        list = sspa_curl_slist_append(list, "Expect:")
        transfer.headerList = list
        _ = sspa_curl_setopt_slist(easy, CURLOPT_HTTPHEADER, list)
        return transfer
    }

    static let caFile: String? = ProcessInfo.processInfo.environment["SSL_CERT_FILE"].flatMap { $0.isEmpty ? nil : $0 }

    /// Frees what a finished transfer held; its easy handle (no longer in the multi handle) is kept for the next one.
    private func release(_ transfer: Transfer) {
        let kept = lock.withLock { () -> Bool in
            guard idle.count < idleLimit else { return false }
            idle.append(transfer.easy)
            return true
        }
        if !kept { sspa_curl_easy_cleanup(transfer.easy) }
        sspa_curl_slist_free_all(transfer.headerList)
        transfer.errorBuffer.deallocate()
    }

    // MARK: - The loop

    private func loop() {
        while true {
            let (added, removed) = lock.withLock { () -> ([Transfer], [Transfer]) in
                defer { incoming.removeAll(); cancelling.removeAll() }
                return (incoming, cancelling)
            }
            waiting.append(contentsOf: added)
            for transfer in removed {
                if active[transfer.easy] != nil {
                    finish(transfer, .failure(CancellationError()))
                } else if let index = waiting[waitingStart...].firstIndex(where: { $0 === transfer }) {
                    waiting.remove(at: index)
                    resume(transfer, .failure(CancellationError()))
                }
            }
            startWaiting()
            var running: Int32 = 0
            runDueTimeout(&running)
            var left: Int32 = 0
            while let message = sspa_curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle, let transfer = active[easy] else { continue }
                let code = message.pointee.data.result
                if code == CURLE_OK {
                    var status = 0
                    _ = sspa_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
                    var version = 0
                    _ = sspa_curl_getinfo_long(easy, CURLINFO_HTTP_VERSION, &version)
                    let http = HTTPResponse(statusCode: status, httpVersion: version == Int(CURL_HTTP_VERSION_2_0) ? "HTTP/2" : "HTTP/1.1",
                                            headers: transfer.headers)
                    finish(transfer, .success((transfer.response, http)))
                } else {
                    finish(transfer, .failure(Self.error(code, detail: String(cString: transfer.errorBuffer), url: transfer.url)))
                }
            }
            // Sleep until a socket is ready, libcurl's time-out is due, or a request arrives or is cancelled.
            var wait: Int32 = 1000
            if let deadline {
                let now = DispatchTime.now().uptimeNanoseconds
                wait = deadline <= now ? 0 : Int32(min((deadline - now + 999_999) / 1_000_000, 1000))
            }
            let count = sspa_epoll_wait(epollFD, &readyFDs, &readyMasks, Int32(readyFDs.count), wait)
            for index in 0..<max(Int(count), 0) {
                if readyFDs[index] == wakeFD {
                    sspa_eventfd_drain(wakeFD)
                } else {
                    _ = sspa_curl_multi_socket_action(multi, readyFDs[index], readyMasks[index], &running)
                }
            }
        }
    }

    private var readyFDs = [Int32](repeating: 0, count: 256)
    private var readyMasks = [Int32](repeating: 0, count: 256)

    /// Lets libcurl handle its time-out when it is due (connect and total time-outs, and starting added transfers).
    private func runDueTimeout(_ running: inout Int32) {
        guard let due = deadline, due <= DispatchTime.now().uptimeNanoseconds else { return }
        // Cleared first: libcurl sets the next one from within this call.
        deadline = nil
        _ = sspa_curl_multi_socket_action(multi, sspa_curl_socket_timeout(), 0, &running)
    }

    /// libcurl's socket callback: watch `socket` for what libcurl waits for, or stop watching it.
    fileprivate func watch(_ socket: Int32, what: Int32) {
        guard socket >= 0 else { return }
        let index = Int(socket)
        if index >= watched.count { watched += repeatElement(false, count: max(index + 1 - watched.count, 64)) }
        if what == CURL_POLL_REMOVE {
            sspa_epoll_forget(epollFD, socket)
            watched[index] = false
        } else {
            // A connection goes back to the pool (removed) after each answer and is watched again for the next
            // request: knowing it is not in epoll adds it with one call instead of a failed change and an add.
            _ = sspa_epoll_watch(epollFD, socket, what & CURL_POLL_IN != 0 ? 1 : 0, what & CURL_POLL_OUT != 0 ? 1 : 0,
                                 watched[index] ? 1 : 0)
            watched[index] = true
        }
    }

    /// Which descriptors epoll watches for libcurl, by number; loop thread only.
    private var watched: [Bool] = []

    /// libcurl's timer callback: -1 deletes the time-out; 0 means as soon as possible.
    fileprivate func setTimeout(milliseconds: Int) {
        deadline = milliseconds < 0 ? nil : DispatchTime.now().uptimeNanoseconds + UInt64(milliseconds) * 1_000_000
    }

    /// Adds waiting transfers to the multi handle while there is room (libcurl starts them on its next time-out,
    /// which it sets to now).
    private func startWaiting() {
        while waitingStart < waiting.count, options.requestLimit <= 0 || active.count < options.requestLimit {
            let transfer = waiting[waitingStart]
            waitingStart += 1
            active[transfer.easy] = transfer
            sspa_curl_multi_add_handle(multi, transfer.easy)
        }
        if waitingStart == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            waitingStart = 0
        } else if waitingStart > 64, waitingStart * 2 > waiting.count {
            waiting.removeFirst(waitingStart)
            waitingStart = 0
        }
    }

    private func finish(_ transfer: Transfer, _ result: Result<(Data, HTTPResponse), Error>) {
        sspa_curl_multi_remove_handle(multi, transfer.easy)
        active[transfer.easy] = nil
        // The next request goes out now, before the caller of this one even sees its answer.
        startWaiting()
        resume(transfer, result)
    }

    private func resume(_ transfer: Transfer, _ result: Result<(Data, HTTPResponse), Error>) {
        let continuation = lock.withLock { () -> CheckedContinuation<(Data, HTTPResponse), Error>? in
            defer { transfer.continuation = nil }
            return transfer.continuation
        }
        release(transfer)
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
        let text = detail.isEmpty ? String(cString: sspa_curl_easy_strerror(code)) : detail
        return NSError(domain: NSURLErrorDomain, code: kind, userInfo: [NSLocalizedDescriptionKey: text, NSURLErrorFailingURLErrorKey: url])
    }
}

private let curlSocket: sspa_curl_socket_callback = { _, socket, what, engine, _ in
    guard let engine else { return 0 }
    Unmanaged<CurlEngine>.fromOpaque(engine).takeUnretainedValue().watch(socket, what: what)
    return 0
}

private let curlTimer: sspa_curl_timer_callback = { _, milliseconds, engine in
    guard let engine else { return 0 }
    Unmanaged<CurlEngine>.fromOpaque(engine).takeUnretainedValue().setTimeout(milliseconds: milliseconds)
    return 0
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
