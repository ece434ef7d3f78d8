import Foundation
import Hummingbird
import NIOCore
import VectorDB

/// The endpoints (docs/server.md). Each handler reads its input, runs the library call
/// on the thread pool and answers in the shell's `--json` shapes.
struct Routes: Sendable {
  let database: Database
  let jobs: JobRunner
  let maxBodyBytes: Int

  typealias Context = ServerContext

  /// The liveness check's path: the one request that needs no token.
  static let healthPath = "/health"

  /// Registers every endpoint on `router`, grouped by resource, and 405 for the methods
  /// each path does not answer.
  func add(to router: Hummingbird.Router<Context>) {
    let endpoints = Endpoints(router)
    addService(to: endpoints)
    addCollections(to: endpoints)
    addDocuments(to: endpoints)
    addSearch(to: endpoints)
    addModels(to: endpoints)
    addRouters(to: endpoints)
    addJobs(to: endpoints)
    endpoints.refuseOtherMethods()
  }

  // MARK: Routes by resource

  /// The API's description, a liveness check and the database's status.
  private func addService(to router: Endpoints) {
    // For load balancers and orchestrators: answers while the server runs, without a
    // token (TokenMiddleware) and without reading the database.
    router.get(RouterPath(Routes.healthPath)) { _, _ in JSONResponse.make(["status": "ok"]) }
    router.get("/openapi.json") { _, _ in
      Response(
        status: .ok, headers: [.contentType: "application/json"],
        body: ResponseBody(byteBuffer: ByteBuffer(bytes: PackageResources.openapi_json)))
    }
    router.get("/status") { _, _ in
      try await blocking { JSONResponse.make(try database.status()) }
    }
  }

  /// Collections: list, create, drop, rename.
  private func addCollections(to router: Endpoints) {
    router.get("/collections") { _, _ in
      try await blocking { JSONResponse.make(try database.collections()) }
    }
    router.post("/collections") { request, _ in
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      return try await blocking { try createCollection(body) }
    }
    router.delete("/collections/{collection}") { request, context in
      let name = try context.pathParameter("collection")
      let keepLog = try request.flag("keep_log")
      let force = try request.flag("force")
      if !force { try await jobs.checkIdle(.collection(name)) }
      return try await blocking {
        try database.dropCollection(name, keepLog: keepLog, force: force)
        return JSONResponse.make(["dropped": name])
      }
    }
    router.post("/collections/{collection}/rename") { request, context in
      let name = try context.pathParameter("collection")
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      try body.check(["name"])
      let newName = try body.required("name", body.string)
      try await jobs.checkIdle(.collection(name))
      return try await blocking {
        try database.renameCollection(name, to: newName)
        return JSONResponse.make(["renamed": name, "name": newName])
      }
    }
  }

  /// A collection's documents: upsert, list, get, delete, count.
  private func addDocuments(to router: Endpoints) {
    router.post("/collections/{collection}/documents") { request, context in
      let collection = try collection(context)
      // The body's vectors are read as floats, and its other JSON values let go once the
      // documents are made from them, before the write.
      let batch: (documents: [Document], vectors: [[Float]]?)
      do {
        let (body, vectors) = try await RequestBody.readDocuments(request, limit: maxBodyBytes)
        batch = try await blocking { try documents(in: body, vectors: vectors) }
      }
      // An empty batch writes nothing, whether the collection takes texts or vectors.
      if !batch.documents.isEmpty {
        try await blocking { try collection().upsert(batch.documents, vectors: batch.vectors) }
      }
      // An id sent twice is written once, from its last entry (as `vdb import` does).
      let distinct = Set(batch.documents.map(\.id)).count
      return JSONResponse.make([
        "upserted": distinct, "superseded": batch.documents.count - distinct,
      ])
    }
    router.get("/collections/{collection}/documents") { request, context in
      let collection = try collection(context)
      let limit = try request.parameter("limit").map { try count($0, "limit") } ?? 20
      let after = request.parameter("after")
      let filter = try request.parameter("filter").map { try Filter(json: $0) }
      let withVectors = try includesVector(request.parameter("include"))
      return try await blocking {
        let collection = try collection()
        let documents =
          try filter.map { try collection.documents(matching: $0, after: after, limit: limit) }
          ?? collection.documents(after: after, limit: limit)
        return try rows(documents, from: collection, withVectors: withVectors)
      }
    }
    router.post("/collections/{collection}/documents/get") { request, context in
      let collection = try collection(context)
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      try body.check(["ids", "include"])
      let ids = try body.required("ids", body.strings)
      let withVectors = try includesVector(body.strings("include")?.joined(separator: ","))
      return try await blocking {
        let collection = try collection()
        let found = try collection.get(ids)
        let vectors = withVectors ? try collection.vectors(ids) : nil
        let documents = found.enumerated().map { index, document in
          document.map { DocumentRow(document: $0, vector: vectors.map { $0[index] }) }
        }
        return JSONResponse.make(DocumentList(documents: documents))
      }
    }
    router.get("/collections/{collection}/documents/{id}") { request, context in
      let collection = try collection(context)
      let id = try context.pathParameter("id")
      let withVectors = try includesVector(request.parameter("include"))
      return try await blocking {
        let collection = try collection()
        guard let document = try collection.get(id) else {
          throw VectorDBError.documentNotFound(id: id, collection: collection.name)
        }
        let vector = withVectors ? try collection.vectors([id])[0] : nil
        return JSONResponse.make(
          DocumentRow(document: document, vector: withVectors ? .some(vector) : nil))
      }
    }
    router.delete("/collections/{collection}/documents/{id}") { _, context in
      let collection = try collection(context)
      let id = try context.pathParameter("id")
      return try await blocking {
        let deleted = try collection().delete([id])
        return JSONResponse.make(DeleteReport(deleted: deleted, matched: deleted, ids: nil))
      }
    }
    router.post("/collections/{collection}/documents/delete") { request, context in
      let collection = try collection(context)
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      try body.check(["ids", "filter", "dry_run"])
      let ids = try body.strings("ids")
      let filter = try body.filter()
      let dryRun = try body.bool("dry_run") ?? false
      guard (ids == nil) != (filter == nil) else {
        throw APIError.badRequest("request body: give \"ids\" or \"filter\", not both nor neither")
      }
      if dryRun && filter == nil {
        throw APIError.badRequest("request body: \"dry_run\" goes with \"filter\"")
      }
      return try await blocking {
        let collection = try collection()
        if let filter {
          let matched = try collection.delete(matching: filter, dryRun: dryRun)
          return JSONResponse.make(
            DeleteReport(deleted: dryRun ? 0 : matched.count, matched: matched.count, ids: matched))
        }
        let deleted = try collection.delete(ids!)
        return JSONResponse.make(DeleteReport(deleted: deleted, matched: deleted, ids: nil))
      }
    }
    router.get("/collections/{collection}/count") { request, context in
      let collection = try collection(context)
      let filter = try request.parameter("filter").map { try Filter(json: $0) }
      return try await blocking {
        let collection = try collection()
        let count = try filter.map { try collection.count(matching: $0) } ?? collection.count()
        return JSONResponse.make(["count": count])
      }
    }
  }

  /// Search, feedback, the query log and evaluation.
  private func addSearch(to router: Endpoints) {
    router.post("/collections/{collection}/query") { request, context in
      let collection = try collection(context)
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      return try await database.run { _ in try query(body, in: collection()) }
    }
    router.post("/feedback") { request, _ in
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      return try await blocking { try feedback(body) }
    }
    router.get("/log") { request, _ in
      let collection = request.parameter("collection")
      let after = try request.parameter("after").map { try count($0, "after", from: 0) } ?? 0
      let limit = try request.parameter("limit").map { try count($0, "limit") } ?? 50
      return try await blocking {
        let entries = try database.logEntries(
          collection: collection, after: UInt64(after), limit: limit)
        return JSONResponse.make(["entries": entries])
      }
    }
    router.get("/log/retention") { _, _ in
      try await blocking { JSONResponse.make(try database.logRetention()) }
    }
    router.put("/log/retention") { request, _ in
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      try body.check(["max_entries", "max_age"])
      let maxEntries = try body.count("max_entries")
      let maxAge = try body.double("max_age")  // a negative age: setLogRetention's 400
      return try await blocking {
        // A field left out keeps its value; `null` lifts the limit.
        var retention = try database.logRetention()
        if body.fields["max_entries"] != nil { retention.maxEntries = maxEntries }
        if body.fields["max_age"] != nil { retention.maxAge = maxAge }
        try database.setLogRetention(retention)
        return JSONResponse.make(retention)
      }
    }
    router.post("/collections/{collection}/eval") { request, context in
      let collection = try collection(context)
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      return try await blocking { try evaluate(body, in: collection()) }
    }
  }

  /// Models: the list, activation and rollback, and the jobs that make them (training,
  /// re-embedding).
  private func addModels(to router: Endpoints) {
    router.get("/models") { _, _ in
      try await blocking { JSONResponse.make(["models": try database.modelListing()]) }
    }
    router.post("/collections/{collection}/models/activate") { request, context in
      let name = try context.pathParameter("collection")
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      try body.check(["version"])
      // A model version's range (from 1): 0 or -1 is a 400 here, not a job that fails.
      let version = try body.required("version") { try body.count($0, option: "--model") }
      return try await startJob(
        "activate", name,
        ["models", "activate", String(version), commandOption("collection", name)])
    }
    router.post("/collections/{collection}/models/rollback") { request, context in
      let name = try context.pathParameter("collection")
      try await RequestBody.read(request, limit: maxBodyBytes).check([])
      return try await startJob(
        "rollback", name, ["models", "rollback", commandOption("collection", name)])
    }
    router.post("/collections/{collection}/train") { request, context in
      let name = try context.pathParameter("collection")
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      return try await startJob(
        "train", name, ["train", commandOption("collection", name)] + trainArguments(body))
    }
    router.post("/collections/{collection}/reembed") { request, context in
      let name = try context.pathParameter("collection")
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      try body.check(["model", "all", "batch_size", "cancel"])
      var arguments = ["reembed", commandOption("collection", name)]
      for key in ["model", "batch_size"] {
        if let value = try body.count(key) { arguments.append(commandOption(key, value)) }
      }
      if try body.bool("all") == true { arguments.append("--all") }
      if try body.bool("cancel") == true { arguments.append("--cancel") }
      return try await startJob("reembed", name, arguments)
    }
  }

  /// Jobs: the list, one job (with long polling), cancel.
  private func addJobs(to router: Endpoints) {
    router.get("/jobs") { _, _ in JSONResponse.make(["jobs": await jobs.list()]) }
    router.get("/jobs/{id}") { request, context in
      let id = try jobID(context)
      // ?wait=SECONDS: answer when the job ends or the time is up (long polling).
      let wait = try request.parameter("wait").map { try count($0, "wait", from: 0) } ?? 0
      let deadline = Date().addingTimeInterval(Double(min(wait, 600)))
      var job = try await jobs.job(id)
      while job.state == .running && Date() < deadline {
        try await Task.sleep(nanoseconds: 100_000_000)
        job = try await jobs.job(id)
      }
      return JSONResponse.make(job)
    }
    router.post("/jobs/{id}/cancel") { _, context in
      let id = try jobID(context)
      return JSONResponse.make(try await jobs.cancel(id))
    }
  }

  // MARK: Handlers

  /// The job id in the path: 400 for what is not a number, 404 for one no job has
  /// (beyond Int's range included).
  private func jobID(_ context: Context) throws -> Int {
    let raw = try context.parameters.require("id")
    guard !raw.isEmpty,
      raw.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
    else {
      throw APIError.badRequest("path: a job id is a positive integer (got \"\(raw.prefix(40))\")")
    }
    guard let id = Int(raw) else { throw JobRunner.notFound(raw) }
    return id
  }

  /// The collection named in the path, opened on the thread pool (a function, so the
  /// lookup's storage errors surface there too).
  private func collection(_ context: Context) throws -> @Sendable () throws -> DocumentCollection {
    let name = try context.pathParameter("collection")
    return { try database.collection(name, create: false) }
  }

  private func createCollection(_ body: RequestBody) throws -> Response {
    try body.check(["name", "vectors", "metric", "model", "no_vectors"])
    let name = try body.required("name", body.string)
    let dimension = try body.int("vectors")
    let model = try body.count("model")
    let noVectors = try body.bool("no_vectors") ?? false
    let metric = try body.string("metric").map {
      try Metric(rawValue: $0)
        ?? {
          throw APIError.badRequest(
            "request body: field \"metric\" must be \"cosine\", \"dot\" or \"l2\"")
        }()
    }
    if [dimension != nil, model != nil, noVectors].filter({ $0 }).count > 1 {
      throw APIError.badRequest(
        "request body: give at most one of \"vectors\", \"model\", \"no_vectors\"")
    }
    let options =
      dimension.map { CollectionOptions.vectors(dimension: $0, metric: metric ?? .cosine) }
      ?? CollectionOptions(
        vectors: noVectors ? .none : .model(version: model), metric: metric)
    let collection = try database.createCollection(name, options: options)
    // By bytes, as storage compares names: Swift's == would take "e\u{301}" for "é".
    let info = try database.collections().first { $0.name.utf8.elementsEqual(collection.name.utf8) }
    return JSONResponse.make(info, status: .created)
  }

  /// The documents of an upsert body, with their vectors when every one has a vector
  /// (`vectors`: those `RequestBody.readDocuments` read as floats, by document).
  private func documents(in body: RequestBody, vectors floats: [Int: [Float]]) throws -> (
    documents: [Document], vectors: [[Float]]?
  ) {
    try body.check(["documents"])
    guard case .array(let items)? = body.value("documents") else {
      throw APIError.badRequest("request body: field \"documents\" must be an array of documents")
    }
    var documents: [Document] = []
    var vectors: [[Float]] = []
    for (index, item) in items.enumerated() {
      let place = "request body: documents[\(index)]"
      guard case .object(let fields) = item else {
        throw APIError.badRequest("\(place) must be a JSON object")
      }
      let document = RequestBody(fields: fields)
      do {
        try document.check(["id", "text", "metadata", "vector"])
        let id = try document.required("id", document.string)
        let vector = try floats[index] ?? document.vector("vector")
        // An upsert replaces the whole document: without a vector, a missing text would
        // replace the stored one with "" and embed that.
        let text =
          try vector == nil ? document.required("text", document.string) : document.string("text")
        documents.append(
          Document(id: id, text: text ?? "", metadata: try document.object("metadata") ?? [:]))
        if let vector { vectors.append(vector) }
      } catch let error as APIError {
        throw APIError.badRequest(
          error.message.replacingOccurrences(of: "request body:", with: "\(place):"))
      }
    }
    guard vectors.isEmpty || vectors.count == documents.count else {
      throw APIError.badRequest(
        "request body: give a \"vector\" with every document or with none (\(vectors.count) of \(documents.count) have one)"
      )
    }
    return (documents, vectors.isEmpty ? nil : vectors)
  }

  private func query(_ body: RequestBody, in collection: DocumentCollection) throws -> Response {
    try body.check([
      "text", "vector", "k", "ef", "filter", "mode", "fusion", "alpha", "exact", "log",
    ])
    let text = try body.string("text")
    let vector = try body.vector("vector")
    guard (text == nil) != (vector == nil) else {
      throw APIError.badRequest("request body: give \"text\" or \"vector\", not both nor neither")
    }
    let search = try body.searchMode()
    try checkTextIndex(for: search.mode, in: collection)
    let options = QueryOptions(
      k: try body.count("k") ?? 10, ef: try body.count("ef") ?? 64,
      filter: try body.filter(), exact: try body.bool("exact") ?? false,
      log: try body.bool("log") ?? true, mode: search.mode, fusion: search.fusion)
    let result =
      try text.map { try collection.query(texts: [$0], options: options)[0] }
      ?? collection.query(vectors: [vector!], options: options)[0]
    return JSONResponse.make(result)
  }

  private func feedback(_ body: RequestBody) throws -> Response {
    try body.check(["log_id", "doc", "not_relevant", "collection", "query", "docs"])
    if let logID = try body.int("log_id") {
      guard logID > 0 else {
        throw APIError.badRequest("request body: \"log_id\" must be positive")
      }
      let document = try body.required("doc", body.string)
      guard let name = try body.string("collection") ?? database.logEntry(UInt64(logID))?.collection
      else { throw VectorDBError.logEntryNotFound(UInt64(logID)) }
      let kind = try database.collection(name, create: false).feedback(
        logID: UInt64(logID), documentID: document,
        relevant: !(try body.bool("not_relevant") ?? false))
      return JSONResponse.make(["recorded": kind.rawValue])
    }
    let query = try body.string("query")
    let docs = try body.strings("docs")
    guard let query, let docs, !docs.isEmpty, let name = try body.string("collection") else {
      throw APIError.badRequest(
        "request body: give \"log_id\" and \"doc\", or \"collection\", \"query\" and \"docs\" (a judgement)"
      )
    }
    let id = try database.collection(name, create: false).judge(
      query: query, relevant: Dictionary(docs.map { ($0, 1) }, uniquingKeysWith: max))
    return JSONResponse.make(["log_id": Int(id)])
  }

  private func evaluate(_ body: RequestBody, in collection: DocumentCollection) throws -> Response {
    try body.check([
      "queries", "qrels", "from_log", "unseen", "exact", "ef", "mode", "fusion", "alpha",
    ])
    let input: (queries: [String: String], qrels: [String: [String: Int]])
    let unseen = try body.bool("unseen") ?? false
    var inSample: Int?  // from the log: the queries the model was fitted on
    if try body.bool("from_log") == true {
      let logged = try collection.loggedJudgements(unseen: unseen)
      input = (logged.queries, logged.qrels)
      inSample = logged.inSample
    } else if unseen {
      throw APIError.badRequest("request body: \"unseen\" goes with \"from_log\": true")
    } else {
      guard let queries = try body.object("queries"), let qrels = try body.object("qrels") else {
        throw APIError.badRequest(
          "request body: give \"from_log\": true, or \"queries\" ({id: text}) and \"qrels\" ({query id: {doc id: grade}})"
        )
      }
      input = (try textMap(queries), try gradeMap(qrels))
    }
    let search = try body.searchMode()
    try checkTextIndex(for: search.mode, in: collection)
    let report = try collection.evaluate(
      queries: input.queries, qrels: input.qrels, exact: try body.bool("exact") ?? false,
      ef: try body.count("ef") ?? 64, mode: search.mode, fusion: search.fusion)
    var object = report.metrics
    object["queries"] = Double(report.queries)
    object["in_sample"] = inSample.map(Double.init)
    return JSONResponse.make(object)
  }

  private func textMap(_ object: [String: JSONValue]) throws -> [String: String] {
    try object.mapValues {
      guard case .string(let text) = $0 else {
        throw APIError.badRequest("request body: \"queries\" maps query ids to texts")
      }
      return text
    }
  }

  private func gradeMap(_ object: [String: JSONValue]) throws -> [String: [String: Int]] {
    let wrong = APIError.badRequest(
      "request body: \"qrels\" maps query ids to {document id: integer grade}")
    return try object.mapValues { value in
      guard case .object(let grades) = value else { throw wrong }
      return try grades.mapValues { grade in
        guard case .number(let number) = grade, let integer = Int(exactly: number) else {
          throw wrong
        }
        return integer
      }
    }
  }

  /// The `vdb train` options a request may set, as its command-line arguments.
  private func trainArguments(_ body: RequestBody) throws -> [String] {
    let counts = [
      "epochs", "batch_size", "mini_batch", "lora_rank", "hard_negatives", "mining_depth",
      "folds", "gate_pool", "gate_sample", "checkpoint_every",
    ]
    let numbers = ["lr", "held_out"]
    let flags = ["force", "resume", "keep_rejected"]
    try body.check(
      Set(counts + numbers + flags + ["tier", "max_seq_length", "seed", "matmul_precision"]))
    var arguments: [String] = []
    let tier = try body.string("tier")
    if let tier {
      guard ["full", "lora", "adapter"].contains(tier) else {
        throw APIError.badRequest(
          "request body: field \"tier\" must be \"full\", \"lora\" or \"adapter\"")
      }
      arguments.append(commandOption("tier", tier))
    }
    if let precision = try body.matmulPrecision() {
      guard tier != "adapter" else {
        throw APIError.badRequest(
          "request body: \"matmul_precision\" applies to tiers \"full\" and \"lora\"")
      }
      arguments.append(commandOption("matmul_precision", precision.rawValue))
    }
    for key in counts {
      if let value = try body.count(key, command: "train") {
        arguments.append(commandOption(key, value))
      }
    }
    // Ranges checked here, so that a request out of range is a 400, not a job that fails;
    // the sequence length against the model's own maximum by the job.
    var options = TrainingOptions()
    if let length = try body.int("max_seq_length") {
      options.maxSequenceLength = length
      try checkField("max_seq_length") { try options.validate() }
      arguments.append(commandOption("max_seq_length", length))
    }
    if let seed = try body.int("seed") {
      guard seed >= 0 else {
        throw APIError.badRequest("request body: \"seed\" must be at least 0")
      }
      arguments.append(commandOption("seed", seed))
    }
    for key in numbers {
      guard let value = try body.double(key) else { continue }
      if key == "lr" { options.learningRate = value } else { options.heldOutFraction = value }
      try checkField(key) { try options.validate() }
      arguments.append(commandOption(key, value))
    }
    for key in flags where try body.bool(key) == true { arguments.append(commandOption(key)) }
    return arguments
  }

  private func startJob(_ kind: String, _ collection: String, _ arguments: [String]) async throws
    -> Response
  {
    // Unknown collections fail here, with a 404, rather than later in the job.
    _ = try await blocking { try database.collection(collection, create: false) }
    return try await startJob(kind, .collection(collection), arguments)
  }

  /// Starts a job and answers 202 with it and its `Location`.
  func startJob(_ kind: String, _ target: JobRunner.Target, _ arguments: [String]) async throws
    -> Response
  {
    let job = try await jobs.start(kind: kind, target: target, arguments: arguments)
    var response = JSONResponse.make(job, status: .accepted)
    response.headers[.location] = "/jobs/\(job.id)"
    return response
  }

  private func rows(_ documents: [Document], from collection: DocumentCollection, withVectors: Bool)
    throws
    -> Response
  {
    let vectors = withVectors ? try collection.vectors(documents.map(\.id)) : nil
    return JSONResponse.make(
      DocumentList(
        documents: documents.enumerated().map { index, document in
          DocumentRow(document: document, vector: vectors.map { $0[index] })
        }))
  }

  private func includesVector(_ include: String?) throws -> Bool {
    guard let include, !include.isEmpty else { return false }
    for part in include.split(separator: ",") where part != "vector" {
      throw APIError.badRequest("include: unknown field \"\(part)\" (known: vector)")
    }
    return true
  }

  /// Refuses a keyword or hybrid search of a collection without a text index, naming the
  /// request's field `mode` (the library's message names the shell's `--mode`).
  private func checkTextIndex(for mode: SearchMode?, in collection: DocumentCollection) throws {
    guard let mode, mode != .dense, try collection.bm25() == nil else { return }
    throw VectorDBError.notAvailable(
      collection: collection.name,
      reason:
        "has no text index (given vectors only, or created without one): search it with \"mode\": \"dense\""
    )
  }

  /// A count given as query parameter `name`: at least `lowest`, and within the shell's
  /// range for `--name` where it has one (`CountLimits`).
  func count(_ text: String, _ name: String, from lowest: Int = 1) throws -> Int {
    let range = CountLimits.range("--" + name) ?? lowest...Int.max
    guard let value = Int(text), value >= lowest, range.contains(value) else {
      throw APIError.badRequest(
        "query parameter \"\(name)\" must be an integer within \(max(lowest, range.lowerBound))...\(range.upperBound) (got \(text))"
      )
    }
    return value
  }

}

/// The command-line option of request field `key` (`batch_size` is `--batch-size`).
func commandOption(_ key: String) -> String { "--" + key.replacingOccurrences(of: "_", with: "-") }

/// Request field `key` with its value as one argument, `--lr=-1`, `--collection=-x`: apart,
/// a value starting with "-" would read as an option (a job on collection "--help" would
/// fail, a negative number never reach the command's range check).
func commandOption(_ key: String, _ value: some LosslessStringConvertible) -> String {
  "\(commandOption(key))=\(value)"
}

/// Runs `validate`, naming request field `key` in its error rather than the shell's
/// "option:" (`request body: field "lr": the learning rate must be positive`).
func checkField(_ key: String, _ validate: () throws -> Void) throws {
  do {
    try validate()
  } catch VectorDBError.invalidInput(source: "option", line: _, let reason) {
    throw APIError.badRequest("request body: field \"\(key)\": \(reason)")
  }
}

/// The router, remembering the methods each path answers, so that a path asked with
/// another method gets 405 `method_not_allowed` with `Allow` rather than a 404 saying
/// that the path does not exist.
final class Endpoints: RouterMethods {
  typealias Context = ServerContext

  private let router: Hummingbird.Router<Context>
  /// By path pattern (`/collections/{collection}`), in the order registered.
  private var answered: [(path: RouterPath, methods: [HTTPRequest.Method])] = []

  init(_ router: Hummingbird.Router<Context>) { self.router = router }

  @discardableResult
  func on<Responder: HTTPResponder>(
    _ path: RouterPath, method: HTTPRequest.Method, responder: Responder
  ) -> Self where Responder.Context == Context {
    router.on(path, method: method, responder: responder)
    if let index = answered.firstIndex(where: { $0.path.description == path.description }) {
      answered[index].methods.append(method)
    } else {
      answered.append((path, [method]))
    }
    return self
  }

  @discardableResult
  func add(middleware: any MiddlewareProtocol<Request, Response, Context>) -> Self {
    router.add(middleware: middleware)
    return self
  }

  /// Registers 405 for every standard method a path does not answer (HEAD is answered
  /// wherever GET is). Other methods stay 404.
  func refuseOtherMethods() {
    let standard: [HTTPRequest.Method] = [
      .get, .head, .post, .put, .delete, .patch, .options, .trace, .connect,
    ]
    for (path, methods) in answered {
      let allowed = methods.contains(.get) ? methods + [.head] : methods
      let allow = allowed.map(\.rawValue).joined(separator: ", ")
      for method in standard where !allowed.contains(method) {
        router.on(path, method: method) { request, context -> Response in
          // NIO's parser reads nothing after a CONNECT, and its answer has no body:
          // the connection is closed after it rather than left to hang.
          if request.method == .connect { context.channel.close(mode: .input, promise: nil) }
          throw APIError(
            status: .methodNotAllowed, code: "method_not_allowed",
            message: "\(request.method) is not allowed on \(request.uri.path): it answers \(allow)",
            headers: [.allow: allow])
        }
      }
    }
  }
}

/// `{"documents": [...]}`: `null` for an id asked for and not found.
struct DocumentList<Row: Encodable>: Encodable {
  var documents: [Row]
}

extension ServerContext {
  /// The path parameter `name`, percent-decoded (`a%20b` is `a b`, `a%2Fb` is `a/b`): a
  /// document id or a collection name may hold any character a URL cannot.
  ///
  /// - Throws: `APIError` 400 for a malformed percent-encoding.
  func pathParameter(_ name: String) throws -> String {
    let raw = try parameters.require(name)
    guard let decoded = raw.removingPercentEncoding else {
      throw APIError.badRequest("path: \"\(raw)\" is not valid percent-encoding")
    }
    return decoded
  }
}
