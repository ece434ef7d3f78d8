import Foundation
import XCTest

@testable import VectorDB

/// Export → import round trips, .npy output, and backups taken while writers run.
final class ExportBackupTests: XCTestCase {
  var directory: String!

  override func setUpWithError() throws {
    directory = NSTemporaryDirectory() + "vdb-export-backup-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  func testExportRoundTripsThroughImport() throws {
    let db = try Database(path: directory + "/db")
    let source = try db.createCollection("source", options: .vectors(dimension: 3, metric: .dot))
    let documents = (0..<30).map {
      Document(
        id: "doc \($0) é", text: "text \($0)\nsecond line \"quoted\"",
        metadata: $0 % 3 == 0 ? [:] : ["n": .number(Double($0)), "tags": ["a", .null]])
    }
    let vectors = (0..<30).map { [Float($0), 0.5, -Float($0) / 7] }
    try source.upsert(documents, vectors: vectors)

    var lines = Data()
    let count = try source.export(includeVectors: true) { document in
      lines.append(try JSONEncoder().encode(document) + Data("\n".utf8))
    }
    XCTAssertEqual(count, 30)
    let copy = try db.createCollection("copy", options: .vectors(dimension: 3, metric: .dot))
    XCTAssertEqual(try copy.importJSONL(InputFile(lines, source: "export")).imported, 30)
    let ids = documents.map(\.id)
    XCTAssertEqual(try copy.get(ids), try source.get(ids))
    XCTAssertEqual(try copy.vectors(ids), try source.vectors(ids))
    XCTAssertEqual(try copy.vectors(ids).compactMap { $0 }, vectors)

    var filtered: [String] = []
    try source.export(filter: Filter(json: #"{"n": {"$gte": 25}}"#)) {
      XCTAssertNil($0.vector)
      filtered.append($0.id)
    }
    XCTAssertEqual(filtered, ["doc 25 é", "doc 26 é", "doc 28 é", "doc 29 é"])

    let npy = directory + "/v.npy"
    try VectorFile.npyBytes(vectors, dimension: 3).write(to: URL(fileURLWithPath: npy))
    let read = try VectorFile.read(npy)
    XCTAssertEqual(read.dimension, 3)
    XCTAssertEqual(read.rows, vectors)
  }

  func testImportRejectsMixedVectorLines() throws {
    let db = try Database(path: directory + "/db")
    let c = try db.createCollection("c", options: .vectors(dimension: 2, metric: .l2))
    let data = Data(
      (#"{"id": "a", "text": "", "vector": [1, 2]}"# + "\n" + #"{"id": "b", "text": ""}"#).utf8)
    XCTAssertThrowsError(try c.importJSONL(InputFile(data, source: "in.jsonl"))) {
      XCTAssertEqual("\($0)", #"in.jsonl:2: no "vector"; line 1 has a vector of 2 floats"#)
    }
    XCTAssertEqual(try c.count(), 0)
  }

  /// Another thread commits batches of 100 during the backup: the copy opens, verifies,
  /// and holds a whole number of batches (one consistent snapshot).
  func testBackupWhileWriting() throws {
    let db = try Database(path: directory + "/db")
    let c = try db.createCollection("c", options: .vectors(dimension: 8, metric: .l2))
    @Sendable func batch(_ b: Int) throws {
      try c.upsert(
        (0..<100).map { Document(id: "b\(b)-\($0)", text: String(repeating: "x", count: 500)) },
        vectors: (0..<100).map { i in (0..<8).map { Float((b * 100 + i) % (7 + $0)) } })
    }
    for b in 0..<20 { try batch(b) }
    let stop = DispatchSemaphore(value: 0)
    let stopped = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      var b = 20
      while stop.wait(timeout: .now()) == .timedOut {
        try! batch(b)
        b += 1
      }
      stopped.signal()
    }
    let destination = directory + "/backup"
    try db.backup(to: destination)
    stop.signal()
    stopped.wait()

    var options = Database.Options()
    options.create = false
    let copy = try Database(path: destination, options: options)
    try copy.verify()
    func mode(_ path: String) throws -> Int {
      try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }
    XCTAssertEqual(try mode(destination), 0o700, "the copy is its owner's only, as a database is")
    XCTAssertEqual(try mode(destination + "/data.mdb"), 0o600)
    let copied = try copy.collection("c", create: false)
    let count = try copied.count()
    XCTAssertEqual(count % 100, 0)
    XCTAssertGreaterThanOrEqual(count, 2000)
    XCTAssertEqual(try copied.query(vector: [0, 0, 0, 0, 0, 0, 0, 0], k: 3).hits.count, 3)

    XCTAssertThrowsError(try db.backup(to: destination)) { error in
      XCTAssertEqual(
        "\(error)", "\(destination): a database is already there: back up to a new directory")
    }
    let file = directory + "/file"
    XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
    XCTAssertThrowsError(try db.backup(to: file))
    XCTAssertEqual(
      try FileManager.default.contentsOfDirectory(atPath: directory).filter {
        $0.contains("partial")
      }, [], "no temporary left")
  }
}
