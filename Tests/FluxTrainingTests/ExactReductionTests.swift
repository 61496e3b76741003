import Foundation
import FluxTensor
import FluxTraining
import FluxViT
import Testing

/// `.exact` reduction in the training loop (issue 12): the same bits after every step for any number of ranks,
/// here ranks as threads of one process joined by an in-memory collective.
@Suite struct ExactReductionTests {
    /// n participants on threads; each operation waits for all n, then every participant gets the reduction.
    final class InMemoryGroup: @unchecked Sendable {
        let size: Int
        private let condition = NSCondition()
        private var arrived = 0
        private var generation = 0
        private var floats: [[Float]] = []
        private var integers: [[Int64]] = []
        private var result: Any = ()

        init(size: Int) { self.size = size }

        /// Contributes `mine` as rank `rank`; returns the reduction of every rank's contribution (in rank order).
        func exchange<T>(_ mine: [T], rank: Int, reduce: @escaping ([[T]]) -> [T]) -> [T] {
            condition.lock()
            defer { condition.unlock() }
            let myGeneration = generation
            if arrived == 0 { contributions = [Any](repeating: (), count: size) }
            contributions[rank] = mine
            arrived += 1
            if arrived == size {
                result = reduce(contributions.map { $0 as! [T] })
                arrived = 0
                generation += 1
                condition.broadcast()
            } else {
                while generation == myGeneration { condition.wait() }
            }
            return result as! [T]
        }
        private var contributions: [Any] = []
    }

    final class Member: ExactGradientReducer {
        let group: InMemoryGroup
        let rank: Int
        var worldSize: Int { group.size }
        init(group: InMemoryGroup, rank: Int) {
            self.group = group
            self.rank = rank
        }

        func allReduce(gradients: UnsafeMutablePointer<Float>, count: Int, totals: inout StepTotals) throws(ReductionError) {
            let mine = Array(UnsafeBufferPointer(start: gradients, count: count))
                + [Float(totals.samples), Float(totals.nonFinite)] + totals.lossSums.map { Float($0) }
            let sum = group.exchange(mine, rank: rank) { all in
                (0..<all[0].count).map { i in all.reduce(Float(0)) { $0 + $1[i] } }
            }
            for i in 0..<count { gradients[i] = sum[i] }
            totals.samples = Double(sum[count])
            totals.nonFinite = Double(sum[count + 1])
            totals.lossSums = (0..<totals.lossSums.count).map { Double(sum[count + 2 + $0]) }
        }

        func allReduceMax(_ values: UnsafeMutableBufferPointer<Float>) throws(ReductionError) {
            let result = group.exchange(Array(values), rank: rank) { all in
                (0..<all[0].count).map { i in all.map { $0[i] }.max()! }
            }
            for i in values.indices { values[i] = result[i] }
        }

        /// As the ring does it: 7-byte integers summed modulo 2^56 (through `unpack56`/`pack56`).
        func allReduceSum(packed56 bytes: UnsafeMutableRawBufferPointer) throws(ReductionError) {
            let count = bytes.count / 7
            var mine = [Int64](repeating: 0, count: count)
            mine.withUnsafeMutableBufferPointer { FixedPointGradients.unpack56(bytes.baseAddress!, count: count, into: $0.baseAddress!) }
            let result = group.exchange(mine, rank: rank) { all in
                (0..<all[0].count).map { i in all.reduce(Int64(0)) { $0 &+ $1[i] } }
            }
            result.withUnsafeBufferPointer { FixedPointGradients.pack56($0.baseAddress!, count: count, into: bytes.baseAddress!) }
        }
    }

    /// The parameters after each of `steps` steps of the tiny model on `ranks` ranks (rank 0's; all ranks agree).
    static func run(ranks: Int, steps: Int, reduction: GradientReduction, slots: Int = 0) throws -> [[UInt32]] {
        let group = InMemoryGroup(size: ranks)
        let trainers = try (0..<ranks).map { rank in
            let trainer = try TrainerTests.trainer(seed: 3) { config in
                config.globalBatch = 8
                config.reduction = reduction
                config.slots = slots
            }
            trainer.reducer = Member(group: group, rank: rank)
            return trainer
        }
        /// What the rank threads share; each rank writes only its own slot, read after they are joined.
        final class Shared: @unchecked Sendable {
            let trainers: [Trainer]
            var snapshots: [[[UInt32]]]
            var failures: [Error?]
            init(_ trainers: [Trainer]) {
                self.trainers = trainers
                snapshots = Array(repeating: [], count: trainers.count)
                failures = Array(repeating: nil, count: trainers.count)
            }
        }
        let shared = Shared(trainers)
        // One thread a rank (a pool with fewer threads than ranks would deadlock in the collective).
        let done = DispatchGroup()
        for rank in 0..<ranks {
            done.enter()
            let thread = Thread {
                defer { done.leave() }
                do {
                    for _ in 0..<steps {
                        _ = try shared.trainers[rank].step()
                        let p = shared.trainers[rank].model.parameters
                        shared.snapshots[rank].append(UnsafeBufferPointer(start: p.values, count: p.count).map(\.bitPattern))
                    }
                } catch {
                    shared.failures[rank] = error
                }
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        done.wait()
        if let failure = shared.failures.compactMap({ $0 }).first { throw failure }
        let snapshots = shared.snapshots
        for rank in 1..<ranks { #expect(snapshots[rank] == snapshots[0], "rank \(rank) differs from rank 0") }
        return snapshots[0]
    }

    @Test func exact_oneToFourRanks_sameBitsAfterEveryStep() throws {
        let reference = try Self.run(ranks: 1, steps: 4, reduction: .exact)
        for ranks in 2...4 {
            let other = try Self.run(ranks: ranks, steps: 4, reduction: .exact)
            for step in 0..<4 {
                #expect(other[step] == reference[step], "\(ranks) ranks differ from 1 after step \(step + 1)")
            }
        }
    }

    @Test func exact_moreRanksThanSlots_idleRanksStillAgree() throws {
        let reference = try Self.run(ranks: 1, steps: 2, reduction: .exact, slots: 2)
        let three = try Self.run(ranks: 3, steps: 2, reduction: .exact, slots: 2)
        #expect(three == reference)
    }

    @Test func exact_staysCloseToFastReduction() throws {
        let exact = try Self.run(ranks: 2, steps: 3, reduction: .exact)
        let fast = try Self.run(ranks: 2, steps: 3, reduction: .fast)
        let a = exact[2].map { Double(Float(bitPattern: $0)) }, b = fast[2].map { Double(Float(bitPattern: $0)) }
        let difference = zip(a, b).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
        let norm = a.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        #expect(difference / norm < 1e-3, "relative distance \(difference / norm)")
    }

    @Test func slots_splitNearEquallyAndCoverAll() {
        for (n, v) in [(1, 8), (3, 8), (4, 8), (5, 3)] {
            let parts = (0..<n).map { Trainer.slots(rank: $0, worldSize: n, slots: v) }
            #expect(parts.flatMap { Array($0) } == Array(0..<v))
            #expect(parts.map(\.count).max()! - parts.map(\.count).min()! <= 1)
        }
    }
}
