import Foundation
import XCTest

@testable import VectorDB

#if canImport(Glibc)
  import Glibc
#endif

/// `vdb serve` as a real process on a loopback port, driven over HTTP by curl.
final class ServerTests: XCTestCase {
  /// A database with the default model and a collection `notes` of three documents.
  private func notesDatabase() throws -> (directory: String, db: String) {
    let directory = try Shell.temporaryDirectory("serve")
    let db = directory + "/db"
    XCTAssertEqual(try Shell.vdb(["init", "--db", db]).status, 0)
    return (directory, db)
  }

  func testEveryEndpointAnswersInTheShellsShapes() throws {
    let (directory, db) = try notesDatabase()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try ServerProcess(database: db)
    defer { server.stop() }

    var reply = try server.request("POST", "/collections", #"{"name": "notes"}"#)
    XCTAssertEqual(reply.status, 201, reply.text)
    XCTAssertEqual(reply.json["name"] as? String, "notes")
    XCTAssertEqual(reply.json["dimension"] as? Int, 384)
    reply = try server.request(
      "POST", "/collections/notes/documents",
      """
      {"documents": [
        {"id": "n1", "text": "LMDB is a memory-mapped B+tree key-value store", "metadata": {"topic": "storage"}},
        {"id": "n2", "text": "HNSW is a graph index for approximate nearest neighbours", "metadata": {"topic": "index"}},
        {"id": "n3", "text": "BM25 ranks documents by term frequency", "metadata": {"topic": "search", "draft": true}}
      ]}
      """)
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(reply.json["upserted"] as? Int, 3)
    XCTAssertEqual(reply.json["superseded"] as? Int, 0)

    reply = try server.request("GET", "/collections")
    let collections = try XCTUnwrap(reply.array)
    XCTAssertEqual(collections.first?["documents"] as? Int, 3)

    reply = try server.request("GET", "/collections/notes/documents/n2?include=vector")
    XCTAssertEqual(
      reply.json["text"] as? String, "HNSW is a graph index for approximate nearest neighbours")
    XCTAssertEqual((reply.json["vector"] as? [Double])?.count, 384)
    // Ids in the path are percent-decoded: any character an id may hold can be reached.
    reply = try server.request(
      "POST", "/collections/notes/documents",
      #"{"documents": [{"id": "a/b c é?%", "text": "an id a URL must escape"}]}"#)
    XCTAssertEqual(reply.status, 200, reply.text)
    let escaped = "/collections/notes/documents/a%2Fb%20c%20%C3%A9%3F%25"
    reply = try server.request("GET", escaped)
    XCTAssertEqual(reply.json["id"] as? String, "a/b c é?%", reply.text)
    XCTAssertEqual(try server.request("GET", "/collections/notes/documents/%zz").status, 400)
    reply = try server.request("DELETE", escaped)
    XCTAssertEqual(reply.json["deleted"] as? Int, 1, reply.text)
    reply = try server.request(
      "POST", "/collections/notes/documents/get", #"{"ids": ["n1", "zz"]}"#)
    let found = try XCTUnwrap(reply.json["documents"] as? [Any])
    XCTAssertEqual((found[0] as? [String: Any])?["id"] as? String, "n1")
    XCTAssertTrue(found[1] is NSNull, "a missing id is null: \(reply.text)")
    reply = try server.request("GET", "/collections/notes/documents?limit=2")
    XCTAssertEqual(
      (reply.json["documents"] as? [[String: Any]])?.map { $0["id"] as? String }, ["n1", "n2"])
    reply = try server.request(
      "GET", "/collections/notes/count?filter=" + percent(#"{"topic": "index"}"#))
    XCTAssertEqual(reply.json["count"] as? Int, 1)

    // Queries in every mode, with a filter; each logged.
    var logID = 0
    for mode in ["dense", "keyword", "hybrid"] {
      reply = try server.request(
        "POST", "/collections/notes/query",
        #"{"text": "graph index for nearest neighbours", "k": 2, "mode": "\#(mode)"}"#)
      XCTAssertEqual(reply.status, 200, reply.text)
      let hits = try XCTUnwrap(reply.json["hits"] as? [[String: Any]])
      XCTAssertEqual(hits.first?["id"] as? String, "n2", "\(mode): \(reply.text)")
      logID = try XCTUnwrap(reply.json["log_id"] as? Int)
    }
    reply = try server.request(
      "POST", "/collections/notes/query",
      #"{"text": "storage", "filter": {"topic": "search"}, "log": false}"#)
    XCTAssertEqual((reply.json["hits"] as? [[String: Any]])?.map { $0["id"] as? String }, ["n3"])
    XCTAssertTrue(reply.json["log_id"] is NSNull, reply.text)

    reply = try server.request("POST", "/feedback", #"{"log_id": \#(logID), "doc": "n2"}"#)
    XCTAssertEqual(reply.json["recorded"] as? String, "click", reply.text)
    reply = try server.request(
      "POST", "/feedback", #"{"collection": "notes", "query": "key-value store", "docs": ["n1"]}"#)
    XCTAssertNotNil(reply.json["log_id"] as? Int, reply.text)
    reply = try server.request("GET", "/log?collection=notes&limit=10")
    let entries = try XCTUnwrap(reply.json["entries"] as? [[String: Any]])
    XCTAssertEqual(entries.count, 4)
    XCTAssertEqual((entries[2]["feedback"] as? [[String: Any]])?.first?["doc"] as? String, "n2")
    reply = try server.request("GET", "/log?collection=nope")
    XCTAssertEqual(reply.status, 404, reply.text)

    reply = try server.request(
      "POST", "/collections/notes/eval",
      #"{"queries": {"q1": "graph index"}, "qrels": {"q1": {"n2": 1}}, "mode": "dense"}"#)
    XCTAssertEqual(reply.json["ndcg@10"] as? Double, 1, reply.text)
    XCTAssertEqual(reply.json["queries"] as? Double, 1)
    for grade in ["1e19", "1e300", "1.5"] {  // 1e19 is past Int: it stopped the server
      reply = try server.request(
        "POST", "/collections/notes/eval",
        #"{"queries": {"q1": "graph"}, "qrels": {"q1": {"n2": \#(grade)}}}"#)
      XCTAssertEqual(reply.status, 400, "\(grade): \(reply.text)")
    }
    reply = try server.request("POST", "/collections/notes/eval", #"{"from_log": true}"#)
    XCTAssertEqual(reply.json["queries"] as? Double, 2, reply.text)
    XCTAssertEqual(reply.json["in_sample"] as? Double, 0, reply.text)
    // No fine-tune serves: every logged query is unseen.
    reply = try server.request(
      "POST", "/collections/notes/eval", #"{"from_log": true, "unseen": true}"#)
    XCTAssertEqual(reply.json["queries"] as? Double, 2, reply.text)
    reply = try server.request(
      "POST", "/collections/notes/eval",
      #"{"unseen": true, "queries": {"q1": "graph"}, "qrels": {"q1": {"n2": 1}}}"#)
    XCTAssertEqual(reply.status, 400, reply.text)

    // Log retention: shown, set (pruning at once), a field left out kept, null lifting it.
    reply = try server.request("GET", "/log/retention")
    XCTAssertEqual(reply.json["max_entries"] as? Int, 1_000_000, reply.text)
    XCTAssertTrue(reply.json["max_age"] is NSNull, reply.text)
    reply = try server.request("PUT", "/log/retention", #"{"max_entries": 2, "max_age": 86400}"#)
    XCTAssertEqual(reply.json["max_entries"] as? Int, 2, reply.text)
    reply = try server.request("GET", "/log?collection=notes")
    XCTAssertEqual((reply.json["entries"] as? [[String: Any]])?.count, 2, reply.text)
    reply = try server.request("PUT", "/log/retention", #"{"max_entries": null}"#)
    XCTAssertTrue(reply.json["max_entries"] is NSNull, reply.text)
    XCTAssertEqual(reply.json["max_age"] as? Double, 86_400, reply.text)
    for bad in [
      #"{"max_entries": 0}"#, #"{"max_age": -1}"#, #"{"max_age": 0}"#, #"{"max_age": 1e19}"#,
      #"{"max_age": "7d"}"#, #"{"days": 7}"#,
    ] {
      reply = try server.request("PUT", "/log/retention", bad)
      XCTAssertEqual(reply.status, 400, "\(bad): \(reply.text)")
    }
    XCTAssertEqual(
      try server.request("GET", "/log/retention").json["max_age"] as? Double, 86_400,
      "a refused request changes nothing")

    reply = try server.request("GET", "/models")
    let models = try XCTUnwrap(reply.json["models"] as? [[String: Any]])
    XCTAssertEqual((models.first?["model"] as? [String: Any])?["version"] as? Int, 1)
    XCTAssertNotNil((models.first?["collections"] as? [String: Any])?["notes"], reply.text)

    reply = try server.request(
      "POST", "/collections/notes/documents/delete",
      #"{"filter": {"draft": true}, "dry_run": true}"#)
    XCTAssertEqual(reply.json["deleted"] as? Int, 0)
    XCTAssertEqual(reply.json["ids"] as? [String], ["n3"])
    reply = try server.request(
      "POST", "/collections/notes/documents/delete", #"{"filter": {"draft": true}}"#)
    XCTAssertEqual(reply.json["deleted"] as? Int, 1)
    reply = try server.request("DELETE", "/collections/notes/documents/n1")
    XCTAssertEqual(reply.json["deleted"] as? Int, 1)
    XCTAssertTrue(reply.json["ids"] is NSNull)
    reply = try server.request("GET", "/collections/notes/count")
    XCTAssertEqual(reply.json["count"] as? Int, 1)

    reply = try server.request("POST", "/collections/notes/rename", #"{"name": "journal"}"#)
    XCTAssertEqual(reply.json["name"] as? String, "journal", reply.text)
    reply = try server.request("GET", "/status")
    XCTAssertEqual(
      (reply.json["collections"] as? [[String: Any]])?.map { $0["name"] as? String }, ["journal"])
    reply = try server.request("DELETE", "/collections/journal")
    XCTAssertEqual(reply.json["dropped"] as? String, "journal")
    XCTAssertEqual(try server.request("GET", "/collections").array?.count, 0)

    // The served OpenAPI document names every route the server answers.
    reply = try server.request("GET", "/openapi.json")
    XCTAssertEqual(reply.json["openapi"] as? String, "3.1.0")
    let paths = try XCTUnwrap(reply.json["paths"] as? [String: Any])
    for path in [
      "/collections", "/collections/{collection}/query", "/feedback", "/jobs/{id}",
      "/collections/{collection}/train", "/models", "/routers", "/routers/{router}/route",
      "/routers/{router}/train", "/log/retention", "/health",
    ] {
      XCTAssertNotNil(paths[path], path)
    }
  }

  func testBadRequestsGetJSONErrorsWithTheRightStatus() throws {
    let (directory, db) = try notesDatabase()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try ServerProcess(database: db, extra: ["--max-body-mib", "1"])
    defer { server.stop() }
    XCTAssertEqual(try server.request("POST", "/collections", #"{"name": "notes"}"#).status, 201)

    func expect(
      _ method: String, _ path: String, _ body: String?, _ status: Int, _ code: String,
      mentioning words: [String] = [], line: UInt = #line
    ) throws {
      let reply = try server.request(method, path, body)
      XCTAssertEqual(reply.status, status, reply.text, line: line)
      let error = reply.json["error"] as? [String: Any]
      XCTAssertEqual(error?["code"] as? String, code, reply.text, line: line)
      XCTAssertTrue(error?.keys.contains("hint") ?? false, reply.text, line: line)
      for word in words {
        XCTAssertTrue((error?["message"] as? String ?? "").contains(word), reply.text, line: line)
      }
    }
    let query = "/collections/notes/query"
    try expect("POST", query, #"{"text": "x", "k": }"#, 400, "invalid_json")
    try expect("POST", query, #"["text"]"#, 400, "invalid_json", mentioning: ["JSON object"])
    // "café" in Latin-1: the é is the lone byte 0xE9.
    let latin1 = try server.request(
      "POST", query, bytes: Data(#"{"text": "caf"#.utf8) + [0xE9] + Data(#""}"#.utf8))
    XCTAssertEqual(latin1.status, 400, latin1.text)
    XCTAssertTrue(latin1.text.contains("not UTF-8"), latin1.text)
    try expect(
      "POST", query, #"{"text": "x", "k": "ten"}"#, 400, "invalid_input", mentioning: ["\"k\""])
    try expect(
      "POST", query, #"{"text": "x", "k": 0}"#, 400, "invalid_input", mentioning: ["1...10000"])
    try expect(
      "POST", query, #"{"text": "x", "fitler": {}}"#, 400, "invalid_input", mentioning: ["fitler"])
    try expect(
      "POST", query, #"{"text": "x", "mode": "fuzzy"}"#, 400, "invalid_input", mentioning: ["mode"])
    try expect("POST", query, #"{"text": "x", "filter": {"$nope": 1}}"#, 400, "invalid_input")
    try expect("POST", query, #"{"vector": [1, 2]}"#, 400, "invalid_vector")
    try expect("POST", "/collections/nope/query", #"{"text": "x"}"#, 404, "collection_not_found")
    try expect("GET", "/collections/notes/documents/zz", nil, 404, "document_not_found")
    try expect("POST", "/collections", #"{"name": "notes"}"#, 409, "collection_exists")
    // Found by schemathesis: an empty name reached LMDB as an empty key (a 500).
    try expect(
      "POST", "/collections", #"{"name": ""}"#, 400, "invalid_input", mentioning: ["empty"])
    try expect(
      "POST", "/collections/notes/documents", #"{"documents": [{"id": 7}]}"#, 400, "invalid_input",
      mentioning: ["documents[0]", "\"id\""])
    // Without a vector, a document's text is what is embedded: not replaced by "".
    for fields in [#""metadata": {"reviewed": true}"#, #""text": null"#] {
      try expect(
        "POST", "/collections/notes/documents", #"{"documents": [{"id": "n1", \#(fields)}]}"#,
        400, "invalid_input", mentioning: ["documents[0]", "\"text\" is required"])
    }
    try expect("POST", "/feedback", #"{"log_id": 999, "doc": "x"}"#, 404, "log_entry_not_found")
    try expect("GET", "/jobs/41", nil, 404, "job_not_found")
    try expect("GET", "/no/such/route", nil, 404, "not_found")
    // Over the 1 MiB limit: refused before anything is parsed or written.
    let big =
      #"{"documents": [{"id": "big", "text": ""# + String(repeating: "a", count: 2 << 20)
      + #""}]}"#
    try expect(
      "POST", "/collections/notes/documents", big, 413, "body_too_large",
      mentioning: ["limit of 1 MiB"])
    XCTAssertEqual(try server.request("GET", "/collections/notes/count").json["count"] as? Int, 0)
  }

  func testTokenIsRequiredBeyondLoopbackAndChecked() throws {
    let (directory, db) = try notesDatabase()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let refused = try Shell.vdb(["serve", "--db", db, "--host", "0.0.0.0", "--port", "0"])
    XCTAssertEqual(refused.status, 1)
    XCTAssertTrue(refused.stderr.contains("--token-file"), refused.stderr)

    let tokenFile = directory + "/token"
    // Saved as a Windows editor would: a byte order mark, CRLF; the token is the same.
    try "\u{FEFF}s3cret-token\r\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
    let server = try ServerProcess(database: db, extra: ["--token-file", tokenFile])
    defer { server.stop() }
    var reply = try server.request("GET", "/collections", token: .some(nil))
    XCTAssertEqual(reply.status, 401)
    XCTAssertEqual((reply.json["error"] as? [String: Any])?["code"] as? String, "unauthorized")
    reply = try server.request("GET", "/collections", token: "s3cret-tokeN")
    XCTAssertEqual(reply.status, 401)
    reply = try server.request("GET", "/collections", token: "s3cret")
    XCTAssertEqual(reply.status, 401)
    reply = try server.request("GET", "/collections", token: "s3cret-token")
    XCTAssertEqual(reply.status, 200, reply.text)
    // The liveness check alone needs no token, and tells nothing about the data.
    reply = try server.request("GET", "/health", token: .some(nil))
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(reply.json as? [String: String], ["status": "ok"])
    XCTAssertEqual(try server.request("GET", "/status", token: .some(nil)).status, 401)
  }

  func testJobsRunToCompletionCancelAndSIGTERMInterruptsThemResumably() throws {
    let (directory, db) = try notesDatabase()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let corpus = directory + "/corpus.jsonl"
    try Shell.writeBatch(corpus, prefix: "d", count: 300, textBytes: 200)
    XCTAssertEqual(try Shell.vdb(["import", corpus, "-c", "docs", "--db", db]).status, 0)
    var server = try ServerProcess(database: db)

    // A re-embed job, polled (long polling) to completion.
    var reply = try server.request("POST", "/collections/docs/reembed", #"{"all": true}"#)
    XCTAssertEqual(reply.status, 202, reply.text)
    let id = try XCTUnwrap(reply.json["id"] as? Int)
    XCTAssertEqual(reply.json["state"] as? String, "running")
    XCTAssertEqual(
      try server.request("POST", "/collections/docs/reembed", "{}").status, 409,
      "a second job on the collection is refused")
    // So are a drop and a rename sent at once, before the job's process has written
    // its state (the library alone would not see the job yet).
    reply = try server.request("DELETE", "/collections/docs")
    XCTAssertEqual(reply.status, 409, reply.text)
    XCTAssertEqual((reply.json["error"] as? [String: Any])?["code"] as? String, "collection_busy")
    XCTAssertEqual(
      try server.request("POST", "/collections/docs/rename", #"{"name": "d2"}"#).status, 409)
    reply = try server.request("GET", "/jobs/\(id)?wait=120")
    XCTAssertEqual(reply.json["state"] as? String, "succeeded", reply.text)
    let result = try XCTUnwrap(reply.json["result"] as? [String: Any])
    XCTAssertEqual(result["embedded"] as? Int, 300)
    XCTAssertEqual(result["switched"] as? Bool, true)
    XCTAssertEqual((try server.request("GET", "/jobs").json["jobs"] as? [Any])?.count, 1)

    // A failing job reports the shell's error.
    reply = try server.request("POST", "/collections/docs/train", #"{"tier": "adapter"}"#)
    reply = try server.request("GET", "/jobs/\(try XCTUnwrap(reply.json["id"] as? Int))?wait=120")
    XCTAssertEqual(reply.json["state"] as? String, "failed", reply.text)
    XCTAssertEqual(reply.json["exit_code"] as? Int, 1)
    XCTAssertTrue((reply.json["error"] as? String ?? "").contains("judged queries"), reply.text)
    XCTAssertEqual(
      try server.request("POST", "/collections/docs/train", #"{"tier": "big"}"#).status, 400)
    // Ranges are checked before a job starts: a 400 naming the option, no job.
    let jobsBefore = (try server.request("GET", "/jobs").json["jobs"] as? [Any])?.count
    for (body, message) in [
      (#"{"lr": -1}"#, "the learning rate must be positive"),
      (#"{"held_out": 1.5}"#, "held-out share must be in (0, 1)"),
      (#"{"max_seq_length": 1}"#, "max sequence length must be 2"),
      (#"{"matmul_precision": "int8"}"#, #"must be \"float32\" or \"bfloat16\""#),
      (#"{"tier": "adapter", "matmul_precision": "bfloat16"}"#, "applies to tiers"),
    ] {
      reply = try server.request("POST", "/collections/docs/train", body)
      XCTAssertEqual(reply.status, 400, body)
      XCTAssertTrue(reply.text.contains(message), reply.text)
    }
    for (body, message) in [
      (#"{"held_out": 0}"#, "held-out share must be in (0, 1)"),
      (#"{"max_escalation": 2}"#, "the maximum escalation must be in [0, 1]"),
      (#"{"max_escalation": 0.3, "min_quality": 0.9}"#, "not both"),
      (#"{"tier": "big"}"#, #"must be \"head\" or \"lora\""#),
      (#"{"lora_epochs": 500}"#, "lora_epochs"),  // had no range: a trap of the server
      (#"{"classifier": "knn"}"#, "must be one of"),
      (#"{"matmul_precision": "bfloat16"}"#, #"applies to tier \"lora\""#),
    ] {
      reply = try server.request("POST", "/routers/nobody/train", body)
      XCTAssertEqual(reply.status, 400, body)
      XCTAssertTrue(reply.text.contains(message), reply.text)
    }
    XCTAssertEqual((try server.request("GET", "/jobs").json["jobs"] as? [Any])?.count, jobsBefore)

    /// Starts a re-embed of one document per (fsync'ed) transaction, slow enough to be
    /// caught running, and waits for its first committed batch.
    func startSlowReembed(_ body: String) throws -> [String: Any] {
      let job = try server.request("POST", "/collections/docs/reembed", body).json
      let deadline = Date().addingTimeInterval(60)
      while Date() < deadline {
        let info = try server.request("GET", "/collections").array?.first?["job"] as? [String: Any]
        if (info?["vectors"] as? Int ?? 0) > 0 { return job }
        Thread.sleep(forTimeInterval: 0.05)
      }
      XCTFail("the job was never seen running: \(job)")
      return job
    }

    // Cancel: the job stops after its last commit and says so.
    let cancelled = try XCTUnwrap(
      startSlowReembed(#"{"all": true, "batch_size": 1}"#)["id"] as? Int)
    XCTAssertEqual(try server.request("POST", "/jobs/\(cancelled)/cancel").status, 200)
    reply = try server.request("GET", "/jobs/\(cancelled)?wait=60")
    XCTAssertEqual(reply.json["state"] as? String, "cancelled", reply.text)
    XCTAssertEqual(reply.json["exit_code"] as? Int, 130)

    // SIGTERM while the resumed job runs: the server interrupts it, waits, and exits 0;
    // the job's work is kept and a new server's job resumes it.
    let pid = try XCTUnwrap(startSlowReembed(#"{"batch_size": 1}"#)["pid"] as? Int)
    XCTAssertEqual(server.terminate(), 0, server.errors)
    XCTAssertNotEqual(kill(pid_t(pid), 0), 0, "the job's process is gone")
    let info = try Shell.vdb(["collections", "--db", db, "--json"])
    XCTAssertTrue(
      info.stdout.contains(#""cursor""#), "an interrupted job is recorded: \(info.stdout)")

    server = try ServerProcess(database: db)
    defer { server.stop() }
    reply = try server.request("POST", "/collections/docs/reembed", "{}")
    reply = try server.request("GET", "/jobs/\(try XCTUnwrap(reply.json["id"] as? Int))?wait=120")
    XCTAssertEqual(reply.json["state"] as? String, "succeeded", reply.text)
    let resumed = try XCTUnwrap(reply.json["result"] as? [String: Any])
    XCTAssertEqual(resumed["resumed"] as? Bool, true, reply.text)
    XCTAssertLessThan(try XCTUnwrap(resumed["embedded"] as? Int), 300)
  }

  func testRoutersAreCreatedFedTrainedAndServedOverHTTP() throws {
    let (directory, db) = try notesDatabase()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try ServerProcess(database: db)
    defer { server.stop() }

    var reply = try server.request(
      "POST", "/routers",
      #"{"name": "docs", "paths": [{"name": "storage", "cost": 1}, {"name": "search", "cost": 1}, {"name": "training", "cost": 1}, {"name": "shell", "cost": 1}, {"name": "general", "cost": 4}], "escalation": "general"}"#
    )
    XCTAssertEqual(reply.status, 201, reply.text)
    XCTAssertTrue(reply.json["active"] is NSNull, reply.text)
    reply = try server.request(
      "POST", "/routers", #"{"name": "one", "paths": [{"name": "only"}]}"#)
    XCTAssertEqual(reply.status, 400, reply.text)
    reply = try server.request("GET", "/routers/nope/versions")
    XCTAssertEqual(reply.status, 404, reply.text)
    XCTAssertEqual(
      (reply.json["error"] as? [String: Any])?["code"] as? String, "router_not_found", reply.text)

    // The project's labelled examples, as the request's "examples"; a bad one names its
    // index and nothing is imported.
    let lines = try String(
      contentsOfFile: RouteProcessTests.tools + "/route-examples.jsonl", encoding: .utf8
    ).split(separator: "\n")
    reply = try server.request(
      "POST", "/routers/docs/examples",
      #"{"examples": [{"input": "fine", "path": "shell"}, {"input": "x", "path": "web"}]}"#)
    XCTAssertEqual(reply.status, 400, reply.text)
    XCTAssertTrue(reply.text.contains("examples[1]: unknown path"), reply.text)
    reply = try server.request(
      "POST", "/routers/docs/examples", #"{"examples": [\#(lines.joined(separator: ","))]}"#)
    XCTAssertEqual(reply.status, 200, reply.text)
    XCTAssertEqual(
      (reply.json["labelled"] as? Int ?? 0) + (reply.json["outcomes"] as? Int ?? 0), lines.count)

    // Training runs as a job; the version it made serves.
    reply = try server.request(
      "POST", "/routers/docs/train", #"{"seed": 7, "classifier": "nearest_examples"}"#)
    XCTAssertEqual(reply.status, 202, reply.text)
    XCTAssertEqual(reply.json["router"] as? String, "docs")
    XCTAssertTrue(reply.json["collection"] is NSNull, reply.text)
    reply = try server.request("GET", "/jobs/\(try XCTUnwrap(reply.json["id"] as? Int))?wait=300")
    XCTAssertEqual(reply.json["state"] as? String, "succeeded", reply.text)
    let result = try XCTUnwrap(reply.json["result"] as? [String: Any])
    XCTAssertEqual(result["activated"] as? Bool, true, reply.text)
    XCTAssertEqual(result["classifier"] as? String, "nearest_examples", reply.text)
    reply = try server.request("GET", "/routers/docs/versions")
    XCTAssertEqual(reply.json["active"] as? Int, 1, reply.text)

    reply = try server.request(
      "POST", "/routers/docs/route",
      #"{"inputs": ["how do I rebuild the BM25 index", "fine-tune the encoder from feedback"]}"#)
    XCTAssertEqual(reply.status, 200, reply.text)
    let decisions = try XCTUnwrap(reply.json["decisions"] as? [[String: Any]])
    XCTAssertEqual(decisions.count, 2)
    let logID = try XCTUnwrap(decisions[0]["log_id"] as? Int)
    XCTAssertEqual(decisions[0]["version"] as? Int, 1)
    reply = try server.request(
      "POST", "/routers/docs/outcomes",
      #"{"log_id": \#(logID), "path": "search", "outcome": "good"}"#)
    XCTAssertEqual(reply.json["log_id"] as? Int, logID, reply.text)
    reply = try server.request(
      "POST", "/routers/docs/outcomes",
      #"{"log_id": \#(logID), "path": "search", "outcome": "fine"}"#)
    XCTAssertEqual(reply.status, 400, reply.text)
    for version in ["-1", "0", "99", "4294967297"] {
      reply = try server.request("POST", "/routers/docs/activate", #"{"version": \#(version)}"#)
      XCTAssertEqual(reply.status, 400, "version \(version): \(reply.text)")
    }
    reply = try server.request("GET", "/routers/docs/log?pending=true")
    let pending = try XCTUnwrap(reply.json["entries"] as? [[String: Any]], reply.text)
    XCTAssertEqual(pending.map { $0["input"] as? String }, ["fine-tune the encoder from feedback"])
    XCTAssertEqual(try server.request("GET", "/routers/docs/log?limit=0").status, 400)
    reply = try server.request("GET", "/routers/docs/diagnose")
    XCTAssertEqual(reply.json["judged"] as? Int, 1, reply.text)
    reply = try server.request("GET", "/routers")
    XCTAssertEqual(
      (reply.json["routers"] as? [[String: Any]])?.first?["active"] as? Int, 1, reply.text)

    reply = try server.request("DELETE", "/routers/docs")
    XCTAssertEqual(reply.json["dropped"] as? String, "docs", reply.text)
    XCTAssertEqual((try server.request("GET", "/routers").json["routers"] as? [Any])?.count, 0)
    reply = try server.request("DELETE", "/routers/docs")
    XCTAssertEqual(reply.status, 404, reply.text)
    reply = try server.request("POST", "/routers/docs/route", #"{"inputs": ["x"]}"#)
    XCTAssertEqual(reply.status, 404, reply.text)
  }

  /// A client that opens a connection and stops sending is cut off after the idle
  /// timeout, and while it hangs, other clients are served.
  func testASlowClientIsCutOffWhileOthersAreServed() throws {
    let (directory, db) = try notesDatabase()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try ServerProcess(database: db, extra: ["--idle-timeout", "2"])
    defer { server.stop() }
    let port = try XCTUnwrap(server.base.split(separator: ":").last.flatMap { UInt16($0) })

    // Twenty connections that each send half a request and stall.
    let stalled = try (0..<20).map { _ in
      try RawConnection(port: port, send: "POST /collections HTTP/1.1\r\nHost: x\r\nContent-Le")
    }
    let started = Date()
    XCTAssertEqual(try server.request("GET", "/status").status, 200)
    XCTAssertLessThan(Date().timeIntervalSince(started), 2, "served beside the stalled clients")
    for connection in stalled {
      XCTAssertTrue(connection.waitForClose(seconds: 15), "the stalled connection is closed")
    }
    XCTAssertLessThan(Date().timeIntervalSince(started), 15)
    XCTAssertEqual(try server.request("GET", "/collections").status, 200)
  }

  /// Malformed framing, a wrong method, a bad job id and CONNECT get documented
  /// answers in the error shape, not 500s or hangs (red-team findings 4 and 7).
  func testProtocolErrorsGetDocumentedAnswers() throws {
    let (directory, db) = try notesDatabase()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try ServerProcess(database: db)
    defer { server.stop() }
    let port = try XCTUnwrap(server.base.split(separator: ":").last.flatMap { UInt16($0) })
    XCTAssertEqual(
      try server.request("POST", "/collections", #"{"name": "v", "vectors": 4}"#).status, 201)

    // Bodies the HTTP framing cannot deliver: 400 invalid_request, nothing of the parser.
    let body = #"{"vector":[1,2,3,4],"k":1}"#
    let head = "POST /collections/v/query HTTP/1.1\r\nHost: x\r\n"
    for request in [
      head + "Content-Length: 100\r\n\r\n" + body,
      head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n" + body + "\r\n0\r\n\r\n",
      head + "Transfer-Encoding: chunked\r\n\r\n5\r\n" + body + "\r\n0\r\n\r\n",
      head + "Transfer-Encoding: chunked\r\n\r\n1a\r\n" + body + "\r\n",
      head + "Transfer-Encoding: gzip\r\n\r\n" + body,
    ] {
      let connection = try RawConnection(port: port, send: request)
      connection.finishSending()
      let answer = connection.received(seconds: 10)
      XCTAssertTrue(answer.hasPrefix("HTTP/1.1 400"), "\(request): \(answer)")
      XCTAssertTrue(answer.contains(#""code":"invalid_request""#), answer)
    }
    XCTAssertFalse(server.errors.contains("error"), server.errors)

    // A path asked with a method it does not answer: 405 with Allow; HEAD is GET's.
    var reply = try server.request("DELETE", "/status")
    XCTAssertEqual(reply.status, 405, reply.text)
    XCTAssertEqual(
      (reply.json["error"] as? [String: Any])?["code"] as? String, "method_not_allowed")
    XCTAssertEqual(try server.request("GET", "/collections/v/query").status, 405)
    XCTAssertEqual(try server.request("GET", "/no/such/route").status, 404)
    var answer = try RawConnection(
      port: port, send: "PUT /collections HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ).received(seconds: 10)
    XCTAssertTrue(answer.lowercased().contains("allow: get, post, head"), answer)
    answer = try RawConnection(
      port: port, send: "HEAD /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ).received(seconds: 10)
    XCTAssertTrue(answer.hasPrefix("HTTP/1.1 200"), answer)
    XCTAssertTrue(answer.hasSuffix("\r\n\r\n"), "no body: \(answer)")

    // Job ids: a word is a 400 naming the id, a number past Int's range no job.
    reply = try server.request("GET", "/jobs/abc")
    XCTAssertEqual(reply.status, 400, reply.text)
    XCTAssertEqual((reply.json["error"] as? [String: Any])?["code"] as? String, "invalid_input")
    XCTAssertTrue(reply.text.contains("job id"), reply.text)
    reply = try server.request("POST", "/jobs/99999999999999999999/cancel")
    XCTAssertEqual(reply.status, 404, reply.text)
    XCTAssertEqual((reply.json["error"] as? [String: Any])?["code"] as? String, "job_not_found")

    // CONNECT: answered and closed at once, not left open until the idle timeout (60 s).
    let started = Date()
    answer = try RawConnection(port: port, send: "CONNECT /status HTTP/1.1\r\nHost: x\r\n\r\n")
      .received(seconds: 20)
    XCTAssertTrue(answer.hasPrefix("HTTP/1.1 405"), answer)
    XCTAssertLessThan(Date().timeIntervalSince(started), 10)
  }

  /// Names that look like options reach jobs intact; out-of-range versions and unknown
  /// fields are 400s before any job starts (red-team finding 5).
  func testJobsTakeAnyNameAndCheckTheirRequests() throws {
    let (directory, db) = try notesDatabase()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try ServerProcess(database: db)
    defer { server.stop() }

    for name in ["-x", "--help"] {
      XCTAssertEqual(
        try server.request("POST", "/collections", #"{"name": "\#(name)"}"#).status, 201)
      var reply = try server.request(
        "POST", "/collections/\(name)/documents",
        #"{"documents": [{"id": "a", "text": "a name like an option"}]}"#)
      XCTAssertEqual(reply.status, 200, reply.text)
      reply = try server.request("POST", "/collections/\(name)/reembed", #"{"all": true}"#)
      XCTAssertEqual(reply.status, 202, reply.text)
      reply = try server.request("GET", "/jobs/\(try XCTUnwrap(reply.json["id"] as? Int))?wait=120")
      XCTAssertEqual(reply.json["state"] as? String, "succeeded", "\(name): \(reply.text)")
    }
    let paths = #"[{"name": "a"}, {"name": "b"}]"#
    XCTAssertEqual(
      try server.request("POST", "/routers", #"{"name": "-r", "paths": \#(paths)}"#).status, 201)
    var reply = try server.request("POST", "/routers/-r/train", "{}")
    reply = try server.request("GET", "/jobs/\(try XCTUnwrap(reply.json["id"] as? Int))?wait=120")
    XCTAssertEqual(reply.json["state"] as? String, "failed", reply.text)
    XCTAssertTrue((reply.json["error"] as? String ?? "").contains("too few examples"), reply.text)

    let jobsBefore = (try server.request("GET", "/jobs").json["jobs"] as? [Any])?.count
    for (path, body) in [
      ("/collections/-x/models/activate", #"{"version": 0}"#),
      ("/collections/-x/models/activate", #"{"version": -1}"#),
      ("/collections/-x/models/rollback", #"{"bogus": 1}"#),
      ("/routers/-r/rollback", #"{"bogus": 1}"#),
    ] {
      reply = try server.request("POST", path, body)
      XCTAssertEqual(reply.status, 400, "\(path) \(body): \(reply.text)")
    }
    XCTAssertEqual((try server.request("GET", "/jobs").json["jobs"] as? [Any])?.count, jobsBefore)
    reply = try server.request("POST", "/collections/-x/models/rollback", "{}")
    XCTAssertEqual(reply.status, 202, reply.text)
  }

  /// Messages name the request's fields, a taken router name is a 409, an empty batch
  /// is fine for every collection, and names are compared by bytes (red-team findings 3
  /// and 9).
  func testAnswersSpeakInTheRequestsTerms() throws {
    let (directory, db) = try notesDatabase()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try ServerProcess(database: db)
    defer { server.stop() }
    XCTAssertEqual(
      try server.request("POST", "/collections", #"{"name": "v", "vectors": 4}"#).status, 201)
    XCTAssertEqual(
      try server.request("POST", "/collections", #"{"name": "t", "no_vectors": true}"#).status,
      201)

    func expect(
      _ path: String, _ body: String, _ status: Int, _ words: [String], line: UInt = #line
    ) throws {
      let reply = try server.request("POST", path, body)
      XCTAssertEqual(reply.status, status, reply.text, line: line)
      for word in words {
        XCTAssertTrue(reply.text.contains(word), "\(word): \(reply.text)", line: line)
      }
    }
    for collection in ["v", "t"] {
      try expect("/collections/\(collection)/documents", #"{"documents": []}"#, 200, ["0"])
    }
    // An id sent twice is one document, its last entry.
    let twice = try server.request(
      "POST", "/collections/t/documents",
      #"{"documents": [{"id": "d", "text": "first"}, {"id": "d", "text": "last"}]}"#)
    XCTAssertEqual(twice.json["upserted"] as? Int, 1, twice.text)
    XCTAssertEqual(twice.json["superseded"] as? Int, 1, twice.text)
    let last = try server.request("GET", "/collections/t/documents/d").json
    XCTAssertEqual(last["text"] as? String, "last")
    // An upsert's vectors are read straight into floats; anything else about them is
    // read and refused as any other field is. (The metadata's "vector" is metadata.)
    let upsert = "/collections/v/documents"
    try expect(
      upsert,
      #"{"documents": [{"id": "a", "vector": [1, 2e0, -3, 0.25]}, "#
        + #"{"vector": [0, 1, 0, 0], "id": "b", "metadata": {"vector": [9]}}]}"#, 200, ["2"])
    let stored = try server.request("GET", "/collections/v/documents/b?include=vector").json
    XCTAssertEqual(stored["vector"] as? [Double], [0, 1, 0, 0])
    XCTAssertEqual((stored["metadata"] as? [String: Any])?["vector"] as? [Int], [9])
    for (documents, words) in [
      (#"[{"id": "c", "vector": [1, "2", 3, 4]}]"#, ["documents[0]", "array of numbers"]),
      (#"[{"id": "c", "vector": [1, 2, 3, 4], "vector": [1]}]"#, ["byte 51", "twice"]),
      (#"[{"id": "c", "vector": [1, 2 3, 4]}]"#, ["byte 43", "where ',' or ']'"]),
      (#"[{"id": "c", "vector": [1, 2, 3, 4]}, {"id": "d", "text": "t"}]"#, ["1 of 2"]),
      (#"[{"id": "c", "vector": []}]"#, ["a vector of 0 floats"]),
      (#"[7]"#, ["documents[0] must be a JSON object"]),
      (#"{"id": "c"}"#, ["must be an array of documents"]),
    ] {
      try expect(upsert, #"{"documents": \#(documents)}"#, 400, words)
    }
    XCTAssertEqual(try server.request("GET", "/collections/v/count").json["count"] as? Int, 2)
    try expect(
      "/collections/v/query", #"{"vector": [1, 2, 3, 4], "k": 1e15}"#, 400, ["1...10000"])
    try expect(
      "/collections/v/query", #"{"vector": [1, 2, 3, 4], "mode": "hybrid"}"#, 400,
      [#"\"mode\": \"dense\""#])
    let router = #"{"name": "r", "paths": [{"name": "a"}, {"name": "b"}]}"#
    try expect("/routers", router, 201, [])
    try expect("/routers", router, 409, ["router_exists"])
    try expect(
      "/routers/r/outcomes", #"{"input": "x", "path": "nopath", "outcome": "good"}"#, 400,
      [#"field \"path\""#, "nopath"])
    try expect(
      "/routers/r/outcomes", #"{"input": " ", "path": "a", "outcome": "good"}"#, 400,
      [#"field \"input\""#])
    try expect("/routers/r/train", #"{"lr": -1}"#, 400, [#"field \"lr\""#])
    try expect("/routers/r/train", #"{"held_out": 1.5}"#, 400, [#"field \"held_out\""#])

    // "é" composed and decomposed: two names, and each answer describes its own.
    for name in ["e\u{301}", "\u{e9}"] {
      let reply = try server.request("POST", "/collections", #"{"name": "\#(name)"}"#)
      XCTAssertEqual(reply.status, 201, reply.text)
      XCTAssertEqual(
        (reply.json["name"] as? String).map { Array($0.utf8) }, Array(name.utf8), reply.text)
    }
  }

  private func percent(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
  }
}

struct ServerDidNotStart: Error {
  var output: String
}

/// A `vdb serve --port 0` child process and a curl client for it.
final class ServerProcess {
  let process = Process()
  let base: String
  private let errorFile: String
  private var token: String?

  init(database: String, extra: [String] = []) throws {
    errorFile = NSTemporaryDirectory() + "vdb-serve-err-" + UUID().uuidString
    _ = FileManager.default.createFile(atPath: errorFile, contents: nil)
    process.executableURL = URL(fileURLWithPath: Shell.binary)
    process.arguments = ["serve", "--db", database, "--port", "0"] + extra
    let out = Pipe()
    process.standardOutput = out
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorFile))
    try process.run()
    // The first line names the bound address: "vdb serve: http://127.0.0.1:PORT (…)".
    let text = try Shell.firstLine(of: out.fileHandleForReading)
    guard let url = text.split(separator: " ").first(where: { $0.hasPrefix("http://") }) else {
      process.waitUntilExit()
      throw ServerDidNotStart(
        output: text + ((try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? ""))
    }
    base = String(url)
    if let index = extra.firstIndex(of: "--token-file") {
      token = try String(contentsOfFile: extra[index + 1], encoding: .utf8)
        .trimmingCharacters(in: .whitespacesAndNewlines)
    }
  }

  var errors: String { (try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? "" }

  struct Reply {
    var status: Int
    var text: String
    var value: Any?
    var json: [String: Any] { value as? [String: Any] ?? [:] }
    var array: [[String: Any]]? { value as? [[String: Any]] }
  }

  /// `METHOD base+path` with `body`, sending the server's token unless `token` says
  /// otherwise (`.some(nil)`: none).
  func request(_ method: String, _ path: String, _ body: String? = nil, token: String?? = .none)
    throws -> Reply
  {
    try request(method, path, bytes: body.map { Data($0.utf8) }, token: token)
  }

  /// `METHOD base+path` with a body of any bytes.
  func request(_ method: String, _ path: String, bytes body: Data?, token: String?? = .none)
    throws -> Reply
  {
    let curl = Process()
    curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    var arguments = ["-s", "-X", method, "-w", "\n%{http_code}", base + path]
    if let token = token ?? self.token { arguments += ["-H", "Authorization: Bearer \(token)"] }
    let input = Pipe()
    if body != nil {
      arguments += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
      curl.standardInput = input
    }
    curl.arguments = arguments
    let out = Pipe()
    curl.standardOutput = out
    try curl.run()
    if let body {
      DispatchQueue.global().async {
        input.fileHandleForWriting.write(body)
        try? input.fileHandleForWriting.close()
      }
    }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    curl.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    let split = text.range(of: "\n", options: .backwards)
    let payload = split.map { String(text[..<$0.lowerBound]) } ?? ""
    let status = Int(split.map { String(text[$0.upperBound...]) } ?? "") ?? 0
    return Reply(
      status: status, text: payload,
      value: try? JSONSerialization.jsonObject(
        with: Data(payload.utf8), options: [.fragmentsAllowed]))
  }

  /// SIGTERM, then the exit status (waits for the graceful shutdown).
  func terminate() -> Int32 {
    process.terminate()
    process.waitUntilExit()
    return process.terminationStatus
  }

  func stop() {
    if process.isRunning { _ = terminate() }
    try? FileManager.default.removeItem(atPath: errorFile)
  }
}

/// A TCP connection to the loopback server that sends some bytes and then nothing.
final class RawConnection {
  private let socket: Int32

  init(port: UInt16, send text: String) throws {
    socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
    _ = Array(text.utf8).withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, 0) }
  }

  /// Ends the sending side (the server reads end of file).
  func finishSending() { shutdown(socket, Int32(SHUT_WR)) }

  /// What the server sends until it closes the connection or `seconds` pass.
  func received(seconds: Int) -> String {
    var timeout = timeval(tv_sec: seconds, tv_usec: 0)
    setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let count = recv(socket, &buffer, buffer.count, 0)
      if count <= 0 { return String(decoding: data, as: UTF8.self) }
      data += buffer[..<count]
    }
  }

  /// Whether the server closes the connection (or answers and closes) within `seconds`.
  func waitForClose(seconds: Int) -> Bool {
    var timeout = timeval(tv_sec: seconds, tv_usec: 0)
    setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let count = recv(socket, &buffer, buffer.count, 0)
      if count == 0 { return true }  // closed by the server
      if count < 0 { return errno == ECONNRESET }
    }
  }

  deinit { close(socket) }
}
