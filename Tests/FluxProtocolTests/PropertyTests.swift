import Foundation
import FluxProtocol
import PropertyBased
import Testing

/// Property tests with swift-property-based: random messages and ring headers round-trip; random and mutated
/// bytes never crash the decoders, and whatever they accept re-encodes to the same thing.
@Suite struct PropertyTests {
    let codec = MessageCodec()

    /// Random values drawn from one seed, so a failure's `.fixedSeed(…)` reproduces the whole input.
    static func seeded<T>(_ make: @escaping @Sendable (inout SplitMix) -> T) -> Generator<T, Shrink.None<T>> {
        Generator { rng in
            var source = SplitMix(seed: rng.next())
            return make(&source)
        }
    }

    @Test func roundTrip_randomMessages_decodeToTheSameMessage() async {
        await propertyCheck(count: 400, input: Self.seeded { RandomMessage.make(using: &$0) }) { message throws in
            let frames = codec.encode(message)
            #expect(try codec.decode(frames: frames) == message)
        }
    }

    @Test func roundTrip_randomRingHeaders_decodeToTheSameHeader() async {
        await propertyCheck(count: 1000, input: Self.seeded { RandomMessage.ringHeader(using: &$0) }) { header throws in
            let payload = Data(count: header.payloadByteCount)
            #expect(try RingFrameHeader.decode(header: header.encoded, payload: payload) == header)
            #expect(try RingFrameHeader.decode(frame: header.encoded + payload).header == header)
        }
    }

    @Test func decode_randomFrames_decodeOrThrowProtocolError() async {
        let frames = Self.seeded { rng -> [Data] in
            (0..<Int.random(in: 0...3, using: &rng)).map { _ in RandomMessage.bytes(using: &rng) }
        }
        await propertyCheck(count: 500, input: frames) { frames throws in
            // Typed throws: anything thrown is a ProtocolError. Whatever decodes must re-encode stably.
            if let message = try? codec.decode(frames: frames) {
                #expect(try codec.decode(frames: codec.encode(message)) == message)
            }
        }
    }

    @Test func decode_mutatedMessages_decodeOrThrowProtocolError() async {
        let mutated = Self.seeded { rng -> [Data] in
            var frames = MessageCodec().encode(RandomMessage.make(using: &rng))
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let index = Int.random(in: 0..<frames.count, using: &rng)
                frames[index] = RandomMessage.mutate(frames[index], using: &rng)
            }
            if Bool.random(using: &rng), frames.count > 1 { frames.removeLast() }
            return frames
        }
        await propertyCheck(count: 500, input: mutated) { frames throws in
            if let message = try? codec.decode(frames: frames) {
                #expect(try codec.decode(frames: codec.encode(message)) == message)
            }
        }
    }

    @Test func decode_randomRingBytes_decodeCanonicallyOrThrow() async {
        let inputs = Self.seeded { rng -> Data in
            // Half the inputs start from a valid header so that decoding gets past the magic.
            var data = Bool.random(using: &rng)
                ? RandomMessage.ringHeader(using: &rng).encoded : RandomMessage.bytes(using: &rng, maxCount: 80)
            for _ in 0..<Int.random(in: 0...2, using: &rng) { data = RandomMessage.mutate(data, using: &rng) }
            return data
        }
        await propertyCheck(count: 1000, input: inputs) { data throws in
            if let header = try? RingFrameHeader(decoding: data) {
                // Reserved bytes must be zero, so an accepted header has exactly one encoding.
                #expect(header.encoded == data.prefix(RingFrameHeader.byteCount))
            }
        }
    }
}

/// SplitMix64: a small seeded generator for test inputs.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random, valid messages of every type, with strings full of JSON's special characters.
enum RandomMessage {
    static func make(using rng: inout SplitMix) -> Message {
        let type = MessageType.allCases.randomElement(using: &rng)!
        return make(type, using: &rng)
    }

    static func make(_ type: MessageType, using r: inout SplitMix) -> Message {
        switch type {
        case .register:
            return .register(Register(
                workerID: WorkerID(string(&r, min: 1)), dataEndpoint: string(&r, min: 1),
                publicKey: optional(&r) { string(&$0) },
                cores: Int.random(in: 1...Int.max, using: &r), version: string(&r),
                runningTask: optional(&r) { taskRef(&$0) }))
        case .registered:
            return .registered(Registered(
                workerID: WorkerID(string(&r)), heartbeatIntervalMS: Int.random(in: 1...100_000, using: &r),
                heartbeatMisses: Int.random(in: 1...10, using: &r), coordinatorVersion: string(&r)))
        case .rejected:
            return .rejected(Rejected(code: ErrorCode(rawValue: string(&r)), message: string(&r)))
        case .heartbeat:
            return .heartbeat(Heartbeat(sequence: r.next()))
        case .assign:
            let kind = TaskKind.allCases.randomElement(using: &r)!
            var cell: EvaluationCell?
            if kind == .evaluationCell {
                let count = Int.random(in: 1...64, using: &r)
                cell = EvaluationCell(index: Int.random(in: 0...Int.max, using: &r),
                                      shard: Int.random(in: 0..<count, using: &r), shardCount: count)
            }
            return .assign(Assign(job: job(&r), task: task(&r), kind: kind, specYAML: string(&r, max: 400), cell: cell))
        case .stopTask:
            return .stopTask(StopTask(job: job(&r), task: task(&r), reason: string(&r)))
        case .ringFormed:
            let world = Int.random(in: 1...1024, using: &r)
            let security = RingSecurity.allCases.randomElement(using: &r)!
            func peer(_ r: inout SplitMix) -> RingPeer {
                RingPeer(workerID: WorkerID(string(&r)), endpoint: string(&r),
                         publicKey: security == .curve ? string(&r) : optional(&r) { string(&$0) })
            }
            return .ringFormed(RingFormed(
                job: job(&r), generation: r.next(), rank: Int.random(in: 0..<world, using: &r), worldSize: world,
                left: peer(&r), right: peer(&r), ringSecurity: security,
                resumeStep: Int.random(in: 0...Int.max, using: &r)))
        case .commit:
            return .commit(Commit(job: job(&r), generation: r.next(), rank: Int.random(in: 0...1024, using: &r),
                                  step: Int.random(in: 0...Int.max, using: &r)))
        case .checkpoint:
            let names = Set((0..<Int.random(in: 0...4, using: &r)).map { _ in fileName(&r) })
            return .checkpoint(CheckpointTransfer(
                job: job(&r), generation: r.next(), step: Int.random(in: 0...Int.max, using: &r),
                files: names.sorted().map { CheckpointFile(name: $0, contents: bytes(using: &r)) }))
        case .checkpointSaved:
            return .checkpointSaved(CheckpointSaved(job: job(&r), step: Int.random(in: 0...Int.max, using: &r)))
        case .progress:
            return .progress(ProgressReport(
                job: job(&r), task: task(&r), done: Int.random(in: 0...Int.max, using: &r),
                total: Int.random(in: 0...Int.max, using: &r), loss: optional(&r) { double(&$0) },
                rate: optional(&r) { double(&$0) }, generation: optional(&r) { $0.next() }))
        case .taskFinished:
            let tensors = (0..<Int.random(in: 0...3, using: &r)).map { _ in
                let shape = (0..<Int.random(in: 0...3, using: &r)).map { _ in Int.random(in: 0...5, using: &r) }
                let scalars = (0..<shape.reduce(1, *)).map { _ in
                    Float(bitPattern: UInt32.random(in: .min ... .max, using: &r))
                }
                return NamedTensor(name: string(&r), shape: shape, scalars: scalars)
            }
            return .taskFinished(TaskFinished(job: job(&r), task: task(&r), metrics: metrics(&r), tensors: tensors))
        case .taskFailed:
            return .taskFailed(TaskFailed(job: job(&r), task: task(&r), reason: string(&r),
                                          retryable: Bool.random(using: &r)))
        case .submit:
            return .submit(Submit(specYAML: string(&r, max: 400)))
        case .submitted:
            return .submitted(Submitted(job: job(&r)))
        case .status:
            return .status(StatusRequest(job: optional(&r) { job(&$0) }))
        case .statusReply:
            return .statusReply(StatusReply(jobs: list(&r) { r in
                JobStatus(job: job(&r), name: string(&r), kind: JobKind.allCases.randomElement(using: &r)!,
                          state: JobState(rawValue: string(&r)), generation: optional(&r) { $0.next() },
                          workers: int(&r), done: int(&r), total: int(&r), message: optional(&r) { string(&$0) },
                          recoveries: optional(&r) { int(&$0) }, recoveryP50: optional(&r) { double(&$0) },
                          recoveryP95: optional(&r) { double(&$0) })
            }))
        case .logs:
            return .logs(LogsRequest(job: job(&r), after: r.next(), limit: Int.random(in: 1...Int.max, using: &r)))
        case .logsReply:
            return .logsReply(LogsReply(job: job(&r), lines: list(&r) { r in
                LogLine(id: r.next(), timeMS: Int64.random(in: .min ... .max, using: &r), level: string(&r),
                        text: string(&r))
            }, next: r.next()))
        case .cancel:
            return .cancel(CancelRequest(job: job(&r)))
        case .cancelled:
            return .cancelled(Cancelled(job: job(&r), state: JobState(rawValue: string(&r))))
        case .workers:
            return .workers(WorkersRequest())
        case .workersReply:
            return .workersReply(WorkersReply(workers: list(&r) { r in
                WorkerInfo(workerID: WorkerID(string(&r)), dataEndpoint: string(&r), cores: int(&r),
                           version: string(&r),
                           state: WorkerState(rawValue: string(&r)), task: optional(&r) { taskRef(&$0) },
                           lastSeenMS: Int64.random(in: .min ... .max, using: &r))
            }))
        case .ringBroken:
            return .ringBroken(RingBroken(job: job(&r), generation: r.next(), rank: Int.random(in: 0...1024, using: &r),
                                          suspect: optional(&r) { WorkerID(string(&$0)) },
                                          disconnected: Bool.random(using: &r), reason: string(&r)))
        case .leave:
            return .leave(Leave(job: job(&r), step: Int.random(in: 0...Int.max, using: &r)))
        case .log:
            return .log(JobLog(job: job(&r), level: string(&r), text: string(&r)))
        case .events:
            return .events(EventsRequest(job: job(&r)))
        case .eventsReply:
            return .eventsReply(EventsReply(job: job(&r), events: list(&r) { r in
                JobEvent(id: r.next(), timeMS: Int64.random(in: .min ... .max, using: &r), kind: string(&r),
                         worker: optional(&r) { WorkerID(string(&$0)) }, text: string(&r))
            }))
        case .checkpoints:
            return .checkpoints(CheckpointsRequest(job: job(&r)))
        case .stepHashes:
            return .stepHashes(StepHashes(job: job(&r), generation: r.next(), hashes: list(&r) { r in
                StepHash(step: Int.random(in: 1...Int.max, using: &r), sha256: digest(&r),
                         timeMS: Int64.random(in: .min ... .max, using: &r))
            }))
        case .hashes:
            return .hashes(HashesRequest(job: job(&r)))
        case .hashesReply:
            return .hashesReply(HashesReply(job: job(&r), hashes: list(&r) { r in
                StepHash(step: Int.random(in: 1...Int.max, using: &r), sha256: digest(&r),
                         timeMS: Int64.random(in: .min ... .max, using: &r))
            }, mismatches: list(&r) { int(&$0) }))
        case .checkpointsReply:
            return .checkpointsReply(CheckpointsReply(job: job(&r), checkpoints: list(&r) { r in
                CheckpointInfo(step: int(&r), path: string(&r), timeMS: Int64.random(in: .min ... .max, using: &r))
            }))
        case .results:
            return .results(ResultsRequest(job: job(&r)))
        case .resultsReply:
            return .resultsReply(ResultsReply(job: job(&r), rows: list(&r) {
                ResultRow(cell: string(&$0), metrics: metrics(&$0))
            }, report: optional(&r) { Data(string(&$0).utf8) }))
        case .error:
            return .error(ErrorReply(code: ErrorCode(rawValue: string(&r)), message: string(&r),
                                     inReplyTo: optional(&r) { string(&$0) }))
        }
    }

    static func ringHeader(using r: inout SplitMix) -> RingFrameHeader {
        let operation = RingFrameHeader.Operation.allCases.randomElement(using: &r)!
        let count = operation == .barrier ? 0 : UInt64.random(in: 0...256, using: &r)
        return RingFrameHeader(
            operation: operation, elementKind: RingFrameHeader.ElementKind.allCases.randomElement(using: &r)!,
            jobTag: r.next(), generation: r.next(), sequence: r.next(),
            step: UInt32.random(in: .min ... .max, using: &r), chunk: UInt32.random(in: .min ... .max, using: &r),
            senderRank: UInt32.random(in: .min ... .max, using: &r),
            elementOffset: UInt64.random(in: 0...(UInt64.max - count), using: &r), elementCount: count)
    }

    /// Random bytes, biased towards JSON's and the ring header's own characters.
    static func bytes(using r: inout SplitMix, maxCount: Int = 120) -> Data {
        let alphabet = Array(#"{}[]":,0123456789.-e"vtypeFXRG\ "#.utf8) + [0, 0xFF, 0x01]
        return Data((0..<Int.random(in: 0...maxCount, using: &r)).map { _ in
            Bool.random(using: &r) ? alphabet.randomElement(using: &r)! : UInt8.random(in: 0...255, using: &r)
        })
    }

    /// `data` with one random edit: a byte changed, inserted or removed, or the end cut off.
    static func mutate(_ data: Data, using r: inout SplitMix) -> Data {
        var bytes = [UInt8](data)
        switch Int.random(in: 0..<4, using: &r) {
        case 0 where !bytes.isEmpty:
            bytes[Int.random(in: 0..<bytes.count, using: &r)] = UInt8.random(in: 0...255, using: &r)
        case 1: bytes.insert(UInt8.random(in: 0...255, using: &r), at: Int.random(in: 0...bytes.count, using: &r))
        case 2 where !bytes.isEmpty: bytes.remove(at: Int.random(in: 0..<bytes.count, using: &r))
        default: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &r)))
        }
        return Data(bytes)
    }

    static let characters: [Character] = [
        "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1F}", "\u{7F}", "é", "✓", "🚀", "👩‍👩‍👧", "\u{2028}",
        "{", "}", ":", ",",
    ]

    static func string(_ r: inout SplitMix, min: Int = 0, max: Int = 24) -> String {
        String((0..<Int.random(in: min...max, using: &r)).map { _ in characters.randomElement(using: &r)! })
    }

    static func fileName(_ r: inout SplitMix) -> String {
        String((0..<Int.random(in: 1...12, using: &r)).map { _ in
            ["a", "b", "7", ".", "_", "-", "é"].randomElement(using: &r)! as Character
        }) + ".bin"
    }

    static func int(_ r: inout SplitMix) -> Int { Int.random(in: .min ... .max, using: &r) }

    /// A finite double: random bit patterns (subnormals, huge exponents, −0) and plain values.
    static func double(_ r: inout SplitMix) -> Double {
        if Bool.random(using: &r) { return Double.random(in: -1000...1000, using: &r) }
        while true {
            let value = Double(bitPattern: r.next())
            if value.isFinite { return value }
        }
    }

    static func metrics(_ r: inout SplitMix) -> [String: Double] {
        Dictionary((0..<Int.random(in: 0...4, using: &r)).map { _ in (string(&r), double(&r)) }) { a, _ in a }
    }

    static func job(_ r: inout SplitMix) -> JobID { JobID(string(&r)) }
    static func digest(_ r: inout SplitMix) -> String {
        String((0..<64).map { _ in Array("0123456789abcdef").randomElement(using: &r)! })
    }
    static func task(_ r: inout SplitMix) -> TaskID { TaskID(string(&r)) }
    static func taskRef(_ r: inout SplitMix) -> TaskRef { TaskRef(job: job(&r), task: task(&r)) }

    static func optional<T>(_ r: inout SplitMix, _ make: (inout SplitMix) -> T) -> T? {
        Bool.random(using: &r) ? make(&r) : nil
    }

    static func list<T>(_ r: inout SplitMix, _ make: (inout SplitMix) -> T) -> [T] {
        (0..<Int.random(in: 0...3, using: &r)).map { _ in make(&r) }
    }
}
