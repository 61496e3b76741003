import FluxCollective
import FluxTraining

/// Makes every rank of a new generation hold rank 0's commit (design §4): rank 0 broadcasts the commit's header
/// (step, data cursor, optimizer step); an all-reduce counts the ranks whose own commit differs; only if one does
/// (a joiner, or a rank that committed one step more before the ring broke) does rank 0 broadcast the parameters
/// and both AdamW moments. A re-form after a lost worker therefore moves a few bytes, a join the whole state.
enum StateSync {
    /// Integers of the header, each sent as two fp32 bit patterns (broadcast copies bytes; it never adds them).
    static let headerFields = 7

    static func synchronize(
        communicator: RingCommunicator, trainer: Trainer, commit: inout TrainingCommit, hasState: Bool
    ) throws(CollectiveError) {
        let mine = header(of: commit)
        var header = mine.flatMap(split)
        try header.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in try communicator.broadcast(buffer) }
        let root = stride(from: 0, to: header.count, by: 2).map { join(header[$0], header[$0 + 1]) }
        var lacking: [Float] = [hasState && root == mine ? 0 : 1]
        try lacking.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in try communicator.allReduce(buffer) }
        guard lacking[0] > 0 else { return }
        let count = commit.parameters.count
        var payload = [Float](repeating: 0, count: 3 * count)
        if communicator.ring.rank == 0 {
            payload.replaceSubrange(0..<count, with: commit.parameters)
            payload.replaceSubrange(count..<(2 * count), with: commit.expAvg)
            payload.replaceSubrange((2 * count)..<(3 * count), with: commit.expAvgSq)
        }
        try payload.withUnsafeMutableBufferPointer { buffer throws(CollectiveError) in try communicator.broadcast(buffer) }
        guard communicator.ring.rank != 0 else { return }
        commit.parameters = Array(payload[0..<count])
        commit.expAvg = Array(payload[count..<(2 * count)])
        commit.expAvgSq = Array(payload[(2 * count)...])
        commit.optimizerStep = root[3]
        commit.state.step = root[0]
        commit.state.epoch = root[1]
        commit.state.stepInEpoch = root[2]
        commit.state.nonFiniteStreak = root[4]
        commit.state.nonFiniteSteps = root[5]
        commit.state.skippedSamples = root[6]
    }

    static func header(of commit: TrainingCommit) -> [Int] {
        [commit.state.step, commit.state.epoch, commit.state.stepInEpoch, commit.optimizerStep,
         commit.state.nonFiniteStreak, commit.state.nonFiniteSteps, commit.state.skippedSamples]
    }

    static func split(_ value: Int) -> [Float] {
        let bits = UInt64(bitPattern: Int64(value))
        return [Float(bitPattern: UInt32(truncatingIfNeeded: bits)), Float(bitPattern: UInt32(truncatingIfNeeded: bits >> 32))]
    }

    static func join(_ low: Float, _ high: Float) -> Int {
        Int(Int64(bitPattern: UInt64(low.bitPattern) | UInt64(high.bitPattern) << 32))
    }
}
