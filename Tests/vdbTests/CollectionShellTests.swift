import Foundation
import XCTest

/// `vdb collections` through the real binary, and what a failed first import leaves.
final class CollectionShellTests: XCTestCase {
  var directory: String!
  var db: String { directory + "/db" }

  override func setUpWithError() throws {
    directory = try Shell.temporaryDirectory("collections")
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  private func names() throws -> [String] {
    let listed = try Shell.vdb(["collections", "--db", db, "--json"])
    XCTAssertEqual(listed.status, 0, listed.stderr)
    let array = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]
    return array?.compactMap { $0["name"] as? String } ?? []
  }

  func testCreateListRenameDrop() throws {
    let created = try Shell.vdb(
      ["collections", "create", "sift", "--vectors", "4", "--metric", "l2", "--db", db])
    XCTAssertEqual(created.status, 0, created.stderr)
    // A collection with no vectors yet has no index table, and is not damaged.
    let verified = try Shell.vdb(["verify", "--db", db])
    XCTAssertEqual(verified.status, 0, verified.stdout + verified.stderr)
    XCTAssertEqual(
      try Shell.vdb(["collections", "create", "notes", "--no-vectors", "--db", db]).status, 0)
    let again = try Shell.vdb(["collections", "create", "notes", "--db", db])
    XCTAssertEqual(again.status, 1)
    XCTAssertTrue(again.stderr.hasPrefix(#"error: a collection named "notes" already exists"#))
    try Shell.vdb(["upsert", "--db", db, "-c", "notes", "--id", "n1", "--text", "hello"])
    let table = try Shell.vdb(["collections", "--db", db])
    XCTAssertTrue(table.stdout.contains("4-d l2"), table.stdout)
    XCTAssertEqual(try names(), ["notes", "sift"])

    let onto = try Shell.vdb(["collections", "rename", "notes", "sift", "--db", db])
    XCTAssertEqual(onto.status, 1)
    XCTAssertTrue(onto.stderr.contains(#""sift" already exists"#), onto.stderr)
    XCTAssertEqual(
      try Shell.vdb(["collections", "rename", "notes", "journal", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["get", "--db", db, "-c", "journal", "n1", "--json"]).status, 0)
    XCTAssertEqual(try names(), ["journal", "sift"])

    let drop = try Shell.vdb(["collections", "drop", "journal", "--db", db])
    XCTAssertEqual(drop.status, 0, drop.stderr)
    XCTAssertEqual(try names(), ["sift"])
    let missing = try Shell.vdb(["collections", "drop", "journal", "--db", db])
    XCTAssertEqual(missing.status, 1)
    XCTAssertTrue(missing.stderr.hasPrefix(#"error: no collection named "journal""#))
    XCTAssertEqual(try Shell.vdb(["get", "--db", db, "-c", "journal"]).status, 1)
  }

  /// A first import that fails (a bad line, or a vector file that cannot be read)
  /// leaves no empty collection behind; one into an existing collection keeps it.
  func testFailedFirstImportLeavesNoCollection() throws {
    let file = directory + "/bad.jsonl"
    try Data("{\"_id\": \"1\", \"text\": \"ok\"}\n{\"_id\": 2.5}\n".utf8).write(
      to: URL(fileURLWithPath: file))
    XCTAssertEqual(try Shell.vdb(["import", file, "-c", "typo", "--db", db]).status, 1)
    XCTAssertEqual(try names(), [])
    let missingFile = try Shell.vdb(["import", directory + "/nope.jsonl", "-c", "x", "--db", db])
    XCTAssertEqual(missingFile.status, 1)
    XCTAssertEqual(try names(), [])

    XCTAssertEqual(
      try Shell.vdb(["collections", "create", "kept", "--no-vectors", "--db", db]).status, 0)
    XCTAssertEqual(try Shell.vdb(["import", file, "-c", "kept", "--db", db]).status, 1)
    XCTAssertEqual(try names(), ["kept"], "an existing collection is never dropped")
  }
}
