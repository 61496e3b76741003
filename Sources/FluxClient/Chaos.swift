import FluxProtocol

/// What `fluxctl chaos` does to a running job, and at which step.
public struct ChaosFault: Sendable, Equatable, CustomStringConvertible {
    /// The kinds of fault.
    public enum Kind: String, Sendable, CaseIterable {
        /// SIGKILL a worker of the job's ring.
        case killWorker = "kill-worker"
        /// Start one more worker (it joins at the next commit).
        case addWorker = "add-worker"
        /// SIGTERM a worker of the ring (it leaves at its next commit).
        case stopWorker = "stop-worker"
        /// SIGKILL the coordinator, then start it again on the same state dir.
        case killCoordinator = "kill-coordinator"
    }

    public var kind: Kind
    /// Injected once the job reports this many steps done.
    public var step: Int

    public init(_ kind: Kind, at step: Int) {
        self.kind = kind
        self.step = step
    }

    public var description: String { "\(kind.rawValue)@\(step)" }
}

/// The faults of a chaos run: given steps, or steps drawn from a seed (`random`), in the order they fire.
public struct ChaosPlan: Sendable, Equatable {
    /// A fault's step as the user gave it.
    public enum Step: Sendable, Equatable {
        case at(Int)
        case random
    }

    /// The faults, by step (ties keep the order given).
    public let faults: [ChaosFault]

    /// Resolves `requested` for a job of `totalSteps` steps on `workers` workers: a random step is drawn from `seed`,
    /// uniformly in 2…total−1 (a fault needs a step before it to recover from and one after it to recover to). Faults
    /// that would leave the job without a worker are refused.
    public init(
        _ requested: [(ChaosFault.Kind, Step)], totalSteps: Int, workers: Int, seed: UInt64
    ) throws(ChaosError) {
        var random = SplitMix64(seed: seed)
        var faults: [ChaosFault] = []
        for (kind, step) in requested {
            switch step {
            case let .at(value):
                guard (1..<totalSteps).contains(value) else {
                    throw .stepOutOfRange(fault: kind.rawValue, step: value, total: totalSteps)
                }
                faults.append(ChaosFault(kind, at: value))
            case .random:
                guard totalSteps >= 3 else { throw .stepOutOfRange(fault: kind.rawValue, step: 0, total: totalSteps) }
                faults.append(ChaosFault(kind, at: 2 + Int(random.next() % UInt64(totalSteps - 2))))
            }
        }
        self.faults = faults.enumerated().sorted { ($0.element.step, $0.offset) < ($1.element.step, $1.offset) }.map(\.element)
        var running = workers
        for fault in self.faults {
            switch fault.kind {
            case .addWorker: running += 1
            case .killWorker, .stopWorker: running -= 1
            case .killCoordinator: break
            }
            if running < 1 { throw .noWorkersLeft(fault: fault.description, workers: workers) }
        }
    }

    /// Workers the faults start.
    public var addedWorkers: Int { faults.filter { $0.kind == .addWorker }.count }
}

/// How two runs' step hashes compare over steps 1…total.
public struct HashComparison: Sendable, Equatable {
    /// The first step whose hashes differ, if any.
    public let firstDifference: Int?
    /// Steps without a hash in the undisturbed run, or in the faulted one.
    public let missingUndisturbed: [Int]
    public let missingFaulted: [Int]
    /// Steps that were reported again with other bits within a run (a redone step that came out different).
    public let redoneDifferently: [Int]
    /// Steps compared (present in both).
    public let compared: Int

    /// Compares `undisturbed` and `faulted` over steps 1…`totalSteps`.
    public init(undisturbed: HashesReply, faulted: HashesReply, totalSteps: Int) {
        let a = Dictionary(undisturbed.hashes.map { ($0.step, $0.sha256) }, uniquingKeysWith: { first, _ in first })
        let b = Dictionary(faulted.hashes.map { ($0.step, $0.sha256) }, uniquingKeysWith: { first, _ in first })
        let steps = Array(1...max(1, totalSteps))
        missingUndisturbed = steps.filter { a[$0] == nil }
        missingFaulted = steps.filter { b[$0] == nil }
        let both = steps.filter { a[$0] != nil && b[$0] != nil }
        compared = both.count
        firstDifference = both.first { a[$0] != b[$0] }
        redoneDifferently = Array(Set(undisturbed.mismatches + faulted.mismatches)).sorted()
    }

    /// Every step has a hash in both runs, the same one, and no step was redone with other bits.
    public var matches: Bool {
        firstDifference == nil && missingUndisturbed.isEmpty && missingFaulted.isEmpty && redoneDifferently.isEmpty
    }

    /// One sentence: what matched, or the first thing that did not.
    public var verdict: String {
        if let step = firstDifference {
            return "hashes differ: the first differing step is \(step)"
        }
        if let step = missingFaulted.first {
            return "the faulted run has no hash for step \(step) (\(missingFaulted.count) step(s) missing)"
        }
        if let step = missingUndisturbed.first {
            return "the undisturbed run has no hash for step \(step) (\(missingUndisturbed.count) step(s) missing)"
        }
        if let step = redoneDifferently.first {
            return "step \(step) was redone with other bits after a rollback (\(redoneDifferently.count) step(s))"
        }
        return "all \(compared) steps match"
    }
}

/// Why a chaos run cannot be done.
public enum ChaosError: Error, CustomStringConvertible, Equatable {
    case stepOutOfRange(fault: String, step: Int, total: Int)
    case noVictim(fault: String, step: Int)
    case noWorkersLeft(fault: String, workers: Int)
    case runFailed(run: String, reason: String)

    public var description: String {
        switch self {
        case let .stepOutOfRange(fault, step, total):
            total < 3 && step == 0
                ? "--\(fault) random needs a job of at least 3 steps (it has \(total))"
                : "--\(fault) \(step): a fault's step must be 1…\(total - 1) (the job has \(total) steps)"
        case let .noVictim(fault, step):
            "--\(fault) at step \(step): no worker of the job's ring is running (were they all taken away?)"
        case let .noWorkersLeft(fault, workers):
            "\(fault) would leave the job without workers (it starts with \(workers); give more --workers)"
        case let .runFailed(run, reason): "the \(run) run failed: \(reason)"
        }
    }
}

/// SplitMix64: a small seeded generator for fault steps and victims (the same seed, the same chaos).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
