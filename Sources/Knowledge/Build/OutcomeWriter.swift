import Foundation

/// Stores finished labels beside the build loop, as a group commit: each write takes every label that finished
/// while the previous one ran and stores them in one transaction, so a label waits at most for the write in progress,
/// and a build of many labels pays one commit per group instead of one per label.
///
/// A label is reported (`saved`) only once its transaction has committed, so what a build reports is what the store
/// holds. A group that fails is written again one label per transaction, so a full disk keeps every label that fits,
/// as when each label had its own transaction. `drain()` waits for every label handed over so far: a build ends (or
/// stops on Ctrl-C) only after its finished labels are stored.
final class OutcomeWriter: @unchecked Sendable {
    private let store: KnowledgeStore
    private let runID: Int64
    private let saved: @Sendable (LabelOutcome) -> Void
    private let queue = DispatchQueue(label: "sspa-knowledge.store-writer")
    private let lock = NSLock()
    private var pending: [(outcome: LabelOutcome, labelID: Int64)] = []
    private var writing = false
    private var firstError: Error?

    init(store: KnowledgeStore, runID: Int64, saved: @escaping @Sendable (LabelOutcome) -> Void) {
        self.store = store
        self.runID = runID
        self.saved = saved
    }

    /// Hands a finished label over to be stored.
    func submit(_ outcome: LabelOutcome, labelID: Int64) {
        let start = lock.withLock { () -> Bool in
            pending.append((outcome, labelID))
            if writing { return false }
            writing = true
            return true
        }
        if start { queue.async { self.writeAll() } }
    }

    /// The first error a write met, if any.
    var error: Error? { lock.withLock { firstError } }

    /// Waits until every label handed over so far is written (or failed); returns the first error.
    func drain() async -> Error? {
        // The queue is serial and `writeAll` runs until nothing is pending, so this block runs after every write.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async { continuation.resume() }
        }
        return error
    }

    private func writeAll() {
        while true {
            let group = lock.withLock { () -> [(outcome: LabelOutcome, labelID: Int64)] in
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
