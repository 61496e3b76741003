import FluxCollective
import FluxTraining

/// The training core's `GradientReducer` over a ring (style §A: FluxCollective does not know FluxTraining, so the
/// conformance lives with its user, the worker).
///
/// The step totals travel in the same all-reduce as the gradients, as a trailer of `2 + lossSums.count` fp32 values
/// after them (docs/protocol.md, "Ring data frames"): the sample count (exact below 2²⁴), each loss sum, and the
/// non-finite flag. The loss sums are summed in fp32 (relative error about 1e-7, enough for logging and the loss
/// average). Every rank must have the same number of loss terms.
public final class RingAllReduce: ExactGradientReducer {
    public let communicator: RingCommunicator

    public init(communicator: RingCommunicator) { self.communicator = communicator }

    public var worldSize: Int { communicator.ring.size }
    public var rank: Int { communicator.ring.rank }

    public func allReduce(
        gradients: UnsafeMutablePointer<Float>, count: Int, totals: inout StepTotals
    ) throws(ReductionError) {
        var trailer: [Float] = [Float(totals.samples)]
        trailer += totals.lossSums.map { Float($0) }
        trailer.append(Float(totals.nonFinite))
        try translating { () throws(CollectiveError) in
            try trailer.withUnsafeMutableBufferPointer { tail throws(CollectiveError) in
                try communicator.allReduce(UnsafeMutableBufferPointer(start: gradients, count: count), trailer: tail)
            }
        }
        totals.samples = Double(trailer[0])
        totals.lossSums = totals.lossSums.indices.map { Double(trailer[1 + $0]) }
        totals.nonFinite = Double(trailer[trailer.count - 1])
    }

    /// The block exponents of `.exact` reduction: an element-wise max (exact, order-free).
    public func allReduceMax(_ values: UnsafeMutableBufferPointer<Float>) throws(ReductionError) {
        try translating { () throws(CollectiveError) in try communicator.allReduce(values, op: .max) }
    }

    /// The fixed-point gradients of `.exact` reduction: an integer sum (exact, order-free) of 7-byte integers, so
    /// exact sends less than twice fp32's bytes.
    public func allReduceSum(packed56 bytes: UnsafeMutableRawBufferPointer) throws(ReductionError) {
        try translating { () throws(CollectiveError) in try communicator.allReduce(packed56: bytes) }
    }

    /// Runs a collective, turning its failure into the `ReductionError` the training loop rolls back on.
    private func translating(_ body: () throws(CollectiveError) -> Void) throws(ReductionError) {
        do {
            try body()
        } catch {
            switch error {
            case let .peerDisconnected(rank, _, _):
                throw .peerDisconnected(rank: rank)
            case let .peerTimeout(rank, _, _, waited):
                let (seconds, attoseconds) = waited.components
                throw rank == communicator.ring.left || rank == communicator.ring.right
                    ? .timedOut(seconds: Double(seconds) + Double(attoseconds) / 1e18)
                    : .peerLost(rank: rank, reason: "\(error)")
            default:
                throw .peerLost(rank: communicator.ring.left, reason: "\(error)")
            }
        }
    }
}
