import Foundation
import Testing
import FluxCollective
import FluxTraining
import FluxWire

/// The training core's `GradientReducer` over a ring, as the worker will hold it (style §A: FluxCollective does
/// not know FluxTraining, so the conformance lives with its user; until the worker exists, here).
///
/// The step totals travel in the same all-reduce as the gradients, as a trailer of `2 + lossSums.count` fp32 values
/// after them (docs/protocol.md, "Ring data frames"): the sample count (exact below 2²⁴), each loss sum, and the
/// non-finite flag. The loss sums are summed in fp32 (relative error about 1e-7, enough for logging and the loss
/// average). Every rank must have the same number of loss terms.
final class RingAllReduce: GradientReducer {
    let communicator: RingCommunicator

    init(communicator: RingCommunicator) { self.communicator = communicator }

    var worldSize: Int { communicator.ring.size }
    var rank: Int { communicator.ring.rank }

    func allReduce(
        gradients: UnsafeMutablePointer<Float>, count: Int, totals: inout StepTotals
    ) throws(ReductionError) {
        var trailer: [Float] = [Float(totals.samples)]
        trailer += totals.lossSums.map { Float($0) }
        trailer.append(Float(totals.nonFinite))
        do {
            try trailer.withUnsafeMutableBufferPointer { tail throws(CollectiveError) in
                try communicator.allReduce(UnsafeMutableBufferPointer(start: gradients, count: count), trailer: tail)
            }
        } catch {
            switch error {
            case let .peerTimeout(rank, _, _, waited):
                let (seconds, attoseconds) = waited.components
                throw rank == communicator.ring.left || rank == communicator.ring.right
                    ? .timedOut(seconds: Double(seconds) + Double(attoseconds) / 1e18)
                    : .peerLost(rank: rank, reason: "\(error)")
            default:
                throw .peerLost(rank: communicator.ring.left, reason: "\(error)")
            }
        }
        totals.samples = Double(trailer[0])
        totals.lossSums = totals.lossSums.indices.map { Double(trailer[1 + $0]) }
        totals.nonFinite = Double(trailer[trailer.count - 1])
    }
}

@Suite struct RingReducerTests {
    @Test func gradientReducer_ring_sumsGradientsAndTotalsInOneOperation() throws {
        let endpoints = loopbackEndpoints(3)
        let count = 12_345
        let outcomes = onThreads(3) { rank -> (gradients: [Float], totals: StepTotals, operations: Int)? in
            do {
                let context = try ZMQContext()
                let communicator = try RingCommunicator(context: context, ring: ringMember(rank, endpoints: endpoints))
                defer { communicator.close() }
                let reducer: GradientReducer = RingAllReduce(communicator: communicator)
                #expect(reducer.worldSize == 3 && reducer.rank == rank)
                var gradients = input(rank: rank, count: count)
                var totals = StepTotals(samples: Double(rank + 2), lossSums: [0.1 * Double(rank + 1), 2.5, 1e-3],
                                        nonFinite: rank == 1)
                try gradients.withUnsafeMutableBufferPointer {
                    try reducer.allReduce(gradients: $0.baseAddress!, count: count, totals: &totals)
                }
                return (gradients, totals, communicator.counters.operations)
            } catch {
                Issue.record("rank \(rank): \(error)")
                return nil
            }
        }
        let expectedLoss = [0.6, 7.5, 3e-3]
        for outcome in outcomes {
            guard let outcome else { continue }
            let exact = outcome.gradients == expectedSum(ranks: 3, count: count)
            #expect(exact)
            #expect(outcome.totals.samples == 9)
            #expect(outcome.totals.nonFinite == 1)
            #expect(outcome.operations == 1, "gradients and totals travel in one operation")
            for (found, expected) in zip(outcome.totals.lossSums, expectedLoss) {
                #expect(abs(found - expected) <= 1e-6 * max(1, abs(expected)), "\(found) vs \(expected)")
            }
        }
    }

    @Test func gradientReducer_deadPeer_throwsReductionError() throws {
        let context = try ZMQContext()
        let communicator = try RingCommunicator(
            context: context, ring: ringMember(0, endpoints: loopbackEndpoints(2), timeout: .milliseconds(300)))
        let reducer = RingAllReduce(communicator: communicator)
        var gradients: [Float] = [1, 2]
        var totals = StepTotals(samples: 1, lossSums: [1], nonFinite: false)
        #expect(throws: ReductionError.timedOut(seconds: 0.3)) {
            try gradients.withUnsafeMutableBufferPointer {
                try reducer.allReduce(gradients: $0.baseAddress!, count: 2, totals: &totals)
            }
        }
    }
}
