import Foundation

/// Stores finished labels beside the build loop, as a group commit: each write takes every label that finished
/// while the previous one ran, or in the `linger` after the first of them, and stores them in one transaction. A
/// build's answers come in waves (the labels sent together are answered together), so a group holds a wave or more
/// instead of one label: each commit rewrites the tables' and indexes' last pages into the write-ahead log, and with a
/// commit per label those rewrites were most of what the log held. The linger (250 ms) spans more than one wave when
/// answers come quickly: at 200 labels, 16 jobs and 200 ms answers, groups of about two waves cost a fifth less CPU
/// to store than groups of one. Once every label has started (`lastLabelStarted`), the linger is the short
/// `finalLinger` (40 ms), measured from each group's first label: what is waiting is written while the last answers
/// are on their way, and the end of a build waits only for the last wave's commit.
///
/// A label is reported (`saved`) only once its transaction has committed, so what a build reports is what the store
/// holds. A group that fails is written again one label per transaction, so a full disk keeps every label that fits,
/// as when each label had its own transaction. `drain()` writes at once and waits for every label handed over so
/// far: a build ends (or stops on Ctrl-C) only after its finished labels are stored.
///
/// The run a build writes to is registered first, on the writer's thread (`register`): for a store the build has just
/// created, that is its schema, its label set and its run, written while the first requests are on their way.
final class OutcomeWriter: @unchecked Sendable {
    /// A build's run and the row id of each of its labels, by position in the label set.
    struct RunRows: Sendable {
        var runID: Int64
        var labelIDs: [Int64]
        /// The run held no label's rows when the build opened it: each label is submitted once, so no write of
        /// this build replaces anything.
        var startedEmpty = false
    }

    private let store: KnowledgeStore
    private let saved: @Sendable (LabelOutcome) -> Void
    private let queue = DispatchQueue(label: "sspa-knowledge.store-writer")
    private let lock = NSCondition()
    private var registered: RunRows?
    private var pending: [(outcome: LabelOutcome, position: Int)] = []
    private var writing = false
    private var flushing = false
    private var firstError: Error?
    /// Positions written so far (on the writer's queue only): a label submitted again replaces its first write even in
    /// a run that started empty.
    private var written = Set<Int>()
    /// How long a write waits for more labels after the first one it will store.
    let linger: Duration
    /// The linger once every label has started.
    let finalLinger: Duration
    /// The linger in force (under `lock`): `linger`, then `finalLinger`.
    private var lingerNow: Duration
    /// Labels that start a write at once, without waiting out the linger.
    let fullGroup: Int

    /// A kill -9 or a power loss loses at most the labels of one linger (Ctrl-C loses none: `drain`).
    init(store: KnowledgeStore, linger: Duration = .milliseconds(250), finalLinger: Duration = .milliseconds(40),
         fullGroup: Int = 64, saved: @escaping @Sendable (LabelOutcome) -> Void) {
        self.store = store
        self.linger = linger
        self.finalLinger = min(finalLinger, linger)
        lingerNow = linger
        self.fullGroup = max(fullGroup, 1)
        self.saved = saved
    }

    /// Registers the run the labels go to: `rows` runs on the writer's thread before any label is written. If it
    /// throws, no label is written and `error` says why.
    func register(_ rows: @escaping @Sendable () throws -> RunRows) {
        queue.async {
            do {
                let made = try rows()
                self.lock.withLock { self.registered = made }
            } catch {
                self.lock.withLock { if self.firstError == nil { self.firstError = error } }
            }
        }
    }

    /// The registered run, once registered.
    var rows: RunRows? { lock.withLock { registered } }

    /// Hands a finished label (at `position` in the label set) over to be stored.
    func submit(_ outcome: LabelOutcome, position: Int) {
        let start = lock.withLock { () -> Bool in
            pending.append((outcome, position))
            if pending.count >= fullGroup { lock.signal() }
            if writing { return false }
            writing = true
            return true
        }
        if start { queue.async { self.writeAll() } }
    }

    /// The first error a write met, if any.
    var error: Error? { lock.withLock { firstError } }

    /// Called when the last label has started. The linger becomes `finalLinger` (a group waiting longer than that is
    /// written now), and once the labels handed over so far are written, the write-ahead log is folded into the store
    /// file, so that closing the store at the end has little left to copy. A failed checkpoint is harmless (the close
    /// checkpoints anyway) and ignored.
    func lastLabelStarted() {
        lock.withLock {
            lingerNow = finalLinger
            lock.broadcast()
        }
        queue.async { try? self.store.checkpoint() }
    }

    /// Waits until every label handed over so far is written (or failed); returns the first error.
    func drain() async -> Error? {
        // No more lingering: whatever is pending is written now.
        lock.withLock {
            flushing = true
            lock.broadcast()
        }
        // The queue is serial and `writeAll` runs until nothing is pending, so this block runs after every write.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async { continuation.resume() }
        }
        return error
    }

    private func writeAll() {
        while true {
            let (group, rows) = lock.withLock { () -> ([(outcome: LabelOutcome, position: Int)], RunRows?) in
                // Wait a little for the rest of the wave (a label waits at most the linger longer to be stored). The
                // deadline is read again after each wake-up: the linger shortens when the last label has started.
                let first = Date()
                while !flushing, !pending.isEmpty, pending.count < fullGroup {
                    let deadline = first.addingTimeInterval(Double(lingerNow.components.seconds) + Double(lingerNow.components.attoseconds) / 1e18)
                    guard deadline > Date(), lock.wait(until: deadline) else { break }
                }
                let group = pending
                pending.removeAll()
                if group.isEmpty { writing = false }
                return (group, registered)
            }
            if group.isEmpty { return }
            // No run (its registration failed, and said why): nothing can be stored.
            guard let rows else { continue }
            do {
                var again = false
                for item in group where !written.insert(item.position).inserted { again = true }
                try store.saveOutcomes(group.map { ($0.outcome, rows.labelIDs[$0.position]) }, runID: rows.runID,
                                       replacing: !rows.startedEmpty || again)
                for item in group { saved(item.outcome) }
            } catch {
                // One label per transaction: keep every label that can be stored.
                for item in group {
                    do {
                        try store.saveOutcome(item.outcome, runID: rows.runID, labelID: rows.labelIDs[item.position])
                        saved(item.outcome)
                    } catch {
                        lock.withLock { if firstError == nil { firstError = error } }
                    }
                }
            }
        }
    }
}
