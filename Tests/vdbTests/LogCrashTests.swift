import Foundation
import XCTest

/// kill -9 of a shell session that logs queries through the background log writer:
/// every entry the session saw committed (listed by `log`, which reads the database)
/// is there after reopening, unchanged; an entry it only queued is whole or absent;
/// the log goes on with ids that collide with none.
final class LogCrashTests: ShellTestCase {
  /// A `vdb` shell driven line by line through pipes.
  final class Session {
    let process = Process()
    let input = Pipe()
    let output = Pipe()
    private var buffer = Data()

    init(binary: String, db: String) throws {
      process.executableURL = URL(fileURLWithPath: binary)
      process.arguments = ["--db", db]
      process.standardInput = input
      process.standardOutput = output
      process.standardError = FileHandle.nullDevice
      try process.run()
    }

    func send(_ lines: [String]) {
      input.fileHandleForWriting.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }

    /// The JSON lines printed up to and including the first one with key `marker`.
    func read(until marker: String) -> [[String: Any]] {
      var objects: [[String: Any]] = []
      while true {
        while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
          let line = buffer[buffer.startIndex..<newline]
          buffer = Data(buffer[(newline + 1)...])
          guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else {
            continue
          }
          objects.append(object)
          if object[marker] != nil { return objects }
        }
        let more = output.fileHandleForReading.availableData
        if more.isEmpty { return objects }
        buffer += more
      }
    }
  }

  /// The log as a fresh process reads it: entries by id.
  func logEntries() throws -> [Int: NSDictionary] {
    let result = try Shell.vdb(["log", "-c", "c", "--limit", "1000000", "--json", "--db", db])
    XCTAssertEqual(result.status, 0, result.stderr)
    var entries: [Int: NSDictionary] = [:]
    for line in result.stdout.split(separator: "\n") {
      let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? NSDictionary
      if let id = object?["log_id"] as? Int { entries[id] = object }
    }
    return entries
  }

  func testKilledWhileLoggingLosesNoCommittedEntryAndIdsGoOn() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["collections", "create", "c", "--no-vectors", "--db", db]).status, 0)
    let documents = (0..<40).map {
      #"{"_id": "d\#($0)", "text": "word\#($0) word\#($0 % 7) shared"}"#
    }
    let imported = try Shell.vdb(
      ["import", "-", "-c", "c", "--db", db], input: documents.joined(separator: "\n"))
    XCTAssertEqual(imported.status, 0, imported.stderr)

    var random = SystemRandomNumberGenerator()
    var everCommitted: [Int: NSDictionary] = [:]
    for trial in 0..<4 {
      let session = try Session(binary: Shell.binary, db: db)
      session.send([".mode json", "use c"])
      var committed: [Int: NSDictionary] = [:]
      var queued: [Int: [String]] = [:]  // log id → hit ids, as the query printed them
      var last = 0
      func round(_ n: Int) -> [String] {
        (0..<8).map { "query \"word\((n + $0) % 40) shared\" -k 3" }
          + ["log --after \(last) --limit 100000", "count"]
      }
      let rounds = Int.random(in: 3...25, using: &random)
      for n in 0..<rounds {
        session.send(round(n))
        for object in session.read(until: "count") {
          guard let id = object["log_id"] as? Int else { continue }
          if object["time"] != nil {
            committed[id] = object as NSDictionary
            last = max(last, id)
          } else {
            queued[id] = (object["hits"] as? [[String: Any]] ?? []).compactMap {
              $0["id"] as? String
            }
          }
        }
      }
      // The next rounds are queued and running when the kill lands.
      session.send((rounds..<(rounds + 20)).flatMap(round))
      usleep(UInt32.random(in: 0...40_000, using: &random))
      kill(session.process.processIdentifier, SIGKILL)
      session.process.waitUntilExit()
      XCTAssertEqual(session.process.terminationReason, .uncaughtSignal, "trial \(trial)")
      XCTAssertGreaterThan(committed.count, 0, "trial \(trial) saw commits")

      let after = try logEntries()
      everCommitted.merge(committed) { $1 }
      for (id, entry) in everCommitted {
        XCTAssertEqual(after[id], entry, "trial \(trial): committed entry \(id)")
      }
      for (id, hits) in queued where after[id] != nil {
        let stored = (after[id]?["hits"] as? [[String: Any]] ?? []).compactMap {
          $0["id"] as? String
        }
        XCTAssertEqual(stored, hits, "trial \(trial): queued entry \(id) is whole")
      }
      // A new query's id is new, and after every id handed out so far.
      let query = try Shell.vdb(["query", "-c", "c", "word3 shared", "--json", "--db", db])
      XCTAssertEqual(query.status, 0, query.stderr)
      let newID =
        (try JSONSerialization.jsonObject(with: Data(query.stdout.utf8)) as? [String: Any])?[
          "log_id"] as? Int ?? 0
      XCTAssertNil(after[newID], "trial \(trial): id \(newID) is taken")
      XCTAssertGreaterThan(newID, max(after.keys.max() ?? 0, queued.keys.max() ?? 0))
      let verify = try Shell.vdb(["verify", "--db", db])
      XCTAssertEqual(verify.status, 0, "trial \(trial): \(verify.stdout)\(verify.stderr)")
    }
  }
}
