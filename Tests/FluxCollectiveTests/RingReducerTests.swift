import Foundation
import Testing
import FluxCollective
import FluxTraining
import FluxWire
import FluxWorker

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
