import Foundation
import LMDB
import Tensor
import XCTest

@testable import VectorDB

/// A database whose LMDB pages are sound but whose records are damaged — a value with
/// bytes changed, cut short or run on, an entry gone, a key changed — as a faulty disk,
/// a buggy copy or a hostile file would leave it. Through the real binary, every command
/// must answer with exit 0, 1 or 3 and an `error:` line, never crash; `vdb verify` names
/// what the damage broke (it is not required to: a changed float in a router's head or a
/// lost log entry is a record that still reads).
///
/// Every table of a database with documents, metadata, a text and vector index, a logged
/// query with feedback, a model and a trained router is damaged at its first, middle and
/// last entries, each in two ways drawn from a fixed seed, one damage to a copy.
final class DamagedRecordTests: ShellTestCase {
  static let tools = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../tools").standardized.path

  enum Damage: CaseIterable {
    case changeBytes, cutShort, runOn, deleteEntry, changeKey
  }

  private var base: String { directory + "/base" }

  /// The database to damage: every table holds something.
  private func makeBase() throws {
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
    func vdb(_ arguments: [String], input: String? = nil) throws -> Shell.Result {
      let result = try Shell.vdb(arguments + ["--db", base], input: input)
      XCTAssertEqual(result.status, 0, "vdb \(arguments): \(result.stderr)")
      return result
    }
    _ = try vdb(["init"])
    let topics = ["storage", "search", "training", "routing"]
    let lines = (0..<40).map { i in
      #"{"id": "doc\#(i)", "text": "Note \#(i) on \#(topics[i % 4]): how vdb keeps \#(topics[i % 4]) fast and safe.", "topic": "\#(topics[i % 4])", "n": \#(i), "tags": ["a", "b\#(i % 3)"]}"#
    }
    _ = try vdb(["import", "-", "-c", "d"], input: lines.joined(separator: "\n"))
    let query = try vdb(["query", "-c", "d", "how is search fast", "--json"])
    let logID = try XCTUnwrap(
      (try JSONSerialization.jsonObject(with: Data(query.stdout.utf8)) as? [String: Any])?[
        "log_id"] as? Int)
    _ = try vdb(["feedback", String(logID), "doc1"])
    _ = try vdb(["route", "create", "r", "storage", "search", "training", "shell", "general"])
    _ = try vdb(["route", "import", "-r", "r", Self.tools + "/route-examples.jsonl"])
    _ = try vdb(["route", "train", "-r", "r"])
    _ = try vdb(["route", "-r", "r", "how do I back up a database"])
  }

  /// Every entry's key of every table, by table name.
  private func entries(of path: String) throws -> [(table: String, keys: [[UInt8]])] {
    let environment = try Environment.open(path: path)
    return try environment.tableNames().sorted().map { name in
      let table = try environment.table(name)
      let keys = try environment.read { txn in
        var keys: [[UInt8]] = []
        try txn.forEach(in: table) { key, _ in
          keys.append(Array(key))
          return true
        }
        return keys
      }
      return (name, keys)
    }
  }

  /// Writes `damage` at `key` of `table` in the database at `path`.
  private func write(
    _ damage: Damage, at key: [UInt8], of table: String, in path: String,
    random: inout SplitMix64
  ) throws {
    let environment = try Environment.open(path: path)
    let handle = try environment.table(table)
    try environment.write { txn in
      let value = Array(try XCTUnwrap(try txn.get(handle, key: key)))
      switch damage {
      case .changeBytes where !value.isEmpty:
        var changed = value
        for _ in 0..<3 {
          changed[Int(random.next() % UInt64(value.count))] ^= UInt8(1 + random.next() % 255)
        }
        try txn.put(handle, key: key, value: changed)
      case .cutShort where !value.isEmpty:
        try txn.put(
          handle, key: key, value: Array(value.prefix(Int(random.next() % UInt64(value.count)))))
      case .deleteEntry:
        _ = try txn.delete(handle, key: key)
      case .changeKey:
        _ = try txn.delete(handle, key: key)
        var changed = key
        changed[Int(random.next() % UInt64(key.count))] ^= UInt8(1 + random.next() % 255)
        try txn.put(handle, key: changed, value: value)
      default:  // run on, or an empty value that cannot be changed or cut
        try txn.put(handle, key: key, value: value + [0xFF, 0x00, 0x7B, 0x22])
      }
    }
  }

  func testDamagedRecordsAreErrorsNeverCrashes() throws {
    try makeBase()
    var random = SplitMix64(seed: 2026)
    let commands: [[String]] = [
      ["verify"],
      ["query", "-c", "d", "fast search", "--mode", "hybrid", "--filter", #"{"topic": "search"}"#],
      ["get", "-c", "d", "--filter", #"{"n": {"$gte": 30}}"#],
      ["route", "-r", "r", "how do I train", "--no-log"],
      ["upsert", "-c", "d", "--id", "doc2", "--text", "Note 2 rewritten", "--meta", #"{"n": 2}"#],
      ["delete", "-c", "d", "doc3"],
    ]
    var trials = 0
    var found = 0
    for (table, keys) in try entries(of: base) where !keys.isEmpty {
      // The first, middle and last entries, two kinds of damage each.
      let picked = [keys[0], keys[keys.count / 2], keys[keys.count - 1]]
      for (index, key) in picked.enumerated() where !picked[..<index].contains(key) {
        let first = Int(random.next() % UInt64(Damage.allCases.count))
        let second = (first + 1 + Int(random.next() % 4)) % Damage.allCases.count
        for damage in [Damage.allCases[first], Damage.allCases[second]] {
          let copy = directory + "/trial"
          try? FileManager.default.removeItem(atPath: copy)
          try FileManager.default.copyItem(atPath: base, toPath: copy)
          try write(damage, at: key, of: table, in: copy, random: &random)
          trials += 1
          for command in commands {
            let result = try Shell.vdb(command + ["--db", copy])
            let what = "\(damage) at a key of \(table) (\(key.count) bytes), then vdb \(command[0])"
            XCTAssertFalse(
              result.signaled, "\(what): killed by signal \(result.status)\n\(result.stderr)")
            XCTAssertTrue(
              [0, 1, 3].contains(result.status), "\(what): exit \(result.status)\n\(result.stderr)")
            XCTAssertFalse(
              result.stderr.contains("Fatal error") || result.stderr.contains("(SIG"),
              "\(what): a crash\n\(result.stderr)")
            if result.status != 0 {
              XCTAssertTrue(result.stderr.hasPrefix("error: "), "\(what): \(result.stderr)")
            }
            if command == ["verify"], result.status == 3 { found += 1 }
          }
        }
      }
    }
    print("damaged records: \(trials) copies, each damaged once; verify found \(found)")
    XCTAssertGreaterThanOrEqual(trials, 60, "every table of the base holds entries")
    // Most damage is found; what is not is a record that still reads (see above).
    XCTAssertGreaterThan(found, trials / 2, "verify found \(found) of \(trials)")
  }
}
