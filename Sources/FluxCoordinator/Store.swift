import Foundation
import FluxProtocol
import GRDB

/// The coordinator's durable state in SQLite (GRDB, WAL): jobs, events, log lines, checkpoints and known workers,
/// with versioned migrations. A restarted coordinator rebuilds its machine from here.
///
/// Contract: one coordinator per state dir (`StateDirectoryLock`); every write is a transaction, so a SIGKILL loses
/// at most the write in flight, never a submitted or finished job.
public final class Store: Sendable {
    private let database: DatabasePool

    /// Opens (creating and migrating) `DIR/coordinator.sqlite`.
    public init(path: String) throws(CoordinatorError) {
        do {
            var configuration = Configuration()
            configuration.busyMode = .timeout(5)
            // WAL with synchronous=NORMAL: a commit survives the death of the process (SIGKILL) without an fsync per
            // transaction; only a power loss can take the last few back (the coordinator's workers re-register).
            configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
            database = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(database)
        } catch {
            throw .store(path: path, reason: "\(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "jobs") { t in
                t.primaryKey("id", .text)
                t.column("sequence", .integer).notNull()
                t.column("state", .text).notNull()
                t.column("record", .blob).notNull()
                t.column("created_ms", .integer).notNull()
            }
            try db.create(table: "events") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("job", .text).notNull().indexed()
                t.column("time_ms", .integer).notNull()
                t.column("kind", .text).notNull()
                t.column("worker", .text)
                t.column("text", .text).notNull()
            }
            try db.create(table: "logs") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("job", .text).notNull().indexed()
                t.column("time_ms", .integer).notNull()
                t.column("level", .text).notNull()
                t.column("text", .text).notNull()
            }
            try db.create(table: "checkpoints") { t in
                t.column("job", .text).notNull()
                t.column("step", .integer).notNull()
                t.column("path", .text).notNull()
                t.column("time_ms", .integer).notNull()
                t.primaryKey(["job", "step"])
            }
            try db.create(table: "workers") { t in
                t.primaryKey("id", .text)
                t.column("public_key", .text)
                t.column("last_seen_ms", .integer).notNull()
            }
        }
        migrator.registerMigration("v2: worker rows") { db in
            try db.alter(table: "workers") { t in
                t.add(column: "data_endpoint", .text)
                t.add(column: "pid", .integer)
                t.add(column: "host", .text)
                t.add(column: "state", .text)
            }
        }
        migrator.registerMigration("v3: sweep cell results") { db in
            // One row per finished unit (a cell, or a shard of one): the primary key is what makes a finished unit
            // impossible to store twice.
            try db.create(table: "cell_results") { t in
                t.column("job", .text).notNull()
                t.column("unit", .integer).notNull()
                t.column("task", .text).notNull()
                t.column("worker", .text).notNull()
                t.column("time_ms", .integer).notNull()
                t.column("metrics", .blob).notNull()
                t.column("unreadable", .blob).notNull()
                t.column("tensors", .blob).notNull()
                t.column("data", .blob).notNull()
                t.primaryKey(["job", "unit"])
            }
        }
        migrator.registerMigration("v4: step hashes") { db in
            // Keyed by the hash too: a step reported again with other bits (a redone step that came out different)
            // is kept beside the first, which is the step's hash.
            try db.create(table: "step_hashes") { t in
                t.column("job", .text).notNull()
                t.column("step", .integer).notNull()
                t.column("sha256", .text).notNull()
                t.column("worker", .text).notNull()
                t.column("time_ms", .integer).notNull()
                t.primaryKey(["job", "step", "sha256"])
            }
        }
        return migrator
    }

    static func nowMS() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    private func write<T>(_ body: (Database) throws -> T) throws(CoordinatorError) -> T {
        do { return try database.write(body) } catch { throw .store(path: database.path, reason: "\(error)") }
    }

    /// One transaction for a batch of job rows and events (what one turn of the coordinator's loop produced).
    public func commit(
        jobs: [JobRecord], events: [(job: JobID, kind: String, worker: WorkerID?, text: String)],
        workers: [WorkerEntry] = [], results: [CellResultRow] = []
    ) throws(CoordinatorError) {
        guard !jobs.isEmpty || !events.isEmpty || !workers.isEmpty || !results.isEmpty else { return }
        let records: [(JobRecord, Data)]
        let encodedResults: [(CellResultRow, Data, Data, Data, Data)]
        do {
            records = try jobs.map { ($0, try JSONEncoder().encode($0)) }
            encodedResults = try results.map { row in
                let entries = row.result.tensors.map { TensorEntry(name: $0.name, shape: $0.shape) }
                return (row, try JSONEncoder().encode(row.result.metrics),
                        try JSONEncoder().encode(row.result.unreadable ?? []), try JSONEncoder().encode(entries),
                        row.result.tensors.reduce(into: Data()) { $0.append($1.data) })
            }
        } catch {
            throw .store(path: database.path, reason: "\(error)")
        }
        let now = Self.nowMS()
        try write { db in
            for (job, record) in records {
                try db.execute(
                    sql: """
                        INSERT INTO jobs (id, sequence, state, record, created_ms) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT(id) DO UPDATE SET state = excluded.state, record = excluded.record
                        """,
                    arguments: [job.id.rawValue, job.sequence, job.state.rawValue, record, now])
            }
            for (row, metrics, unreadable, entries, data) in encodedResults {
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO cell_results (job, unit, task, worker, time_ms, metrics, unreadable, tensors, data)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [row.result.job.rawValue, row.unit, row.result.task.rawValue, row.worker.rawValue, now,
                                metrics, unreadable, entries, data])
            }
            for event in events {
                try db.execute(sql: "INSERT INTO events (job, time_ms, kind, worker, text) VALUES (?, ?, ?, ?, ?)",
                               arguments: [event.job.rawValue, now, event.kind, event.worker?.rawValue, event.text])
            }
            for worker in workers {
                let state = !worker.alive ? "dead" : worker.leaving ? "leaving" : "alive"
                try db.execute(
                    sql: """
                        INSERT INTO workers (id, public_key, last_seen_ms, data_endpoint, pid, host, state)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT(id) DO UPDATE SET public_key = excluded.public_key,
                            last_seen_ms = excluded.last_seen_ms, data_endpoint = excluded.data_endpoint,
                            pid = excluded.pid, host = excluded.host, state = excluded.state
                        """,
                    arguments: [worker.id.rawValue, worker.publicKey, now, worker.dataEndpoint, worker.pid, worker.host,
                                state])
            }
        }
    }

    /// Stores rank 0's step hashes; returns each step that this call gave a second, different hash, with the first.
    public func addStepHashes(
        job: JobID, worker: WorkerID, hashes: [StepHash]
    ) throws(CoordinatorError) -> [(step: Int, first: String, reported: String)] {
        try write { db in
            var mismatches: [(Int, String, String)] = []
            for hash in hashes {
                try db.execute(
                    sql: "INSERT OR IGNORE INTO step_hashes (job, step, sha256, worker, time_ms) VALUES (?, ?, ?, ?, ?)",
                    arguments: [job.rawValue, hash.step, hash.sha256, worker.rawValue, hash.timeMS])
                guard db.changesCount > 0 else { continue }
                let first = try String.fetchOne(db, sql: """
                    SELECT sha256 FROM step_hashes WHERE job = ? AND step = ? ORDER BY rowid LIMIT 1
                    """, arguments: [job.rawValue, hash.step])
                if let first, first != hash.sha256 { mismatches.append((hash.step, first, hash.sha256)) }
            }
            return mismatches
        }
    }

    /// A job's step hashes: the first stored for each step, by step; and the steps that also got another one.
    public func stepHashes(job: JobID) throws(CoordinatorError) -> (hashes: [StepHash], mismatches: [Int]) {
        try read { db in
            var hashes: [StepHash] = []
            var mismatches: [Int] = []
            let rows = try Row.fetchAll(db, sql: """
                SELECT step, sha256, time_ms FROM step_hashes WHERE job = ? ORDER BY step, rowid
                """, arguments: [job.rawValue])
            for row in rows {
                let step: Int = row["step"]
                if hashes.last?.step == step {
                    if mismatches.last != step { mismatches.append(step) }
                    continue
                }
                hashes.append(StepHash(step: step, sha256: row["sha256"], timeMS: row["time_ms"]))
            }
            return (hashes, mismatches)
        }
    }

    /// The workers ever registered: id, state (`alive`, `dead`, `leaving`), pid and host as last seen.
    public func workerRows() throws(CoordinatorError) -> [(id: WorkerID, state: String, pid: Int?, host: String?)] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT id, state, pid, host FROM workers ORDER BY id").map {
                (WorkerID(rawValue: $0["id"]), $0["state"] ?? "?", $0["pid"], $0["host"])
            }
        }
    }

    private func read<T>(_ body: (Database) throws -> T) throws(CoordinatorError) -> T {
        do { return try database.read(body) } catch { throw .store(path: database.path, reason: "\(error)") }
    }

    /// Every job, in submission order.
    public func jobs() throws(CoordinatorError) -> [JobRecord] {
        let rows = try read { db in try Data.fetchAll(db, sql: "SELECT record FROM jobs ORDER BY sequence") }
        do {
            return try rows.map { try JSONDecoder().decode(JobRecord.self, from: $0) }
        } catch {
            throw .store(path: database.path, reason: "a job record does not decode: \(error)")
        }
    }

    /// Appends an event.
    public func appendEvent(job: JobID, kind: String, worker: WorkerID?, text: String) throws(CoordinatorError) {
        try write { db in
            try db.execute(sql: "INSERT INTO events (job, time_ms, kind, worker, text) VALUES (?, ?, ?, ?, ?)",
                           arguments: [job.rawValue, Self.nowMS(), kind, worker?.rawValue, text])
        }
    }

    /// A job's events, oldest first.
    public func events(job: JobID) throws(CoordinatorError) -> [JobEvent] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM events WHERE job = ? ORDER BY id", arguments: [job.rawValue]).map {
                JobEvent(id: UInt64($0["id"] as Int64), timeMS: $0["time_ms"], kind: $0["kind"],
                         worker: ($0["worker"] as String?).map(WorkerID.init(rawValue:)), text: $0["text"])
            }
        }
    }

    /// Appends a log line.
    public func appendLog(job: JobID, level: String, text: String) throws(CoordinatorError) {
        try write { db in
            try db.execute(sql: "INSERT INTO logs (job, time_ms, level, text) VALUES (?, ?, ?, ?)",
                           arguments: [job.rawValue, Self.nowMS(), level, text])
        }
    }

    /// A job's log lines after `after`, at most `limit`.
    public func logs(job: JobID, after: UInt64, limit: Int) throws(CoordinatorError) -> [LogLine] {
        try read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM logs WHERE job = ? AND id > ? ORDER BY id LIMIT ?",
                arguments: [job.rawValue, Int64(clamping: after), limit]
            ).map { LogLine(id: UInt64($0["id"] as Int64), timeMS: $0["time_ms"], level: $0["level"], text: $0["text"]) }
        }
    }

    /// Records a stored checkpoint.
    public func addCheckpoint(job: JobID, step: Int, path: String) throws(CoordinatorError) {
        try write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO checkpoints (job, step, path, time_ms) VALUES (?, ?, ?, ?)",
                           arguments: [job.rawValue, step, path, Self.nowMS()])
        }
    }

    /// A job's checkpoints, oldest first.
    public func checkpoints(job: JobID) throws(CoordinatorError) -> [CheckpointInfo] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM checkpoints WHERE job = ? ORDER BY step", arguments: [job.rawValue])
                .map { CheckpointInfo(step: $0["step"], path: $0["path"], timeMS: $0["time_ms"]) }
        }
    }

    /// A sweep's stored unit results, by unit.
    public func cellResults(job: JobID) throws(CoordinatorError) -> [CellResultRow] {
        let rows = try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM cell_results WHERE job = ? ORDER BY unit", arguments: [job.rawValue])
        }
        do {
            return try rows.map { row in
                let entries = try JSONDecoder().decode([TensorEntry].self, from: row["tensors"] as Data)
                let data: Data = row["data"]
                var offset = 0
                var tensors: [NamedTensor] = []
                for entry in entries {
                    let bytes = entry.shape.reduce(4, *)
                    guard offset + bytes <= data.count else { throw CoordinatorError.store(path: database.path, reason: "short tensor data") }
                    tensors.append(NamedTensor(name: entry.name, shape: entry.shape, data: data.subdata(in: offset..<offset + bytes)))
                    offset += bytes
                }
                let finished = TaskFinished(
                    job: job, task: TaskID(rawValue: row["task"]),
                    metrics: try JSONDecoder().decode([String: Double].self, from: row["metrics"] as Data),
                    tensors: tensors,
                    unreadable: try JSONDecoder().decode([UnreadableVideoReport].self, from: row["unreadable"] as Data))
                return CellResultRow(unit: row["unit"], worker: WorkerID(rawValue: row["worker"]), result: finished)
            }
        } catch {
            throw .store(path: database.path, reason: "a cell result of \(job) does not decode: \(error)")
        }
    }

    /// How many results are stored for each unit of a sweep (1 each, by the primary key; for tests and audits).
    public func cellResultCount(job: JobID) throws(CoordinatorError) -> Int {
        try read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM cell_results WHERE job = ?", arguments: [job.rawValue]) ?? 0
        }
    }
}

/// One stored unit of a sweep: which, who computed it, and its `task_finished` (scores as tensors).
public struct CellResultRow: Sendable, Equatable {
    public var unit: Int
    public var worker: WorkerID
    public var result: TaskFinished

    public init(unit: Int, worker: WorkerID, result: TaskFinished) {
        self.unit = unit
        self.worker = worker
        self.result = result
    }
}

private struct TensorEntry: Codable {
    var name: String
    var shape: [Int]
}
