import COpenBLAS
import Dispatch
import Foundation

/// Splits large element-wise and row-wise loops, and large matrix products, across cores: the process's one pool.
///
/// One number governs all parallelism, so that `SSPA_THREADS=1` really means one core (benchmarks compare against
/// PyTorch at a fixed thread count). Small loops stay serial: waking worker threads costs more than a few thousand
/// multiply-adds.
///
/// OpenBLAS itself always runs single-threaded (its loader, Sources/COpenBLAS, sets one thread and ends its idle
/// workers when it opens the library); `BLAS.sgemm` cuts a large product
/// into row or column panels and runs them here instead. Measured on 2 cores with one core kept busy by another
/// process (issue 13 §3): with OpenBLAS's own pthreads pool beside this one, its workers spin in `sched_yield` while
/// the other pool's threads wait for a core, and a training step took 4.2 s instead of 1.3 s; with one pool it took
/// 1.9 s, and the quiet step was no slower.
enum Parallel {
    /// Below this much work (elements, or elements × cost) a loop runs on the calling thread.
    static let minimumParallelWork = 1 << 16

    private static let lock = NSLock()
    nonisolated(unsafe) private static var current = 0

    /// Reads `SSPA_THREADS` once (default: active processors; a value that is not a positive integer also means
    /// the default).
    private static let initialThreads: Int = {
        let env = ProcessInfo.processInfo.environment["SSPA_THREADS"].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        return env.flatMap { $0 > 0 ? $0 : nil } ?? max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Reads `SSPA_THREADS` if nothing has yet; cheap enough to call before every BLAS call.
    @inline(__always)
    static func configure() {
        _ = initialThreads
    }

    /// Marks the threads running the bodies of a split loop, so that work started inside one (a product inside an
    /// attention head) runs on the calling thread instead of splitting again.
    private static let nestedKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()

    /// True on a thread that is running one chunk of a split loop.
    static var isInsideSplitLoop: Bool { pthread_getspecific(nestedKey) != nil }

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
        }
    }

    /// How many chunks a loop of `count` items costing `cost` element-operations each should be split into:
    /// 1 (serial) for small work, else up to one per thread.
    static func chunkCount(_ count: Int, cost: Int = 1) -> Int {
        guard count > 1 else { return 1 }
        let workers = threads
        let work = count.multipliedReportingOverflow(by: max(cost, 1))
        guard workers > 1, !isInsideSplitLoop, work.overflow || work.partialValue >= minimumParallelWork else { return 1 }
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
            let key = nestedKey
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let outer = pthread_getspecific(key)
                pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
                task.value(chunk, (count * chunk / chunks)..<(count * (chunk + 1) / chunks))
                pthread_setspecific(key, outer)
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
    /// Threads used by the parallel loops of the kernels and by large matrix products.
    ///
    /// Starts at `SSPA_THREADS` when set, else the number of active processors. OpenBLAS always runs
    /// single-threaded: large products are split into panels over this many threads (see `Parallel`), so one knob
    /// controls all CPU parallelism.
    public static var threads: Int {
        get { Parallel.threads }
        set { Parallel.threads = newValue }
    }
}
