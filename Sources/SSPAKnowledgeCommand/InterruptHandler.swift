import Foundation

/// Turns SIGINT and SIGTERM into a callback, so a build can stop cleanly; a second signal exits at once with 130.
final class InterruptHandler: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var _fired = false
    private var _onSignal: (@Sendable (Int32) -> Void)?

    var fired: Bool { lock.withLock { _fired } }
    var onSignal: (@Sendable (Int32) -> Void)? {
        get { lock.withLock { _onSignal } }
        set { lock.withLock { _onSignal = newValue } }
    }

    init() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: DispatchQueue.global())
            source.setEventHandler { [weak self] in self?.handle(sig) }
            source.resume()
            sources.append(source)
        }
    }

    private func handle(_ sig: Int32) {
        let (again, callback) = lock.withLock { () -> (Bool, (@Sendable (Int32) -> Void)?) in
            defer { _fired = true }
            return (_fired, _onSignal)
        }
        if again { exit(130) }
        callback?(sig)
    }

    func restore() {
        for source in sources { source.cancel() }
        sources = []
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
