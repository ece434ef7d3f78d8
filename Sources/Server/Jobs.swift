import Foundation
import ServiceLifecycle
import VectorDB

#if canImport(Glibc)
  import Glibc
#endif

/// A long operation (training, re-embedding, a model switch that may re-embed) run by
/// the server as a child `vdb` process, so a request only starts it: the child commits
/// its work batch by batch, exactly as the same shell command would, and its `--json`
/// output becomes the job's result.
public struct JobInfo: Encodable, Sendable {
  public enum State: String, Encodable, Sendable {
    case running, succeeded, failed, cancelled
  }

  public var id: Int
  /// `train`, `reembed`, `activate`, `rollback` (a collection's) or `route-train` (a
  /// router's).
  public var kind: String
  /// The collection it works on, or nil for a router's job.
  public var collection: String?
  /// The router it trains, or nil for a collection's job.
  public var router: String?
  public var state: State
  public var pid: Int32
  public var started: Date
  public var finished: Date?
  /// The child's exit code: 0, 1 (bad input), 2 (usage), 3 (database), 130 (cancelled).
  public var exitCode: Int32?
  /// The command's `--json` output, once it succeeded.
  public var result: JSONValue?
  /// Its `error:` line, when it failed.
  public var error: String?

  var target: JobRunner.Target {
    collection.map { .collection($0) } ?? .router(router ?? "")
  }
}

/// The server's jobs: started, watched, cancelled (SIGINT: the child commits what it
/// has and stops, resumable), and on shutdown interrupted and waited for.
actor JobRunner: Service {
  private let executable: String
  private let databasePath: String
  private let outputDirectory: String
  private var jobs: [Int: JobInfo] = [:]
  private var processes: [Int: Process] = [:]
  private var interrupted: Set<Int> = []
  private var nextID = 1

  init(executable: String, databasePath: String) throws {
    self.executable = executable
    self.databasePath = databasePath
    outputDirectory = NSTemporaryDirectory() + "vdb-serve-\(getpid())"
    try FileManager.default.createDirectory(
      atPath: outputDirectory, withIntermediateDirectories: true)
  }

  /// What a job works on: one job at a time per collection and per router.
  enum Target: Equatable {
    case collection(String)
    case router(String)

    /// By bytes, as storage compares names: Swift's == would take "e\u{301}" for "é".
    static func == (a: Target, b: Target) -> Bool {
      switch (a, b) {
      case (.collection(let a), .collection(let b)), (.router(let a), .router(let b)):
        return a.utf8.elementsEqual(b.utf8)
      default: return false
      }
    }
  }

  /// Fails when a job of this server works on `target`. The library sees a job only
  /// once its process has written its state, so a drop or rename sent right after the
  /// job was started would pass its check; this one closes that gap.
  ///
  /// - Throws: `VectorDBError.collectionBusy` (or 409 `job_running` for a router).
  func checkIdle(_ target: Target) throws {
    guard let running = jobs.values.first(where: { $0.target == target && $0.state == .running })
    else { return }
    let job = "server job \(running.id) (\(running.kind), process \(running.pid))"
    switch target {
    case .collection(let collection):
      throw VectorDBError.collectionBusy(name: collection, job: job)
    case .router(let router):
      throw APIError(
        status: .conflict, code: "job_running",
        message: "router \"\(router)\" is being trained by \(job)")
    }
  }

  /// Starts `vdb ARGUMENTS --db PATH --json` for `target`.
  ///
  /// - Throws: as ``checkIdle(_:)`` when a job of this server already works on the
  ///   target; `.storage`-class errors when the process cannot start.
  func start(kind: String, target: Target, arguments: [String]) throws -> JobInfo {
    try checkIdle(target)
    let id = nextID
    nextID += 1
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    // "--db=PATH", one argument: a path starting with "-" is not read as an option.
    process.arguments = arguments + ["--db=\(databasePath)", "--json"]
    // A file that cannot be created makes the FileHandle below throw.
    _ = FileManager.default.createFile(atPath: outputPath(id, "out"), contents: nil)
    _ = FileManager.default.createFile(atPath: outputPath(id, "err"), contents: nil)
    process.standardOutput = try FileHandle(
      forWritingTo: URL(fileURLWithPath: outputPath(id, "out")))
    process.standardError = try FileHandle(
      forWritingTo: URL(fileURLWithPath: outputPath(id, "err")))
    process.standardInput = FileHandle.nullDevice
    process.terminationHandler = { [weak self] process in
      // A process killed by a signal reports the signal's number: shown as the shell
      // does, 128 + N, so it cannot pass for an exit class (4 is not "input").
      let status =
        process.terminationReason == .uncaughtSignal
        ? 128 + process.terminationStatus : process.terminationStatus
      Task { await self?.finished(id, status: status) }
    }
    try JobRunner.launch(process)
    var job = JobInfo(
      id: id, kind: kind, state: .running, pid: process.processIdentifier, started: Date())
    switch target {
    case .collection(let collection): job.collection = collection
    case .router(let router): job.router = router
    }
    jobs[id] = job
    processes[id] = process
    return job
  }

  /// Starts `process` from a thread of its own with no signal blocked. A child inherits
  /// the signal mask of the thread that spawns it, and NIO's and the task pool's threads
  /// block nearly every signal: a job started from one would never see its SIGINT.
  private static func launch(_ process: Process) throws {
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var failure: (any Error)?
    let thread = Thread {
      var none = sigset_t()
      sigemptyset(&none)
      pthread_sigmask(SIG_SETMASK, &none, nil)
      do { try process.run() } catch { failure = error }
      done.signal()
    }
    thread.start()
    done.wait()
    if let failure { throw failure }
  }

  func job(_ id: Int) throws -> JobInfo {
    guard let job = jobs[id] else { throw JobRunner.notFound(String(id)) }
    return job
  }

  /// 404 `job_not_found` for job `id` as the request gave it.
  static func notFound(_ id: String) -> APIError {
    APIError(status: .notFound, code: "job_not_found", message: "no job \(id)")
  }

  func list() -> [JobInfo] { jobs.values.sorted { $0.id < $1.id } }

  /// Asks a running job to stop (SIGINT, once): it commits what it has and exits.
  func cancel(_ id: Int) throws -> JobInfo {
    let job = try self.job(id)
    if job.state == .running, !interrupted.contains(id) {
      interrupted.insert(id)
      kill(job.pid, SIGINT)
    }
    return job
  }

  private func finished(_ id: Int, status: Int32) {
    guard var job = jobs[id] else { return }
    processes[id] = nil
    job.finished = Date()
    job.exitCode = status
    let output = (try? String(contentsOfFile: outputPath(id, "out"), encoding: .utf8)) ?? ""
    let errors = (try? String(contentsOfFile: outputPath(id, "err"), encoding: .utf8)) ?? ""
    if status == 0 {
      job.state = .succeeded
      job.result = try? JSONValue(parsing: output, source: "job output")
    } else {
      job.state = interrupted.contains(id) ? .cancelled : .failed
      job.error =
        errors.split(separator: "\n").last { $0.hasPrefix("error: ") }
        .map { String($0.dropFirst(7)) }
        ?? (status == 130 || interrupted.contains(id)
          ? "interrupted; work committed so far is kept"
          : status > 128
            ? "killed by signal \(status - 128)" : "exited with status \(status)")
    }
    try? FileManager.default.removeItem(atPath: outputPath(id, "out"))
    try? FileManager.default.removeItem(atPath: outputPath(id, "err"))
    jobs[id] = job
  }

  private func outputPath(_ id: Int, _ stream: String) -> String {
    "\(outputDirectory)/job-\(id).\(stream)"
  }

  /// Runs until the server shuts down; then interrupts the running jobs (each commits
  /// its work so far and can be resumed) and waits for them to exit.
  func run() async throws {
    try? await gracefulShutdown()
    for (id, job) in jobs where job.state == .running && !interrupted.contains(id) {
      interrupted.insert(id)
      kill(job.pid, SIGINT)
    }
    while jobs.values.contains(where: { $0.state == .running }) {
      try? await Task.sleep(nanoseconds: 50_000_000)
    }
    try? FileManager.default.removeItem(atPath: outputDirectory)
  }
}
