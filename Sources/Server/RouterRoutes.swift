import Foundation
import Hummingbird
import VectorDB

/// The router endpoints (docs/server.md "Routers"), in the shapes of `vdb route … --json`.
/// Routing, outcomes, imports and version switches answer in the request; training
/// embeds every example and runs as a job (a child `vdb route train`).
extension Routes {
  func addRouters(to router: Endpoints) {
    router.get("/routers") { _, _ in
      try await blocking { JSONResponse.make(["routers": try database.routerSummaries()]) }
    }
    router.post("/routers") { request, _ in
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      try body.check(["name", "paths", "escalation"])
      let name = try body.required("name", body.string)
      let paths = try routePaths(body)
      let escalation = try body.string("escalation")
      return try await blocking {
        // 409 as for a collection; the library's own check (a 400) stays for a router
        // created between this look and the write.
        if (try? database.router(name)) != nil {
          throw APIError(
            status: .conflict, code: "router_exists",
            message: "a router named \"\(name)\" already exists",
            hint: "choose another name")
        }
        let created = try database.createRouter(name, paths: paths, escalation: escalation)
        return JSONResponse.make(try created.summary(), status: .created)
      }
    }
    router.get("/routers/{router}") { _, context in
      let open = try routerNamed(context)
      return try await blocking { JSONResponse.make(try open().summary()) }
    }
    router.delete("/routers/{router}") { _, context in
      let name = try context.pathParameter("router")
      return try await blocking {
        try database.dropRouter(name)
        return JSONResponse.make(["dropped": name])
      }
    }
    router.get("/routers/{router}/log") { request, context in
      let open = try routerNamed(context)
      let after = try request.parameter("after").map { try count($0, "after", from: 0) } ?? 0
      let limit = try request.parameter("limit").map { try count($0, "limit") } ?? 50
      let pending = try request.flag("pending")
      return try await blocking {
        JSONResponse.make([
          "entries": try open().logEntries(after: UInt64(after), pending: pending, limit: limit)
        ])
      }
    }
    router.post("/routers/{router}/route") { request, context in
      let open = try routerNamed(context)
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      try body.check(["inputs", "log"])
      let inputs = try body.required("inputs", body.strings)
      guard !inputs.isEmpty else {
        throw APIError.badRequest("request body: \"inputs\" needs at least one text")
      }
      let log = try body.bool("log") ?? true
      return try await database.run { _ in
        JSONResponse.make(["decisions": try open().route(inputs, log: log)])
      }
    }
    router.post("/routers/{router}/outcomes") { request, context in
      let open = try routerNamed(context)
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      try body.check(["input", "log_id", "path", "outcome"])
      let path = try body.required("path", body.string)
      let outcome = try body.required("outcome", body.string)
      guard let parsed = RouteOutcome(rawValue: outcome) else {
        throw APIError.badRequest("request body: field \"outcome\" must be \"good\" or \"bad\"")
      }
      let input = try body.string("input")
      let logID = try body.int("log_id")
      guard (input == nil) != (logID == nil) else {
        throw APIError.badRequest(
          "request body: give \"input\" or \"log_id\", not both nor neither")
      }
      if let logID, logID <= 0 {
        throw APIError.badRequest("request body: \"log_id\" must be positive")
      }
      return try await blocking {
        let router = try open()
        // Checked here to name the request's fields; the library's errors say "argument".
        if let input, input.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
          throw APIError.badRequest("request body: field \"input\" is empty")
        }
        guard router.paths.contains(where: { $0.name.utf8.elementsEqual(path.utf8) }) else {
          let names = router.paths.map { "\"\($0.name)\"" }.joined(separator: ", ")
          throw APIError.badRequest(
            "request body: field \"path\": router \"\(router.name)\" has no path \"\(path)\" (its paths: \(names))"
          )
        }
        if let logID {
          try router.record(outcome: parsed, path: path, for: UInt64(logID))
          return JSONResponse.make(["log_id": logID])
        }
        return JSONResponse.make([
          "log_id": try router.record(input: input!, path: path, outcome: parsed)
        ])
      }
    }
    router.post("/routers/{router}/examples") { request, context in
      let open = try routerNamed(context)
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      try body.check(["examples"])
      let examples = try labelledExamples(body)
      return try await blocking {
        JSONResponse.make(try open().importExamples(examples, source: "request body: examples"))
      }
    }
    router.post("/routers/{router}/train") { request, context in
      let name = try context.pathParameter("router")
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      let arguments = try routerTrainArguments(body)
      _ = try await blocking { try database.router(name) }
      return try await startJob(
        "route-train", .router(name),
        ["route", "train", commandOption("router", name)] + arguments)
    }
    router.get("/routers/{router}/versions") { _, context in
      let open = try routerNamed(context)
      return try await blocking {
        let (versions, active) = try open().versions()
        return JSONResponse.make(RouterVersions(versions: versions, active: active))
      }
    }
    router.post("/routers/{router}/activate") { request, context in
      let open = try routerNamed(context)
      let body = try await RequestBody.read(request, limit: maxBodyBytes)
      try body.check(["version"])
      let version = try body.required("version", body.int)
      return try await blocking {
        let router = try open()
        try router.activate(version: version)
        return JSONResponse.make(try router.summary())
      }
    }
    router.post("/routers/{router}/rollback") { request, context in
      let open = try routerNamed(context)
      try await RequestBody.read(request, limit: maxBodyBytes).check([])
      return try await blocking {
        let router = try open()
        _ = try router.rollback()
        return JSONResponse.make(try router.summary())
      }
    }
    router.get("/routers/{router}/diagnose") { _, context in
      let open = try routerNamed(context)
      return try await blocking { JSONResponse.make(try open().diagnose()) }
    }
  }

  /// The router named in the path, opened on the thread pool (404 `router_not_found` for a
  /// name no router has).
  private func routerNamed(_ context: Context) throws -> @Sendable () throws -> VectorDB.Router {
    let name = try context.pathParameter("router")
    return { try database.router(name) }
  }

  /// `"paths"`: `[{"name": "faq", "cost": 1}, …]` (cost optional).
  private func routePaths(_ body: RequestBody) throws -> [RoutePath] {
    let wrong = APIError.badRequest(
      "request body: \"paths\" must be an array of {\"name\": string, \"cost\": number or null}")
    guard case .array(let items)? = body.value("paths") else { throw wrong }
    return try items.map { item in
      guard case .object(let fields) = item else { throw wrong }
      let path = RequestBody(fields: fields)
      try path.check(["name", "cost"])
      return RoutePath(name: try path.required("name", path.string), cost: try path.double("cost"))
    }
  }

  /// `"examples"`: `[{"input", "path"[, "outcome"]}, …]`, the lines of `vdb route import`.
  private func labelledExamples(_ body: RequestBody) throws -> [VectorDB.Router.LabelledExample] {
    guard case .array(let items)? = body.value("examples") else {
      throw APIError.badRequest(
        "request body: field \"examples\" must be an array of {\"input\", \"path\", \"outcome\"}")
    }
    return try items.enumerated().map { index, item in
      let place = "request body: examples[\(index)]"
      guard case .object(let fields) = item else {
        throw APIError.badRequest("\(place) must be a JSON object")
      }
      let example = RequestBody(fields: fields)
      do {
        try example.check(["input", "path", "outcome"])
        let outcome = try example.string("outcome").map {
          try RouteOutcome(rawValue: $0)
            ?? {
              throw APIError.badRequest(
                "request body: field \"outcome\" must be \"good\" or \"bad\"")
            }()
        }
        return VectorDB.Router.LabelledExample(
          input: try example.required("input", example.string),
          path: try example.required("path", example.string), outcome: outcome)
      } catch let error as APIError {
        throw APIError.badRequest(
          error.message.replacingOccurrences(of: "request body:", with: "\(place):"))
      }
    }
  }

  /// The `vdb route train` options a request may set, as its command-line arguments.
  private func routerTrainArguments(_ body: RequestBody) throws -> [String] {
    let fractions = ["lr", "held_out", "max_escalation", "min_quality", "lora_lr"]
    let counts = ["epochs", "batch_size", "lora_epochs", "lora_rank"]
    try body.check(
      Set(fractions + counts + ["seed", "force", "tier", "classifier", "matmul_precision"]))
    // Checked here, so that a request out of range is a 400, not a job that fails.
    var options = RouterTrainingOptions()
    var arguments: [String] = []
    if let tier = try body.string("tier") {
      guard let known = RouterTier(rawValue: tier) else {
        throw APIError.badRequest("request body: field \"tier\" must be \"head\" or \"lora\"")
      }
      options.tier = known
      arguments.append(commandOption("tier", tier))
    }
    if let classifier = try body.string("classifier") {
      guard RouterClassifierKind(rawValue: classifier) != nil else {
        let names = RouterClassifierKind.allCases.map { "\"\($0.rawValue)\"" }
        throw APIError.badRequest(
          "request body: field \"classifier\" must be one of \(names.joined(separator: ", "))")
      }
      arguments.append(commandOption("classifier", classifier))
    }
    if let precision = try body.matmulPrecision() {
      guard options.tier == .lora else {
        throw APIError.badRequest("request body: \"matmul_precision\" applies to tier \"lora\"")
      }
      arguments.append(commandOption("matmul_precision", precision.rawValue))
    }
    for key in counts {
      if let value = try body.count(key, command: "route train") {
        arguments.append(commandOption(key, value))
      }
    }
    if let seed = try body.int("seed") {
      guard seed >= 0 else {
        throw APIError.badRequest("request body: \"seed\" must be at least 0")
      }
      arguments.append(commandOption("seed", seed))
    }
    for key in fractions {
      guard let value = try body.double(key) else { continue }
      switch key {
      case "lr": options.learningRate = value
      case "held_out": options.heldOutFraction = value
      case "max_escalation": options.maxEscalation = value
      case "min_quality": options.minQuality = value
      default: options.loraLearningRate = value
      }
      // After each field, so that the error names it (both max_escalation and min_quality:
      // the second).
      try checkField(key) { try options.validate() }
      arguments.append(commandOption(key, value))
    }
    if try body.bool("force") == true { arguments.append("--force") }
    return arguments
  }
}

/// `GET /routers/{router}/versions`.
struct RouterVersions: Encodable {
  var versions: [RouterVersion]
  var active: Int?
}
