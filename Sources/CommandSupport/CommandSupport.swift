import ArgumentParser
import Foundation

/// What the `sspa-knowledge` and `sspa` executables share: the one-line error convention with its exit codes,
/// console output that does not interleave, and Ctrl-C handling that lets long work stop cleanly.

/// How a command ends when it fails: the sysexits codes both executables use, by name.
public enum ExitStatus: Int32, Sendable, CaseIterable {
    /// Anything else.
    case failure = 1
    /// A bad command line (EX_USAGE).
    case usage = 64
    /// Input data that cannot be used: a damaged file, a checkpoint of another config (EX_DATAERR).
    case dataError = 65
    /// An input that does not exist (EX_NOINPUT).
    case noInput = 66
    /// A service that cannot be reached, or WordNet missing (EX_UNAVAILABLE).
    case unavailable = 69
    /// An output that cannot be created or is in the way (EX_CANTCREAT).
    case cannotCreate = 73
    /// Reading or writing failed: a full disk, the store (EX_IOERR).
    case ioError = 74
    /// Stopped by Ctrl-C or SIGTERM, work kept (128 + SIGINT).
    case interrupted = 130

    /// The argument parser's exit code.
    public var exitCode: ExitCode { ExitCode(rawValue) }
}

/// An error the command prints as one line (`error: …`), exiting with `code`.
public struct CLIError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var code: ExitStatus
    public init(_ message: String, code: ExitStatus = .failure) {
        self.message = message
        self.code = code
    }
    public var description: String { message }
}

/// Standard output and error, one whole line at a time, from any thread.
public enum Console {
    static let lock = NSLock()
    /// A line on standard error.
    public static func error(_ text: String) {
        lock.withLock { FileHandle.standardError.write(Data((text + "\n").utf8)) }
    }
    /// Text on standard error as is (progress bars redraw with `\r`).
    public static func errorRaw(_ text: String) {
        lock.withLock { FileHandle.standardError.write(Data(text.utf8)) }
    }
    /// A line on standard output.
    public static func out(_ text: String) {
        lock.withLock { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
    }
    public static var stderrIsTerminal: Bool { isatty(2) == 1 }
}

/// Runs `body`, printing a known error as one clear line (`error: …`) and exiting with its code: `CLIError` with its
/// own, anything `classify` recognises with the message and code it returns. Other errors propagate unchanged.
public func reportingErrors<T>(classify: (any Error) -> (message: String, code: ExitStatus)?,
                               _ body: () async throws -> T) async throws -> T {
    OutputPath.reportFileSizeLimitAsError()
    do {
        return try await body()
    } catch let error as CLIError {
        Console.error("error: \(error.message)")
        throw error.code.exitCode
    } catch {
        guard let known = classify(error) else { throw error }
        Console.error("error: \(known.message)")
        throw known.code.exitCode
    }
}

/// Turns SIGINT and SIGTERM into a flag that long work polls (and an optional callback), so a build, a training run
/// or a feature extraction can stop cleanly and keep what it finished; a second signal exits at once with 130.
public final class InterruptHandler: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var _fired = false
    private var _onSignal: (@Sendable (Int32) -> Void)?

    /// True once a signal arrived.
    public var fired: Bool { lock.withLock { _fired } }
    /// Called (on a background queue) at the first signal.
    public var onSignal: (@Sendable (Int32) -> Void)? {
        get { lock.withLock { _onSignal } }
        set { lock.withLock { _onSignal = newValue } }
    }

    /// Installs the handlers; `message`, when given, is printed at the first signal, followed by how to quit at once.
    public init(message: String? = nil) {
        if let message {
            _onSignal = { _ in Console.error("\ninterrupted: \(message) (press Ctrl-C again to quit at once)") }
        }
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

    /// Restores the default signal dispositions.
    public func restore() {
        for source in sources { source.cancel() }
        sources = []
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
