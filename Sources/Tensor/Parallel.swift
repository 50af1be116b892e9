import COpenBLAS
import Dispatch
import Foundation

/// Splits large element-wise and row-wise loops across cores, and owns the thread count shared with OpenBLAS.
///
/// One number governs both kinds of parallelism, so that `SSPA_THREADS=1` really means one core (benchmarks compare
/// against PyTorch at a fixed thread count). Small loops stay serial: waking worker threads costs more than a few
/// thousand multiply-adds.
enum Parallel {
    /// Below this much work (elements, or elements × cost) a loop runs on the calling thread.
    static let minimumParallelWork = 1 << 16

    private static let lock = NSLock()
    nonisolated(unsafe) private static var current = 0

    /// Reads `SSPA_THREADS` once (default: active processors; a value that is not a positive integer also means
    /// the default) and hands the count to OpenBLAS before its first use.
    private static let initialThreads: Int = {
        let env = ProcessInfo.processInfo.environment["SSPA_THREADS"].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let n = env.flatMap { $0 > 0 ? $0 : nil } ?? max(1, ProcessInfo.processInfo.activeProcessorCount)
        openblas_set_num_threads(Int32(n))
        return n
    }()

    /// Applies `SSPA_THREADS` to OpenBLAS if nothing has yet; cheap enough to call before every BLAS call.
    @inline(__always)
    static func configure() {
        _ = initialThreads
    }

    /// The thread count in force; the first call applies `SSPA_THREADS`.
    static var threads: Int {
        get {
            let initial = initialThreads
            lock.lock(); defer { lock.unlock() }
            return current == 0 ? initial : current
        }
        set {
            _ = initialThreads
            let n = max(1, newValue)
            lock.lock(); defer { lock.unlock() }
            current = n
            openblas_set_num_threads(Int32(n))
        }
    }

    /// How many chunks a loop of `count` items costing `cost` element-operations each should be split into:
    /// 1 (serial) for small work, else up to one per thread.
    static func chunkCount(_ count: Int, cost: Int = 1) -> Int {
        guard count > 1 else { return 1 }
        let workers = threads
        let work = count.multipliedReportingOverflow(by: max(cost, 1))
        guard workers > 1, work.overflow || work.partialValue >= minimumParallelWork else { return 1 }
        return min(workers, count)
    }

    /// Calls `body` on disjoint ranges that cover `0..<count`, concurrently when `count × cost` is large.
    ///
    /// `cost` is the work per item in element-operations (a row of a row-wise kernel costs its length). `body` must
    /// only write locations that belong to its range.
    static func forEachChunk(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
        forEachChunk(count, chunks: chunkCount(count, cost: cost)) { _, range in body(range) }
    }

    /// Calls `body(chunk, range)` for `chunks` disjoint ranges covering `0..<count`, concurrently when `chunks > 1`;
    /// the chunk index lets a caller give each concurrent body its own scratch memory.
    static func forEachChunk(_ count: Int, chunks: Int, _ body: (Int, Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = max(1, min(chunks, count))
        if chunks == 1 {
            body(0, 0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            let task = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                task.value(chunk, (count * chunk / chunks)..<(count * (chunk + 1) / chunks))
            }
        }
    }
}

/// Carries a value that is safe to share by construction (disjoint writes) across a `concurrentPerform` boundary.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

extension Tensor {
    /// Threads used by BLAS calls and by the parallel loops of the kernels.
    ///
    /// Starts at `SSPA_THREADS` when set, else the number of active processors. Setting it also calls
    /// `openblas_set_num_threads`, so one knob controls all CPU parallelism.
    public static var threads: Int {
        get { Parallel.threads }
        set { Parallel.threads = newValue }
    }
}
