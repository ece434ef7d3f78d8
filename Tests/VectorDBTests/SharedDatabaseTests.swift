import Foundation
import XCTest

@testable import VectorDB

/// One `Database` shared by threads doing mixed work at once, as `vdb serve` shares it:
/// text queries that log, upserts and deletes, feedback, log reads, counts and gets, and
/// a router routing (logged) while outcomes are recorded. Run under ThreadSanitizer
/// (`swift test --sanitize=thread`) it looks for data races; everywhere it checks what
/// the threads did: counts, documents, and every log id handed out found in the log.
final class SharedDatabaseTests: XCTestCase {
  var path: String!

  override func setUpWithError() throws {
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
    path = NSTemporaryDirectory() + "vdb-shared-database-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  /// What the threads did, gathered under a lock.
  private final class Record: @unchecked Sendable {
    private let lock = NSLock()
    private var queries: [UInt64: String] = [:]
    private var feedback: [UInt64: String] = [:]
    private var decisions: [UInt64: (input: String, path: String)] = [:]
    private var outcomes: Set<UInt64> = []
    private var failures: [String] = []

    func query(_ id: UInt64, text: String) { lock.withLock { queries[id] = text } }
    func feedback(_ id: UInt64, document: String) { lock.withLock { feedback[id] = document } }
    func decision(_ id: UInt64, input: String, path: String) {
      lock.withLock { decisions[id] = (input, path) }
    }
    func outcome(_ id: UInt64) { lock.withLock { _ = outcomes.insert(id) } }
    func fail(_ message: String) { lock.withLock { failures.append(message) } }
    var all:
      (
        queries: [UInt64: String], feedback: [UInt64: String],
        decisions: [UInt64: (input: String, path: String)], outcomes: Set<UInt64>,
        failures: [String]
      )
    { lock.withLock { (queries, feedback, decisions, outcomes, failures) } }
  }

  static let seeds = [
    "LMDB is a memory-mapped B+tree key-value store with ACID transactions.",
    "HNSW builds a hierarchy of proximity graphs for nearest neighbour search.",
    "Bake the sponge cake for thirty minutes until golden.",
    "Green tea is brewed at eighty degrees for two minutes.",
  ]

  /// Four threads, each doing in turn a logged text query (with feedback on every other
  /// one), an upsert of its own document, a delete of its previous one, and reads (log
  /// entries, count, get): every query's id is in the log with its text and feedback,
  /// after a flush and after closing and reopening; the documents are those left.
  func testOneDatabaseSharedByReadersWritersAndTheLogWriter() throws {
    let done = try queryAndWriteConcurrently()  // the database is closed when it returns
    try checkLog(try Database(path: path), done)
  }

  /// Async tasks calling through `Database.run`: sixteen queries at once (more than the
  /// cooperative pool's threads, which `run` keeps free) get the results the same
  /// queries get one at a time, and an error thrown inside reaches the caller.
  func testAsyncCallsThroughRunGetWhatBlockingCallsGet() async throws {
    let db = try Database(path: path)
    try db.importModel(directory: DefaultModel.directory)
    let notes = try db.collection("notes")
    try notes.upsert(Self.seeds.enumerated().map { Document(id: "seed\($0)", text: $1) })
    let questions = (0..<16).map { ["a key-value store", "graph search", "cake", "tea"][$0 % 4] }
    let expected = try questions.map {
      try notes.query(text: $0, k: 2, log: false).hits.map(\.id)
    }
    let answers = try await withThrowingTaskGroup(of: (Int, [String]).self) { group in
      for (index, question) in questions.enumerated() {
        group.addTask {
          let ids = try await db.run { db in
            try db.collection("notes", create: false).query(text: question, k: 2, log: false)
              .hits.map(\.id)
          }
          return (index, ids)
        }
      }
      var answers = [[String]](repeating: [], count: questions.count)
      for try await (index, ids) in group { answers[index] = ids }
      return answers
    }
    XCTAssertEqual(answers, expected)
    XCTAssertEqual(answers[0].first, "seed0")
    do {
      _ = try await db.run { try $0.collection("missing", create: false) }
      XCTFail("a missing collection was found")
    } catch VectorDBError.collectionNotFound(let name) {
      XCTAssertEqual(name, "missing")
    }
  }

  private let threads = 4
  private let rounds = 12

  /// Runs the threads on one database and checks what they did; returns it.
  private func queryAndWriteConcurrently() throws -> Record {
    let (threads, rounds) = (self.threads, self.rounds)
    let db = try Database(path: path)
    try db.importModel(directory: DefaultModel.directory)
    let notes = try db.collection("notes")
    try notes.upsert(Self.seeds.enumerated().map { Document(id: "seed\($0)", text: $1) })
    let record = Record()
    DispatchQueue.concurrentPerform(iterations: threads) { thread in
      do {
        for round in 0..<rounds {
          let text = "thread \(thread) round \(round): how long to brew green tea"
          let result = try notes.query(text: text, k: 2)
          let logID = try XCTUnwrap(result.logID)
          record.query(logID, text: text)
          if round % 2 == 0, let hit = result.hits.first {
            let kind = try notes.feedback(logID: logID, documentID: hit.id)
            if kind != .click { record.fail("feedback on a shown hit recorded as \(kind)") }
            record.feedback(logID, document: hit.id)
          }
          try notes.upsert(
            Document(id: "t\(thread)-\(round)", text: "note \(round) of thread \(thread)"))
          if round > 0, try !notes.delete("t\(thread)-\(round - 1)") {
            record.fail("thread \(thread) found no t\(thread)-\(round - 1) to delete")
          }
          _ = try db.logEntries(collection: "notes", limit: 20)
          let count = try notes.count()
          if count < Self.seeds.count || count > Self.seeds.count + 2 * threads {
            record.fail("thread \(thread) counted \(count) documents")
          }
          if try notes.get("seed\(round % Self.seeds.count)") == nil {
            record.fail("thread \(thread) lost seed\(round % Self.seeds.count)")
          }
        }
      } catch {
        record.fail("thread \(thread): \(error)")
      }
    }
    XCTAssertEqual(record.all.failures, [])
    XCTAssertEqual(record.all.queries.count, threads * rounds, "every log id handed out once")
    try checkLog(db, record)
    XCTAssertEqual(try notes.count(), Self.seeds.count + threads)
    for thread in 0..<threads {
      XCTAssertNotNil(try notes.get("t\(thread)-\(rounds - 1)"))
      XCTAssertNil(try notes.get("t\(thread)-\(rounds - 2)"))
    }
    return record
  }

  /// Every query the threads made is in the log, with its text and feedback, and nothing else.
  private func checkLog(_ db: Database, _ record: Record) throws {
    let done = record.all
    let entries = try db.logEntries(limit: 10_000)
    XCTAssertEqual(entries.count, threads * rounds)
    XCTAssertEqual(Set(entries.map(\.id)), Set(done.queries.keys))
    for entry in entries {
      XCTAssertEqual(entry.text, done.queries[entry.id], "log id \(entry.id)")
      XCTAssertEqual(entry.feedback.map(\.documentID), done.feedback[entry.id].map { [$0] } ?? [])
    }
  }

  /// A router routes from four threads at once, logging each decision, while the same
  /// threads record an outcome for every other decision by its log id and log a labelled
  /// example: every decision is in the router's log, with its outcome when one was given.
  func testRouterRoutesAndRecordsOutcomesFromManyThreads() throws {
    let db = try Database(path: path)
    try db.importModel(directory: DefaultModel.directory)
    let router = try db.createRouter(
      "topics", paths: [RoutePath(name: "kitchen"), RoutePath(name: "computers")])
    let kitchen = [
      "how long do I bake a sponge cake", "what temperature to brew green tea",
      "how do I knead bread dough", "a recipe for tomato soup", "how to poach an egg",
      "how much salt in pasta water",
    ]
    let computers = [
      "how do I reset my router password", "why is my laptop fan so loud",
      "how to install a printer driver", "my keyboard stopped typing", "how to back up a disk",
      "what is a memory-mapped file",
    ]
    for input in kitchen { try router.record(input: input, path: "kitchen", outcome: .good) }
    for input in computers { try router.record(input: input, path: "computers", outcome: .good) }
    var options = RouterTrainingOptions()
    options.force = true
    XCTAssertTrue(try router.train(options: options).activated)

    let (threads, rounds) = (4, 8)
    let record = Record()
    DispatchQueue.concurrentPerform(iterations: threads) { thread in
      do {
        for round in 0..<rounds {
          let inputs = [
            "thread \(thread) round \(round): \(kitchen[round % kitchen.count])",
            "thread \(thread) round \(round): \(computers[round % computers.count])",
          ]
          let decisions = try router.route(inputs)
          for (input, decision) in zip(inputs, decisions) {
            let logID = try XCTUnwrap(decision.logID)
            record.decision(logID, input: input, path: decision.path)
            if round % 2 == 0 {
              try router.record(outcome: .good, path: decision.path, for: logID)
              record.outcome(logID)
            }
          }
          try router.record(input: "labelled \(thread) \(round)", path: "kitchen", outcome: .bad)
        }
      } catch {
        record.fail("thread \(thread): \(error)")
      }
    }
    let done = record.all
    XCTAssertEqual(done.failures, [])
    XCTAssertEqual(done.decisions.count, threads * rounds * 2, "every log id handed out once")
    let logged = try router.logEntries(limit: 10_000).filter { $0.decision != nil }
    XCTAssertEqual(logged.count, threads * rounds * 2)
    for entry in logged {
      let decision = try XCTUnwrap(done.decisions[entry.logID], "log id \(entry.logID)")
      XCTAssertEqual(entry.input, decision.input)
      XCTAssertEqual(entry.decision?.path, decision.path)
      XCTAssertEqual(
        entry.outcomes, done.outcomes.contains(entry.logID) ? [decision.path: .good] : [:])
    }
    XCTAssertEqual(
      try router.logEntries(limit: 10_000).filter { $0.input.hasPrefix("labelled ") }.count,
      threads * rounds)
  }
}
