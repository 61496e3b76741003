import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A fixed set of threads that run one body together, SPMD style (ggml's `ith/nth`).
///
/// `run` calls `body` once on each of `threadCount` threads — the caller's own thread is thread 0
/// — and returns when every call has returned. Inside, `ComputeContext.barrier()` waits for all
/// threads and `rows(_:)` gives this thread's share of a row range, so a whole layer chain can
/// run with a barrier only where data crosses rows. OpenBLAS is kept single-threaded inside
/// (threads are never nested), so each thread's GEMMs run on its own rows.
///
/// Contract: one `run` at a time per pool (calls are serialized by a lock); `body` must not call
/// `run` on the same pool.
public final class ComputePool: @unchecked Sendable {
    /// Threads that execute each body, the caller's included.
    public let threadCount: Int

    private var workers: [Thread] = []
    private let condition = NSCondition()
    private let runLock = NSLock()
    private var generation = 0
    private var pending = 0
    private var shuttingDown = false
    private var body: ((ComputeContext) -> Void)?
    private var barrier = pthread_barrier_t()

    /// Creates a pool of `threads` threads (at least 1) and makes OpenBLAS single-threaded.
    public init(threads: Int) {
        threadCount = max(1, threads)
        BLAS.useSingleThread()
        pthread_barrier_init(&barrier, nil, UInt32(threadCount))
        for index in 1..<max(threadCount, 1) {
            let thread = Thread { [unowned self] in self.workerLoop(index: index) }
            thread.name = "flux-compute-\(index)"
            thread.stackSize = 8 << 20
            workers.append(thread)
            thread.start()
        }
    }

    deinit {
        condition.lock()
        shuttingDown = true
        generation += 1
        condition.broadcast()
        condition.unlock()
        // Workers hold `unowned self`; wait until they have left the loop.
        while true {
            condition.lock()
            let done = pending == -(threadCount - 1)
            condition.unlock()
            if done { break }
            usleep(100)
        }
        pthread_barrier_destroy(&barrier)
    }

    /// Runs `body` on every thread of the pool and returns when all have finished.
    public func run(_ body: (ComputeContext) -> Void) {
        runLock.lock()
        defer { runLock.unlock() }
        withoutActuallyEscaping(body) { escapable in
            condition.lock()
            self.body = escapable
            pending = threadCount - 1
            generation += 1
            condition.broadcast()
            condition.unlock()

            escapable(ComputeContext(index: 0, count: threadCount, pool: self))

            condition.lock()
            while pending > 0 { condition.wait() }
            self.body = nil
            condition.unlock()
        }
    }

    fileprivate func waitAtBarrier() {
        if threadCount > 1 { pthread_barrier_wait(&barrier) }
    }

    private func workerLoop(index: Int) {
        var seen = 0
        while true {
            condition.lock()
            while generation == seen { condition.wait() }
            seen = generation
            if shuttingDown {
                pending -= 1
                condition.unlock()
                return
            }
            var work = body
            condition.unlock()

            work?(ComputeContext(index: index, count: threadCount, pool: self))
            // Drop our reference before reporting done: `run` requires the body not to outlive it.
            work = nil

            condition.lock()
            pending -= 1
            if pending == 0 { condition.broadcast() }
            condition.unlock()
        }
    }
}

/// One thread's view of a `ComputePool.run` call.
public struct ComputeContext {
    /// This thread's index, 0 ..< count (0 is the caller's thread).
    public let index: Int
    /// Threads taking part.
    public let count: Int
    fileprivate unowned let pool: ComputePool

    /// Waits until every thread of the run has reached this barrier.
    public func barrier() { pool.waitAtBarrier() }

    /// This thread's contiguous share of `0 ..< total`, near-equal and in thread order.
    public func rows(_ total: Int) -> Range<Int> {
        let start = total * index / count
        let end = total * (index + 1) / count
        return start..<end
    }

    /// Indices `i` of `0 ..< total` with `i % count == index` (for a few large items).
    public func items(_ total: Int) -> StrideTo<Int> { stride(from: index, to: total, by: count) }
}
