import CommandSupport
import Foundation
import Knowledge

/// Progress on stderr: a redrawn bar on a terminal, plain lines (at most one a second) otherwise.
final class ProgressDisplay: @unchecked Sendable {
    private let quiet: Bool
    private let terminal: Bool
    private let lock = NSLock()
    private var total = 0
    private var todo = 0
    private var done = 0
    private var descriptions = 0
    private var failures = 0
    private var retries = 0
    private var started = Date()
    private var lastLine = Date.distantPast
    private var drawn = false
    private var setName = ""

    init(quiet: Bool, terminal: Bool = Console.stderrIsTerminal) {
        self.quiet = quiet
        self.terminal = terminal
    }

    func handle(_ event: BuildEvent, set: String) {
        lock.lock()
        defer { lock.unlock() }
        switch event {
        case .started(let total, let todo, let skipped, let runID):
            self.total = total
            self.todo = todo
            done = 0; descriptions = 0; failures = 0; retries = 0
            started = Date()
            setName = set
            if !quiet {
                let resumed = skipped > 0 ? ", \(skipped) already done" : ""
                write("\(set): \(total) labels, \(todo) to do\(resumed) (run \(runID))")
            }
        case .labelFinished(let outcome):
            done += 1
            descriptions += outcome.usable
            if outcome.state == .failed { failures += 1 }
            if outcome.state == .failed, let message = outcome.message, !quiet {
                clearBar()
                write("  failed: \(outcome.label.rawName): \(message)")
            }
            draw(force: done == todo)
        case .retrying:
            retries += 1
        }
    }

    func retry(label: String, error: String, wait: Double) {
        lock.lock()
        defer { lock.unlock() }
        retries += 1
        guard !quiet else { return }
        clearBar()
        write("  retrying \(label) in \(String(format: "%.1f", wait)) s: \(error)")
        draw(force: true)
    }

    private func draw(force: Bool) {
        guard !quiet, todo > 0 else { return }
        let elapsed = Date().timeIntervalSince(started)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(todo - done) / rate : 0
        let stats = "\(done)/\(todo) labels, \(descriptions) descriptions, \(failures) failed, \(String(format: "%.1f", rate)) labels/s, ETA \(Self.duration(eta))"
        if terminal {
            FileHandle.standardError.write(Data("\r\u{1B}[2K\(setName) \(Self.bar(done, of: todo)) \(stats)".utf8))
            drawn = true
            if done == todo { FileHandle.standardError.write(Data("\n".utf8)); drawn = false }
        } else if force || Date().timeIntervalSince(lastLine) >= 1 {
            lastLine = Date()
            write("\(setName): \(stats)")
        }
    }

    private func clearBar() {
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)); drawn = false }
    }

    func finishLine() {
        lock.withLock {
            if drawn { FileHandle.standardError.write(Data("\n".utf8)); drawn = false }
        }
    }

    private func write(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// The end-of-run summary; printed even with --quiet.
    func summary(_ summary: BuildSummary, set: String, provider: KnowledgeProvider) {
        lock.lock()
        defer { lock.unlock() }
        clearBar()
        if summary.upToDate {
            var lines = ["\(set): nothing to do — the store already holds knowledge for all \(summary.total) labels (\(summary.complete) complete, \(summary.short.count) short, \(summary.none.count) without knowledge; \(summary.descriptions) descriptions) from run \(summary.runID) by \(provider.name) (\(provider.model)); nothing was written."]
            if !summary.none.isEmpty { lines.append("  no knowledge: \(Self.list(summary.none))") }
            for line in lines { write(line) }
            return
        }
        var lines = [
            "\(set): \(summary.status.rawValue) — \(summary.complete) complete, \(summary.short.count) short, \(summary.none.count) without knowledge, \(summary.failed.count) failed; \(summary.skipped) skipped as already done",
            "  \(summary.descriptions) descriptions\(summary.flagged > 0 ? " (and \(summary.flagged) flagged, which encode leaves out; see validate)" : "") from \(summary.requests) requests to \(provider.name) (\(provider.model)) in \(Self.duration(summary.seconds))"
                + (summary.promptTokens + summary.completionTokens > 0 ? ", tokens: \(summary.promptTokens) prompt + \(summary.completionTokens) completion" : ""),
        ]
        if !summary.short.isEmpty {
            let hint = provider.kind == .offline ? "\(provider.name) has no more to say about them; an LLM endpoint gives more" : "retry with --resample-short"
            lines.append("  short: \(Self.list(summary.short)) (\(hint))")
        }
        if !summary.none.isEmpty { lines.append("  no knowledge: \(Self.list(summary.none))") }
        if !summary.replaces.isEmpty {
            lines.append("  a new run: earlier knowledge of \(set) came from \(summary.replaces.joined(separator: ", ")); this source is \(provider.model), so every label was asked again (the old run stays; `sspa-knowledge list` shows both)")
        }
        if !summary.failed.isEmpty {
            lines.append("  failed: \(Self.list(summary.failed)) (run again to retry)")
            if let reason = summary.lastFailure { lines.append("  last error: \(reason)") }
        }
        for line in lines { write(line) }
    }

    /// A 24-cell text bar, `done` of `total` filled.
    static func bar(_ done: Int, of total: Int, width: Int = 24) -> String {
        let filled = max(0, min(width, Int(Double(width) * Double(done) / Double(max(total, 1)))))
        return String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
    }

    static func list(_ names: [String]) -> String {
        names.count <= 12 ? names.joined(separator: ", ") : names.prefix(12).joined(separator: ", ") + ", … (\(names.count) in all)"
    }

    /// "2.7 s", "4:05", "1:02:05". Written by hand: `String(format:)` loads the locale's formatting on first use,
    /// a third of a millisecond at the end of every build.
    static func duration(_ seconds: Double) -> String {
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        if !seconds.isFinite || abs(seconds) >= 1e15 { return "--:--" }  // an ETA with no rate yet
        if seconds < 60 {
            let tenths = Int((seconds * 10).rounded())
            return (tenths < 0 ? "-" : "") + "\(abs(tenths) / 10).\(abs(tenths) % 10) s"
        }
        let s = Int(seconds)
        return s < 3600 ? "\(s / 60):\(two(s % 60))" : "\(s / 3600):\(two(s / 60 % 60)):\(two(s % 60))"
    }
}
