import CommandSupport
import Foundation

/// A progress bar for counted work (texts encoded): redrawn on a terminal, a plain line at most once a second
/// otherwise, nothing with --quiet.
final class CountProgress: @unchecked Sendable {
    private let title: String
    private let unit: String
    private let quiet: Bool
    private let terminal: Bool
    private let started = Date()
    private var lastLine = Date.distantPast
    private let lock = NSLock()

    init(title: String, unit: String, quiet: Bool, terminal: Bool = Console.stderrIsTerminal) {
        self.title = title
        self.unit = unit
        self.quiet = quiet
        self.terminal = terminal
    }

    func update(done: Int, total: Int) {
        guard !quiet, total > 0 else { return }
        lock.withLock {
            let elapsed = Date().timeIntervalSince(started)
            let rate = elapsed > 0 ? Double(done) / elapsed : 0
            let eta = rate > 0 ? Double(total - done) / rate : 0
            let stats = "\(done)/\(total) \(unit), \(String(format: "%.0f", rate)) \(unit)/s, ETA \(ProgressDisplay.duration(eta))"
            if terminal {
                let bar = ProgressDisplay.bar(done, of: total)
                FileHandle.standardError.write(Data("\r\u{1B}[2K\(title) \(bar) \(stats)\(done == total ? "\n" : "")".utf8))
            } else if done == total || Date().timeIntervalSince(lastLine) >= 1 {
                lastLine = Date()
                FileHandle.standardError.write(Data("\(title): \(stats)\n".utf8))
            }
        }
    }
}
