import FluxProtocol

/// A sweep's cells as units of work (design §5): each cell is split into `shards` dataset shards when the sweep
/// starts (more idle workers than cells), and unit `u` is shard `u % shards` of cell `u / shards`. A unit is pending,
/// running on one or more workers (a straggler gets a second), or done; a done unit is never dispatched again.
public struct SweepProgress: Sendable, Equatable, Codable {
    /// Cells of the sweep's expansion.
    public var cells: Int
    /// Shards per cell, fixed when the sweep starts.
    public var shards: Int = 1
    /// Units done (their scores are stored); `markDone` keeps `cellsDone` in step.
    public private(set) var done: Set<Int> = []
    /// Cells whose every shard is done.
    public private(set) var cellsDone = 0
    /// Units being computed, each with its runs.
    public var running: [Int: [Run]] = [:]
    /// Units sent back (their worker died or gave up), ascending; they go before fresh ones.
    public var requeued: [Int] = []
    /// Units below this were dispatched at least once.
    public var cursor = 0
    /// How often each unit not yet done was dispatched (a unit that keeps failing fails the sweep).
    public var attempts: [Int: Int] = [:]
    /// Seconds each finished unit took (the latest 256), for the ETA and straggler detection.
    public var durations: [Double] = []

    /// One worker computing one unit since a time of the machine's clock.
    public struct Run: Sendable, Equatable, Codable {
        public var worker: WorkerID
        public var since: Double
    }

    /// A sweep of `cells` cells, not started.
    public init(cells: Int) { self.cells = cells }

    /// Records a unit as done (once); O(shards).
    public mutating func markDone(_ unit: Int) {
        guard done.insert(unit).inserted else { return }
        attempts[unit] = nil
        let cell = unit / shards
        if ((cell * shards)..<((cell + 1) * shards)).allSatisfy(done.contains) { cellsDone += 1 }
    }

    enum CodingKeys: String, CodingKey { case cells, shards, done, running, requeued, cursor, attempts, durations }

    /// `done` travels as sorted runs `[first, last]`: a sweep's units finish roughly in order, so a record of
    /// thousands of finished units stays a few numbers long (it is written at every turn that changes it).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(cells, forKey: .cells)
        try c.encode(shards, forKey: .shards)
        var runs: [[Int]] = []
        for unit in done.sorted() {
            if let last = runs.last, last[1] == unit - 1 { runs[runs.count - 1][1] = unit } else { runs.append([unit, unit]) }
        }
        try c.encode(runs, forKey: .done)
        try c.encode(running, forKey: .running)
        try c.encode(requeued, forKey: .requeued)
        try c.encode(cursor, forKey: .cursor)
        try c.encode(attempts, forKey: .attempts)
        try c.encode(durations, forKey: .durations)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cells = try c.decode(Int.self, forKey: .cells)
        shards = try c.decode(Int.self, forKey: .shards)
        running = try c.decode([Int: [Run]].self, forKey: .running)
        requeued = try c.decode([Int].self, forKey: .requeued)
        cursor = try c.decode(Int.self, forKey: .cursor)
        attempts = try c.decode([Int: Int].self, forKey: .attempts)
        durations = try c.decode([Double].self, forKey: .durations)
        // Runs `[first, last]`; a plain list of units (the first form of this record) reads too.
        let runs: [[Int]]
        if let decoded = try? c.decode([[Int]].self, forKey: .done) {
            runs = decoded
        } else {
            runs = try c.decode([Int].self, forKey: .done).map { [$0, $0] }
        }
        for run in runs where run.count == 2 && run[0] <= run[1] {
            for unit in run[0]...run[1] { markDone(unit) }
        }
    }

    /// Units in all.
    public var units: Int { cells * shards }

    /// Whether every unit is done.
    public var isComplete: Bool { done.count >= units }

    /// Whether a unit waits to be dispatched.
    public var hasPending: Bool { !requeued.isEmpty || cursor < units }

    /// Takes the next unit to dispatch: a requeued one first, else the next fresh one.
    public mutating func takePending() -> Int? {
        while !requeued.isEmpty {
            let unit = requeued.removeFirst()
            if !done.contains(unit) && running[unit] == nil { return unit }
        }
        guard cursor < units else { return nil }
        defer { cursor += 1 }
        return cursor
    }

    /// Puts a unit back in the queue (its last run is gone).
    public mutating func requeue(_ unit: Int) {
        guard !done.contains(unit), running[unit] == nil, !requeued.contains(unit) else { return }
        let at = requeued.firstIndex { $0 > unit } ?? requeued.count
        requeued.insert(unit, at: at)
    }

    /// The task id of a unit: `cell-17`, or `cell-17.2` for shard 2 when cells are split.
    public func task(_ unit: Int) -> TaskID {
        shards == 1 ? TaskID(rawValue: "cell-\(unit)") : TaskID(rawValue: "cell-\(unit / shards).\(unit % shards)")
    }

    /// The unit a task id names, if it is one of this sweep's.
    public func unit(_ task: TaskID) -> Int? {
        let text = task.rawValue
        guard text.hasPrefix("cell-") else { return nil }
        let parts = text.dropFirst(5).split(separator: ".", omittingEmptySubsequences: false)
        guard let cell = Int(parts[0]), (0..<cells).contains(cell) else { return nil }
        if shards == 1 { return parts.count == 1 ? cell : nil }
        guard parts.count == 2, let shard = Int(parts[1]), (0..<shards).contains(shard) else { return nil }
        return cell * shards + shard
    }

    /// The protocol's description of a unit.
    public func cell(_ unit: Int) -> EvaluationCell {
        EvaluationCell(index: unit / shards, shard: unit % shards, shardCount: shards)
    }

    /// The median of the finished units' durations, once there are some.
    public var medianDuration: Double? {
        guard !durations.isEmpty else { return nil }
        let sorted = durations.sorted()
        return sorted[sorted.count / 2]
    }

    /// Cells done (every shard), being computed (some shard running), and waiting, for `fluxctl status`.
    public var cellCounts: (done: Int, running: Int, pending: Int) {
        let busy = Set(running.keys.map { $0 / shards }).count
        return (cellsDone, busy, cells - cellsDone - busy)
    }

    /// Seconds to the end at the median pace so far with `parallel` workers; nil before a unit finished.
    public func eta(parallel: Int) -> Double? {
        guard let median = medianDuration else { return nil }
        let left = units - done.count
        return Double(left) * median / Double(max(parallel, 1))
    }
}
