import CLIP
import CommandSupport
import Foundation

/// The throughput bar on stderr (images per second and ETA), redrawn on a terminal only.
final class ThroughputProgress {
    let quiet: Bool
    let terminal: Bool
    let total: Int
    let started = Date()
    var lastDraw = Date.distantPast
    var drawn = false

    init(total: Int, quiet: Bool, terminal: Bool = Console.stderrIsTerminal) {
        self.total = total
        self.quiet = quiet
        self.terminal = terminal
    }

    func update(done: Int, fresh: Int) {
        guard !quiet, terminal else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) > 0.1 || done == total else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(started)
        let rate = elapsed > 0 ? Double(fresh) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : .infinity
        let width = 24
        let filled = total > 0 ? min(width, width * done / total) : width
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        Console.errorRaw("\r\u{1B}[2K" + String(format: "%@ %ld/%ld images  %.1f images/s  ETA %@", bar, done, total, rate,
                                                 TrainingProgress.duration(eta)))
        drawn = true
    }

    func clear() {
        if drawn { Console.errorRaw("\r\u{1B}[2K") }
        drawn = false
    }
}

/// Parses `--regions patch|value`.
func regionMode(_ text: String) throws -> CLIP.RegionMode {
    guard let mode = CLIP.RegionMode(rawValue: text.lowercased()) else {
        throw CLIError("--regions \(text): use patch or value", code: .usage)
    }
    return mode
}
