import Foundation
import FluxProtocol

/// One explicit example of every message type, with optional fields both set and unset across the examples.
enum Samples {
    static let key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
    static let spec = """
        name: k400-small
        kind: training
        workers: {min: 2, max: 4}
        model: configs/models/fluxvit-small.yaml
        note: "quotes \\" and unicode ✓ and a tab\\t"

        """
    static let left = RingPeer(workerID: "w-a", endpoint: "tcp://10.0.0.5:7410", publicKey: key)
    static let right = RingPeer(workerID: "w-c", endpoint: "tcp://10.0.0.7:7410", publicKey: key)

    static let checkpoint = CheckpointTransfer(
        job: "j-000042", generation: 3, step: 1200,
        files: [
            CheckpointFile(name: "model.safetensors", contents: Data((0..<97).map { UInt8($0) })),
            CheckpointFile(name: "state.json", contents: Data("{\"step\":1200}".utf8)),
            CheckpointFile(name: "empty.bin", contents: Data()),
        ])

    static let finished = TaskFinished(
        job: "j-000043", task: "cell-17", metrics: ["accuracy": 0.8125, "gflops": 71.5],
        tensors: [
            NamedTensor(name: "scores", shape: [2, 3], scalars: [0.5, -1, .pi, 1e-30, -0.0, 3e38]),
            NamedTensor(name: "empty", shape: [0, 4], scalars: []),
        ])

    static let all: [Message] = [
        .ringBroken(RingBroken(job: "j-000042", generation: 3, rank: 1, suspect: "w-a", disconnected: true,
                               reason: "left neighbour's connection closed")),
        .ringBroken(RingBroken(job: "j-000042", generation: 4, rank: 0, disconnected: false, reason: "timeout")),
        .leave(Leave(job: "j-000042", step: 40)),
        .stepHashes(StepHashes(job: "j-000042", generation: 4, hashes: [
            StepHash(step: 11, sha256: String(repeating: "0f", count: 32), timeMS: 1_700_000_000_000),
            StepHash(step: 12, sha256: String(repeating: "e3", count: 32), timeMS: 1_700_000_000_250),
        ])),
        .hashes(HashesRequest(job: "j-000042")),
        .hashesReply(HashesReply(job: "j-000042", hashes: [
            StepHash(step: 1, sha256: String(repeating: "ab", count: 32), timeMS: 1_700_000_000_000),
        ], mismatches: [7])),
        .log(JobLog(job: "j-000042", level: "warning", text: "2 unreadable videos skipped")),
        .events(EventsRequest(job: "j-000042")),
        .eventsReply(EventsReply(job: "j-000042", events: [
            JobEvent(id: 7, timeMS: 1_700_000_000_000, kind: "worker_lost", worker: "w-a", text: "w-a lost"),
            JobEvent(id: 8, timeMS: 1_700_000_000_500, kind: "generation", text: "generation 4: 2 ranks"),
        ])),
        .checkpoints(CheckpointsRequest(job: "j-000042")),
        .checkpointsReply(CheckpointsReply(job: "j-000042", checkpoints: [
            CheckpointInfo(step: 20, path: "/state/jobs/j-000042/checkpoints/step-000000020", timeMS: 1_700_000_000_000),
        ])),
        .register(Register(workerID: "w-d", dataEndpoint: "ipc:///tmp/w-d", cores: 2, version: "0.3.0",
                           runningTask: TaskRef(job: "j-000042", task: "rank"), pid: 4242, host: "node-3",
                           committedStep: 40)),
        .register(Register(workerID: "w-b", dataEndpoint: "tcp://10.0.0.6:7410", publicKey: key, cores: 2,
                           version: "0.3.0", runningTask: TaskRef(job: "j-000042", task: "rank"))),
        .register(Register(workerID: "w-b", dataEndpoint: "tcp://127.0.0.1:7410", cores: 8, version: "0.3.0")),
        .registered(Registered(workerID: "w-b", coordinatorVersion: "0.3.0")),
        .rejected(Rejected(code: .unauthorized, message: "public key not in workers.allow")),
        .heartbeat(Heartbeat(sequence: 0)),
        .heartbeat(Heartbeat(sequence: .max)),
        .assign(Assign(job: "j-000042", task: "rank", kind: .trainingRank, specYAML: spec)),
        .assign(Assign(job: "j-000043", task: "cell-17", kind: .evaluationCell, specYAML: spec,
                       cell: EvaluationCell(index: 17, shard: 1, shardCount: 2))),
        .stopTask(StopTask(job: "j-000042", task: "rank", reason: "job cancelled")),
        .ringFormed(RingFormed(job: "j-000042", generation: 3, rank: 1, worldSize: 3, left: left, right: right,
                               resumeStep: 1200)),
        .ringFormed(RingFormed(job: "j-000042", generation: 4, rank: 0, worldSize: 1,
                               left: RingPeer(workerID: "w-b", endpoint: "tcp://127.0.0.1:7410"),
                               right: RingPeer(workerID: "w-b", endpoint: "tcp://127.0.0.1:7410"),
                               ringSecurity: .none, resumeStep: 0)),
        .commit(Commit(job: "j-000042", generation: 3, rank: 1, step: 1250)),
        .checkpoint(checkpoint),
        .checkpoint(CheckpointTransfer(job: "j-000042", generation: 1, step: 0, files: [])),
        .checkpointSaved(CheckpointSaved(job: "j-000042", step: 1200)),
        .progress(ProgressReport(job: "j-000042", task: "rank", done: 1201, total: 10000, loss: 2.75, rate: 1.5)),
        .progress(ProgressReport(job: "j-000043", task: "cell-17", done: 3, total: 0)),
        .taskFinished(finished),
        .taskFinished(TaskFinished(job: "j-000042", task: "rank")),
        .taskFinished(TaskFinished(
            job: "j-000045", task: "cell-3", metrics: ["videos": 2],
            tensors: [NamedTensor(name: "eval.probabilities", shape: [1, 2], scalars: [0.25, 0.75])],
            unreadable: [UnreadableVideoReport(split: "eval", index: 1, path: "v/b.mp4", line: 3, reason: "no stream")])),
        .taskFailed(TaskFailed(job: "j-000043", task: "cell-17", reason: "cannot open video 'a.mp4'",
                               retryable: false)),
        .submit(Submit(specYAML: spec)),
        .submitted(Submitted(job: "j-000042")),
        .status(StatusRequest()),
        .status(StatusRequest(job: "j-000042")),
        .statusReply(StatusReply(jobs: [
            JobStatus(job: "j-000042", name: "k400-small", kind: .training, state: .running, generation: 3,
                      workers: 3, done: 1201, total: 10000, message: "generation 3 formed"),
            JobStatus(job: "j-000043", name: "to-sweep", kind: .sweep, state: "paused-by-a-newer-coordinator",
                      workers: 0, done: 0, total: 0),
        ])),
        .logs(LogsRequest(job: "j-000042", after: 17, limit: 50)),
        .logsReply(LogsReply(job: "j-000042", lines: [
            LogLine(id: 18, timeMS: 1_764_000_000_123, level: "info", text: "rank 2 lost; rolling back to step 1200"),
        ], next: 18)),
        .cancel(CancelRequest(job: "j-000042")),
        .cancelled(Cancelled(job: "j-000042")),
        .workers(WorkersRequest()),
        .workersReply(WorkersReply(workers: [
            WorkerInfo(workerID: "w-a", dataEndpoint: "tcp://10.0.0.5:7410", cores: 2, version: "0.3.0", state: .busy,
                       task: TaskRef(job: "j-000042", task: "rank"), lastSeenMS: 250),
            WorkerInfo(workerID: "w-d", dataEndpoint: "tcp://10.0.0.8:7410", cores: 4, version: "0.3.0", state: .idle,
                       lastSeenMS: 0),
        ])),
        .results(ResultsRequest(job: "j-000043")),
        .resultsReply(ResultsReply(job: "j-000043", rows: [
            ResultRow(cell: "budget=1024 frames=8 size=224 method=flux view=center", metrics: ["accuracy": 0.75]),
        ])),
        .resultsReply(ResultsReply(job: "j-000044", rows: [], report: Data(#"{"name":"to"}"#.utf8))),
        .error(ErrorReply(code: .notFound, message: "no job 'j-9'", inReplyTo: "status")),
        .error(ErrorReply(code: "a_newer_code", message: "something")),
    ]
}
