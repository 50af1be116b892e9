import Foundation

/// Stores finished labels beside the build loop, as a group commit: each write takes every label that finished
/// while the previous one ran, or in the `linger` after the first of them, and stores them in one transaction. A
/// build's answers come in waves (the labels sent together are answered together), so a wave costs one commit or two
/// instead of one per label: each commit rewrites the tables' and indexes' last pages into the write-ahead log, and
/// with a commit per label those rewrites were most of what the log held.
///
/// A label is reported (`saved`) only once its transaction has committed, so what a build reports is what the store
/// holds. A group that fails is written again one label per transaction, so a full disk keeps every label that fits,
/// as when each label had its own transaction. `drain()` writes at once and waits for every label handed over so
/// far: a build ends (or stops on Ctrl-C) only after its finished labels are stored.
final class OutcomeWriter: @unchecked Sendable {
    private let store: KnowledgeStore
    private let runID: Int64
    private let saved: @Sendable (LabelOutcome) -> Void
    private let queue = DispatchQueue(label: "sspa-knowledge.store-writer")
    private let lock = NSCondition()
    private var pending: [(outcome: LabelOutcome, labelID: Int64)] = []
    private var writing = false
    private var flushing = false
    private var firstError: Error?
    /// How long a write waits for more labels after the first one it will store.
    let linger: Duration
    /// Labels that start a write at once, without waiting out the linger.
    let fullGroup: Int

    init(store: KnowledgeStore, runID: Int64, linger: Duration = .milliseconds(40), fullGroup: Int = 64,
         saved: @escaping @Sendable (LabelOutcome) -> Void) {
        self.store = store
        self.runID = runID
        self.linger = linger
        self.fullGroup = max(fullGroup, 1)
        self.saved = saved
    }

    /// Hands a finished label over to be stored.
    func submit(_ outcome: LabelOutcome, labelID: Int64) {
        let start = lock.withLock { () -> Bool in
            pending.append((outcome, labelID))
            if pending.count >= fullGroup { lock.signal() }
            if writing { return false }
            writing = true
            return true
        }
        if start { queue.async { self.writeAll() } }
    }

    /// The first error a write met, if any.
    var error: Error? { lock.withLock { firstError } }

    /// Folds the write-ahead log into the store file once the labels handed over so far are written: called when the
    /// last label has started, so that closing the store at the end has little left to copy. A failure is harmless
    /// (the close checkpoints anyway) and ignored.
    func checkpointSoon() {
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
            let group = lock.withLock { () -> [(outcome: LabelOutcome, labelID: Int64)] in
                // Wait a little for the rest of the wave (a label waits at most `linger` longer to be stored).
                let deadline = Date(timeIntervalSinceNow: Double(linger.components.seconds) + Double(linger.components.attoseconds) / 1e18)
                while !flushing, !pending.isEmpty, pending.count < fullGroup, lock.wait(until: deadline) {}
                let group = pending
                pending.removeAll()
                if group.isEmpty { writing = false }
                return group
            }
            if group.isEmpty { return }
            do {
                try store.saveOutcomes(group, runID: runID)
                for item in group { saved(item.outcome) }
            } catch {
                // One label per transaction: keep every label that can be stored.
                for item in group {
                    do {
                        try store.saveOutcome(item.outcome, runID: runID, labelID: item.labelID)
                        saved(item.outcome)
                    } catch {
                        lock.withLock { if firstError == nil { firstError = error } }
                    }
                }
            }
        }
    }
}
