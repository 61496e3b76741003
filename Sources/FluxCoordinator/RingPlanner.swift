import FluxProtocol

/// Turns a job's members (in rank order) into each rank's `ring_formed` (design §4): pure, no I/O.
public enum RingPlanner {
    /// One `ring_formed` per member, rank r = index in `members`.
    public static func plan(
        job: JobID, generation: UInt64, members: [(id: WorkerID, dataEndpoint: String, publicKey: String?)],
        security: RingSecurity, resumeStep: Int
    ) -> [(WorkerID, RingFormed)] {
        let n = members.count
        func peer(_ index: Int) -> RingPeer {
            let member = members[(index + n) % n]
            return RingPeer(workerID: member.id, endpoint: RingEndpoint.forGeneration(base: member.dataEndpoint, generation: generation),
                            publicKey: security == .curve ? member.publicKey : nil)
        }
        return members.indices.map { rank in
            (members[rank].id,
             RingFormed(job: job, generation: generation, rank: rank, worldSize: n, left: peer(rank - 1),
                        right: peer(rank + 1), ringSecurity: security, resumeStep: resumeStep))
        }
    }
}
