import Foundation
import Tensor
import XCTest

@testable import VectorDB

/// `vdb sync --postgres` against a real PostgreSQL + pgvector server (pgserver's
/// binaries), one server for the whole class.
final class SyncTests: ShellTestCase {
  nonisolated(unsafe) private static var server: PostgresServer!
  /// Why the server did not start (each test then fails with it instead of trapping).
  nonisolated(unsafe) private static var startError: Error?
  private var server: PostgresServer { Self.server }

  override class func setUp() {
    super.setUp()
    do {
      server = try PostgresServer()
    } catch {
      startError = error
    }
  }

  override func setUpWithError() throws {
    try super.setUpWithError()
    if let error = Self.startError {
      XCTFail("cannot start PostgreSQL (tools/setup.sh installs it into .venv-pg): \(error)")
      throw error
    }
  }

  override class func tearDown() {
    server?.stop()
    super.tearDown()
  }

  /// `count` documents of given `dimension`-dimensional vectors, ids `d0`…, with
  /// metadata, in collection `name` of a database at `db`.
  private func vectorCollection(
    _ name: String, count: Int, dimension: Int, seed: UInt64 = 1
  ) throws -> DocumentCollection {
    let database = try Database(path: db)
    let collection = try database.collection(
      name, options: .vectors(dimension: dimension, metric: .cosine))
    var random = SplitMix64(seed: seed)
    let documents = (0..<count).map {
      Document(id: "d\($0)", text: "document \($0)", metadata: ["n": .number(Double($0))])
    }
    try collection.upsert(
      documents, vectors: documents.map { _ in Self.vector(dimension, &random) })
    return collection
  }

  private static func vector(_ dimension: Int, _ random: inout SplitMix64) -> [Float] {
    (0..<dimension).map { _ in Float.random(in: -1...1, using: &random) }
  }

  private func sync(_ arguments: [String], status: Int32 = 0) throws -> [String: Any] {
    let result = try Shell.vdb(["sync", "--db", db, "--json"] + arguments)
    XCTAssertEqual(result.status, status, result.stderr)
    guard status == 0 else { return ["stderr": result.stderr] }
    return try XCTUnwrap(
      try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
  }

  func testFirstSyncThenOnlyTheChanges() throws {
    let collection = try vectorCollection("docs", count: 50, dimension: 8)
    var report = try sync(["-c", "docs", "--postgres", server.url, "--table", "first"])
    XCTAssertEqual(report["inserted"] as? Int, 50)
    XCTAssertEqual(report["swapped"] as? Bool, true)
    XCTAssertEqual(report["physical_table"] as? String, "first_g1")
    XCTAssertTrue(report["model_version"] is NSNull, "given vectors have no model")
    XCTAssertEqual(try server.psql("SELECT count(*) FROM first"), "50")
    XCTAssertEqual(
      try server.psql("SELECT metadata->>'n', text FROM first WHERE id = 'd7'"), "7|document 7")
    // The vector arrives bit for bit (pgvector prints floats in shortest form).
    let stored = try XCTUnwrap(collection.vectors(["d7"])[0])
    XCTAssertEqual(
      try server.psql("SELECT embedding FROM first WHERE id = 'd7'"),
      "[" + stored.map { "\($0)" }.joined(separator: ",") + "]")
    XCTAssertTrue(
      try server.psql("SELECT indexdef FROM pg_indexes WHERE tablename = 'first_g1'")
        .contains("USING hnsw (embedding vector_cosine_ops)"))
    XCTAssertEqual(
      try server.psql(
        "SELECT collection, generation, dimension, metric, documents FROM vdb_sync WHERE table_name = 'first'"
      ), "docs|1|8|cosine|50")

    // Nothing changed: nothing written.
    let untouched = try server.psql("SELECT xmin FROM first_g1 WHERE id = 'd1'")
    report = try sync(["-c", "docs", "--postgres", server.url, "--table", "first"])
    XCTAssertEqual(report["unchanged"] as? Int, 50)
    XCTAssertEqual(report["inserted"] as? Int, 0)
    XCTAssertEqual(report["swapped"] as? Bool, false)

    // A text change, a metadata-only change, three new documents, four deleted.
    try collection.upsert(
      [Document(id: "d2", text: "rewritten", metadata: ["n": 2])],
      vectors: [[1, 0, 0, 0, 0, 0, 0, 0]])
    try collection.update(id: "d3", metadata: ["n": 3, "tag": "x"])
    try collection.upsert(
      (50..<53).map { Document(id: "d\($0)", text: "new \($0)") },
      vectors: Array(repeating: [0, 1, 0, 0, 0, 0, 0, 0], count: 3))
    XCTAssertEqual(try collection.delete(["d10", "d11", "d12", "d13"]), 4)
    report = try sync(["-c", "docs", "--postgres", server.url, "--table", "first"])
    XCTAssertEqual(report["inserted"] as? Int, 3)
    XCTAssertEqual(report["updated"] as? Int, 2)
    XCTAssertEqual(report["deleted"] as? Int, 4)
    XCTAssertEqual(report["unchanged"] as? Int, 44)
    XCTAssertEqual(try server.psql("SELECT count(*) FROM first"), "49")
    XCTAssertEqual(try server.psql("SELECT text FROM first WHERE id = 'd2'"), "rewritten")
    XCTAssertEqual(try server.psql("SELECT metadata->>'tag' FROM first WHERE id = 'd3'"), "x")
    XCTAssertEqual(try server.psql("SELECT count(*) FROM first WHERE id = 'd10'"), "0")
    // An unchanged row was not rewritten: the same row version as before.
    XCTAssertEqual(try server.psql("SELECT xmin FROM first_g1 WHERE id = 'd1'"), untouched)

    // The view dropped by hand: the next sync rebuilds behind a new view.
    try server.psql("DROP VIEW first")
    report = try sync(["-c", "docs", "--postgres", server.url, "--table", "first"])
    XCTAssertEqual(report["swapped"] as? Bool, true)
    XCTAssertEqual(report["physical_table"] as? String, "first_g1_r")
    XCTAssertEqual(try server.psql("SELECT count(*) FROM first"), "49")
    XCTAssertEqual(try server.psql("SELECT to_regclass('first_g1') IS NULL"), "t")
  }

  func testReembedSyncsANewTableSwappedInAtOnce() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--db", db]).status, 0)
    let texts = ["LMDB is a B+tree", "HNSW is a graph index", "BM25 ranks by terms", "SQL tables"]
    for (n, text) in texts.enumerated() {
      XCTAssertEqual(
        try Shell.vdb(["upsert", "--db", db, "-c", "notes", "--id", "n\(n)", "--text", text])
          .status, 0)
    }
    var report = try sync(["-c", "notes", "--postgres", server.socketURL])
    XCTAssertEqual(report["table"] as? String, "notes")
    XCTAssertEqual(report["model_version"] as? Int, 1)
    XCTAssertEqual(report["dimension"] as? Int, 384)
    let generation = try XCTUnwrap(report["generation"] as? Int)

    XCTAssertEqual(try Shell.vdb(["reembed", "--db", db, "-c", "notes", "--all"]).status, 0)
    // A table in the way of the new generation: the sync fails and changes nothing.
    try server.psql("CREATE TABLE notes_g\(generation + 1) (x int)")
    let failed = try sync(["-c", "notes", "--postgres", server.socketURL], status: 1)
    XCTAssertTrue(
      (failed["stderr"] as? String ?? "").contains("notes_g\(generation + 1) exists"),
      "\(failed)")
    XCTAssertEqual(try server.psql("SELECT count(*) FROM notes"), "4")
    XCTAssertEqual(
      try server.psql("SELECT generation FROM vdb_sync WHERE table_name = 'notes'"),
      "\(generation)")
    try server.psql("DROP TABLE notes_g\(generation + 1)")

    report = try sync(["-c", "notes", "--postgres", server.socketURL])
    XCTAssertEqual(report["generation"] as? Int, generation + 1)
    XCTAssertEqual(report["swapped"] as? Bool, true)
    XCTAssertEqual(report["inserted"] as? Int, 4)
    XCTAssertEqual(report["physical_table"] as? String, "notes_g\(generation + 1)")
    XCTAssertEqual(try server.psql("SELECT count(*) FROM notes"), "4")
    XCTAssertEqual(
      try server.psql("SELECT to_regclass('notes_g\(generation)') IS NULL"), "t",
      "the old table is dropped")
    XCTAssertTrue(
      try server.psql("SELECT definition FROM pg_views WHERE viewname = 'notes'")
        .contains("notes_g\(generation + 1)"))
  }

  func testAKilledSyncLeavesThePreviousTableServing() throws {
    let collection = try vectorCollection("big", count: 5_000, dimension: 32)
    _ = try sync(["-c", "big", "--postgres", server.url, "--table", "killed"])
    try collection.upsert(
      (0..<5_000).map { Document(id: "d\($0)", text: "changed \($0)") },
      vectors: (0..<5_000).map { _ in (0..<32).map { _ in Float.random(in: -1...1) } })
    for delay in [0.3, 0.8, 1.5] {
      let group = try Shell.startGroup(
        "exec '\(Shell.binary)' sync --db '\(db)' -c big --postgres '\(server.url)' --table killed")
      Thread.sleep(forTimeInterval: delay)
      _ = Shell.killGroup(group)
      // Either the old rows or the new ones, never a mix.
      let texts = try server.psql(
        "SELECT count(*) FILTER (WHERE text LIKE 'document%'), count(*) FROM killed")
      XCTAssertTrue(["5000|5000", "0|5000"].contains(texts), "after \(delay) s: \(texts)")
    }
  }

  func testBadInputIsAClearErrorAndWritesNothing() throws {
    _ = try vectorCollection("eight", count: 10, dimension: 8)
    _ = try vectorCollection("four", count: 10, dimension: 4)
    _ = try Database(path: db).collection("plain", options: CollectionOptions(vectors: .none))
    func fails(_ arguments: [String], status: Int32, _ message: String) throws {
      let result = try Shell.vdb(["sync", "--db", db] + arguments)
      XCTAssertEqual(result.status, status, "\(arguments): \(result.stderr)")
      XCTAssertTrue(result.stderr.contains(message), "\(arguments): \(result.stderr)")
      XCTAssertFalse(result.stderr.contains(server.password), "the password is never printed")
    }
    try fails(["-c", "eight", "--postgres", "localhost:5432"], status: 1, "not postgres://")
    try fails(["-c", "eight", "--postgres", "postgres://h:99999/x"], status: 1, "the port")
    try fails(
      ["-c", "eight", "--postgres", server.url + "&sslmode=maybe"], status: 1, "sslmode=maybe")
    try fails(
      ["-c", "eight", "--postgres", server.url, "--table", "Bad-Name"], status: 1,
      "not a table name")
    try fails(["-c", "plain", "--postgres", server.url], status: 1, "has no vectors")
    let nul = try Database(path: db).collection(
      "nul", options: .vectors(dimension: 2, metric: .cosine))
    try nul.upsert([Document(id: "z", text: "a\u{0}b")], vectors: [[1, 0]])
    try fails(
      ["-c", "nul", "--postgres", server.url], status: 1,
      "document z of \"nul\" holds a NUL character in its text")
    XCTAssertEqual(try server.psql("SELECT to_regclass('nul') IS NULL"), "t")
    try fails(["-c", "missing", "--postgres", server.url], status: 1, "missing")
    // The server: down, wrong password.
    let closed = "postgres://postgres:x@127.0.0.1:\(server.port + 1)/postgres?sslmode=disable"
    try fails(["-c", "eight", "--postgres", closed], status: 3, "cannot connect")
    let wrong = server.url.replacingOccurrences(of: server.password, with: "wrong")
    try fails(["-c", "eight", "--postgres", wrong], status: 3, "refused the login")
    try fails(
      [
        "-c", "eight", "--postgres",
        server.url.replacingOccurrences(of: "/postgres?", with: "/nodb?"),
      ],
      status: 3, "nodb")

    // A table vdb did not make; one holding another collection of another dimension.
    try server.psql("CREATE TABLE handmade (id text, embedding vector(8))")
    try fails(
      ["-c", "eight", "--postgres", server.url, "--table", "handmade"], status: 1,
      "was not made by vdb sync")
    XCTAssertEqual(try server.psql("SELECT count(*) FROM handmade"), "0")
    _ = try sync(["-c", "eight", "--postgres", server.url, "--table", "shared"])
    try fails(
      ["-c", "four", "--postgres", server.url, "--table", "shared"], status: 1,
      "holds collection \"eight\" (8 dimensions)")
    XCTAssertEqual(
      try server.psql("SELECT collection, dimension FROM vdb_sync WHERE table_name = 'shared'"),
      "eight|8")
  }

  func testTopTenAgreesWithExactSearch() throws {
    let collection = try vectorCollection("agree", count: 3000, dimension: 32, seed: 7)
    _ = try sync(["-c", "agree", "--postgres", server.url, "--table", "agree"])
    var random = SplitMix64(seed: 99)
    var overlap = 0
    let queries = 30
    for _ in 0..<queries {
      let query = Self.vector(32, &random)
      let exact = try collection.query(vector: query, k: 10, exact: true, log: false).hits.map(\.id)
      let literal = "'[" + query.map { "\($0)" }.joined(separator: ",") + "]'"
      let rows = try server.psql(
        """
        SET enable_indexscan = off;
        SELECT id FROM agree ORDER BY embedding <=> \(literal) LIMIT 10
        """)
      overlap += Set(rows.split(separator: "\n").map(String.init)).intersection(exact).count
    }
    XCTAssertGreaterThanOrEqual(Double(overlap) / Double(queries * 10), 0.99)
  }
}
