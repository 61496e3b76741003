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
/// `run` on the same pool. Dropping the pool stops its threads.
public final class ComputePool: @unchecked Sendable {
    /// Threads that execute each body, the caller's included.
    public var threadCount: Int { core.threadCount }

    private let core: PoolCore

    /// Creates a pool of `threads` threads (at least 1) and makes OpenBLAS single-threaded.
    public init(threads: Int) {
        BLAS.useSingleThread()
        let core = PoolCore(threadCount: max(1, threads))
        self.core = core
        for index in 1..<core.threadCount {
            // Workers hold the core, not the pool, so the pool can go away while they wind down.
            let thread = Thread { core.workerLoop(index: index) }
            thread.name = "flux-compute-\(index)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    deinit { core.shutDown() }

    /// Runs `body` on every thread of the pool and returns when all have finished.
    public func run(_ body: (ComputeContext) -> Void) { core.run(body) }
}

/// The state the pool's threads share: the current body, a generation counter and a barrier.
private final class PoolCore: @unchecked Sendable {
    let threadCount: Int
    private let condition = NSCondition()
    private let runLock = NSLock()
    private var generation = 0
    private var pending = 0
    private var shuttingDown = false
    private var body: ((ComputeContext) -> Void)?
    private let barrier: UnsafeMutablePointer<pthread_barrier_t>

    init(threadCount: Int) {
        self.threadCount = threadCount
        barrier = .allocate(capacity: 1)
        pthread_barrier_init(barrier, nil, UInt32(threadCount))
    }

    deinit {
        pthread_barrier_destroy(barrier)
        barrier.deallocate()
    }

    func shutDown() {
        condition.lock()
        shuttingDown = true
        generation += 1
        condition.broadcast()
        condition.unlock()
    }

    func run(_ body: (ComputeContext) -> Void) {
        runLock.lock()
        defer { runLock.unlock() }
        withoutActuallyEscaping(body) { escapable in
            condition.lock()
            self.body = escapable
            pending = threadCount - 1
            generation += 1
            condition.broadcast()
            condition.unlock()

            escapable(ComputeContext(index: 0, count: threadCount, barrier: barrier))

            condition.lock()
            while pending > 0 { condition.wait() }
            self.body = nil
            condition.unlock()
        }
    }

    func workerLoop(index: Int) {
        var seen = 0
        while true {
            condition.lock()
            while generation == seen { condition.wait() }
            seen = generation
            if shuttingDown {
                condition.unlock()
                return
            }
            var work = body
            condition.unlock()

            work?(ComputeContext(index: index, count: threadCount, barrier: barrier))
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
    fileprivate let barrierPointer: UnsafeMutablePointer<pthread_barrier_t>

    fileprivate init(index: Int, count: Int, barrier: UnsafeMutablePointer<pthread_barrier_t>) {
        self.index = index
        self.count = count
        self.barrierPointer = barrier
    }

    /// Waits until every thread of the run has reached this barrier.
    public func barrier() {
        if count > 1 { pthread_barrier_wait(barrierPointer) }
    }

    /// This thread's contiguous share of `0 ..< total`, near-equal and in thread order.
    public func rows(_ total: Int) -> Range<Int> {
        total * index / count..<total * (index + 1) / count
    }

    /// Indices `i` of `0 ..< total` with `i % count == index` (for a few large items).
    public func items(_ total: Int) -> StrideTo<Int> { stride(from: index, to: total, by: count) }
}
