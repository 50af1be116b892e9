import ArgumentParser
import CLIP
import Foundation
import Knowledge
import SSPA
import Tensor

/// An error the command prints as one line, exiting with `code`.
struct CLIError: Error, CustomStringConvertible {
    var message: String
    var code: Int32
    init(_ message: String, code: Int32 = 1) {
        self.message = message
        self.code = code
    }
    var description: String { message }
}

/// Writes to standard error.
enum Console {
    static let lock = NSLock()
    static func error(_ text: String) {
        lock.withLock { FileHandle.standardError.write(Data((text + "\n").utf8)) }
    }
    static func errorRaw(_ text: String) {
        lock.withLock { FileHandle.standardError.write(Data(text.utf8)) }
    }
    static func out(_ text: String) {
        lock.withLock { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
    }
    static var stderrIsTerminal: Bool { isatty(2) == 1 }
}

extension ParsableCommand {
    /// Runs `body`, printing known errors as one clear line (`error: …`) and exiting with their code: 65 for bad
    /// data (features, checkpoints), 66 for missing inputs, 74 for the store, 1 otherwise.
    func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as CLIError {
            Console.error("error: \(error.message)")
            throw ExitCode(error.code)
        } catch let error as SSPA.FeaturesError {
            Console.error("error: \(error)")
            throw ExitCode(65)
        } catch let error as SSPA.CheckpointError {
            Console.error("error: \(error)")
            throw ExitCode(65)
        } catch let error as SSPA.ConfigError {
            Console.error("error: \(error)")
            throw ExitCode(65)
        } catch let error as SSPA.TrainingError {
            Console.error("error: \(error)")
            throw ExitCode(1)
        } catch let error as SSPA.Metrics.InputError {
            Console.error("error: \(error)")
            throw ExitCode(65)
        } catch let error as StoreError {
            Console.error("error: \(error.message)")
            throw ExitCode(74)
        } catch let error as CheckpointError {
            Console.error("error: \(error.message)")
            throw ExitCode(66)
        }
    }
}

/// Turns SIGINT and SIGTERM into a flag a long loop polls; a second signal exits at once with 130. The first
/// signal prints `message`, which says what is kept (e.g. "saving a checkpoint after this step").
final class InterruptFlag: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var _fired = false
    private let message: String

    var fired: Bool { lock.withLock { _fired } }

    init(message: String) {
        self.message = message
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: DispatchQueue.global())
            source.setEventHandler { [weak self] in self?.handle() }
            source.resume()
            sources.append(source)
        }
    }

    private func handle() {
        let again = lock.withLock { () -> Bool in
            defer { _fired = true }
            return _fired
        }
        if again { exit(130) }
        Console.error("\ninterrupted: \(message) (press Ctrl-C again to quit at once)")
    }

    func restore() {
        for source in sources { source.cancel() }
        sources = []
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}

/// The training progress bar on stderr: redrawn on a terminal, otherwise silent between epoch lines.
final class TrainingProgress {
    let quiet: Bool
    let terminal: Bool
    var started = Date()
    var stepsAtStart = 0
    var lastDraw = Date.distantPast
    var drawn = false
    var lossAverage: Double?

    init(quiet: Bool, terminal: Bool = Console.stderrIsTerminal) {
        self.quiet = quiet
        self.terminal = terminal
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60) : String(format: "%02d:%02d", s / 60, s % 60)
    }

    func step(epoch: Int, epochs: Int, batch: Int, batches: Int, step: Int, total: Int, loss: Double) {
        lossAverage = lossAverage.map { 0.9 * $0 + 0.1 * loss } ?? loss
        guard !quiet, terminal else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) > 0.1 || step == total else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(started)
        let done = step - stepsAtStart
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - step) / rate : .infinity
        let width = 24
        let filled = min(width, batches > 0 ? width * batch / batches : 0)
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let line = String(format: "epoch %d/%d %@ %d/%d  step %d/%d  loss %.4f  %.2f steps/s  ETA %@",
                          epoch, epochs, bar, batch, batches, step, total, lossAverage ?? loss, rate, Self.duration(eta))
        Console.errorRaw("\r\u{1B}[2K" + line)
        drawn = true
    }

    func clear() {
        if drawn { Console.errorRaw("\r\u{1B}[2K") }
        drawn = false
    }
}

/// Parses `--ablate no-kap,no-qsm,aggregator=max,sharp,…` into a config.
func ablatedConfig(_ spec: String?) throws -> SSPA.Config {
    var config = SSPA.Config()
    guard let spec, !spec.isEmpty else { return config }
    for raw in spec.split(separator: ",") {
        let item = raw.trimmingCharacters(in: .whitespaces).lowercased()
        switch item {
        case "": continue
        case "no-kap": config.noKAP = true
        case "no-cap": config.noCAP = true
        case "no-qsm": config.noQSM = true
        case "no-gdma": config.noGDMA = true
        case "no-global": config.noGlobal = true
        case "sharp": config.sharp = true
        case "max", "aggregator=max": config.aggregator = .max
        case "mean", "aggregator=mean": config.aggregator = .mean
        case "soft", "aggregator=soft": config.aggregator = .soft
        default:
            throw CLIError("unknown ablation '\(item)'; use no-kap, no-cap, no-qsm, no-gdma, no-global, sharp, aggregator=max|mean|soft", code: 64)
        }
    }
    do { try config.validate() } catch { throw CLIError("--ablate \(spec): \(error)", code: 64) }
    return config
}

/// The switches of `config` that differ from the defaults, as `--ablate` spells them.
func ablationSummary(_ config: SSPA.Config) -> String {
    var parts: [String] = []
    if config.noKAP { parts.append("no-kap") }
    if config.noCAP { parts.append("no-cap") }
    if config.noQSM { parts.append("no-qsm") }
    if config.noGDMA { parts.append("no-gdma") }
    if config.noGlobal { parts.append("no-global") }
    if config.sharp { parts.append("sharp") }
    if config.aggregator != .soft { parts.append("aggregator=\(config.aggregator.rawValue)") }
    return parts.isEmpty ? "full model" : parts.joined(separator: ",")
}

/// Loads a features file, turning a missing file into exit code 66.
func loadFeatures(_ path: String, role: String) throws -> SSPA.Features {
    guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(path): no such \(role) features file", code: 66) }
    return try SSPA.Features(contentsOf: URL(fileURLWithPath: path))
}
