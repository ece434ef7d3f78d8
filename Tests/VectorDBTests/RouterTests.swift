import Foundation
import Tensor
import Training
import XCTest

@testable import VectorDB

/// Routers with the real encoder on the project's own set (tools/route-examples.jsonl:
/// questions about vdb routed to the docs family that answers them, or escalated).
final class RouterTests: XCTestCase {
  var directory: String!
  var db: Database!

  static let tools = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../tools").standardized.path
  static let families = ["storage", "search", "training", "shell"]

  override func setUpWithError() throws {
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
    directory = NSTemporaryDirectory() + "vdb-router-tests-" + UUID().uuidString
    db = try Database(path: directory)
    try db.importModel(directory: DefaultModel.directory)
  }

  override func tearDownWithError() throws {
    db = nil
    try? FileManager.default.removeItem(atPath: directory)
  }

  private func write(_ name: String, _ lines: [String]) throws -> String {
    let path = directory + "/" + name
    try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: path))
    return path
  }

  /// The docs router: one path per docs family (cost 1) and "general" (cost 4) for the rest.
  private func docsRouter(_ name: String = "docs") throws -> Router {
    try db.createRouter(
      name,
      paths: Self.families.map { RoutePath(name: $0, cost: 1) } + [
        RoutePath(name: "general", cost: 4)
      ],
      escalation: "general")
  }

  /// The classifier is chosen on the training split: labels that carry no signal keep the
  /// default, the discriminant; inputs whose length says nothing make the centroids (cosine)
  /// pay; a boundary the centroids misplace makes another pay.
  func testClassifierIsChosenByCrossValidation() throws {
    var random = Xoshiro256(seed: 5)
    func unit(_ v: [Float]) -> [Float] {
      let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
      return v.map { $0 / norm }
    }
    func noise() -> Float { random.nextUnitFloat() * 2 - 1 }
    func chosen(classes: Int, count: Int, _ point: (_ label: Int) -> [Float]) throws
      -> RouterClassifier
    {
      let labels = (0..<count).map { $0 % classes }
      var folds: [Int] = []
      defer { XCTAssertEqual(folds, [0, 1, 2, 3, 4, 5], "progress at the start, after each fold") }
      return try Router.chooseClassifier(
        inputs: labels.map(point), labels: labels, classes: classes,
        options: Training.SoftmaxClassifier<Float>.Options(epochs: 100, seed: 3)
      ) { folds.append($0.done) }
    }
    XCTAssertEqual(
      try chosen(classes: 3, count: 60) { _ in unit((0..<8).map { _ in noise() }) },
      .discriminant)
    // Two classes by direction, 0° and 30° ± 8°, their lengths spread over 0.1…3 and
    // 0.1…1. The cosine to each unit centroid ignores the length and separates them; the
    // discriminant's boundary misses the origin (its means differ in length), so the short
    // inputs of one class fall on the other's side.
    let lengths = try chosen(classes: 2, count: 80) { y in
      let degrees: Float = (y == 0 ? 0 : 30) + 8 * noise()
      let length: Float = y == 0 ? 1.55 + 1.45 * noise() : 0.55 + 0.45 * noise()
      return [length * cos(degrees * .pi / 180), length * sin(degrees * .pi / 180)]
    }
    XCTAssertEqual(lengths, .nearestCentroid)
    // Two classes by angle in a plane: one tight around 0°, one spread over 40° ± 35°. The
    // centroids' boundary is the bisector near 20°, which puts a fifth of the wide class on
    // the wrong side; a linear head with a bias moves the boundary next to the tight class.
    let angled = try chosen(classes: 2, count: 80) { y in
      let degrees: Float = y == 0 ? 4 * noise() : 40 + 35 * noise()
      return [cos(degrees * .pi / 180), sin(degrees * .pi / 180)]
    }
    XCTAssertNotEqual(angled, .nearestCentroid)
    // Two classes 0.4 apart along y, both spread ± 1 along (0, 1, 1)/√2: the centroids'
    // boundary (y = 0) cuts through that shared spread; the discriminant's, along
    // Σ⁻¹(m₀ − m₁) ∝ (0, 1, −1), does not.
    let shared = try chosen(classes: 2, count: 80) { y in
      let t = noise() / Float(2).squareRoot()
      return [1 + 0.05 * noise(), (y == 0 ? 0.2 : -0.2) + t, t + 0.05 * noise()]
    }
    XCTAssertEqual(shared, .discriminant)
    // Two classes on the circle as XOR: one around 0° and 180°, the other around 90° and
    // 270°. Their centroids are near zero and no line separates them; their examples do.
    let crossed = try chosen(classes: 2, count: 80) { y in
      let side: Float = random.nextUnitFloat() < 0.5 ? 180 : 0
      let degrees = Float(y == 0 ? 0 : 90) + side + 15 * noise()
      return [cos(degrees * .pi / 180), sin(degrees * .pi / 180)]
    }
    XCTAssertEqual(crossed, .nearestExamples)
  }

  /// Nearest examples, asked for by name: the version keeps the training inputs' vectors,
  /// serves them (from a reopened database too) and reports what it stores; the LoRA tier
  /// has no head to tune with them and keeps them as they are.
  func testNearestExamplesAreStoredAndServed() throws {
    let router = try docsRouter()
    try router.importJSONL(path: Self.tools + "/route-examples.jsonl")
    var options = RouterTrainingOptions()
    options.classifier = .nearestExamples
    let report = try router.train(options: options)
    XCTAssertEqual(report.classifier, "nearest_examples")
    XCTAssertTrue(report.activated, report.reason)
    XCTAssertGreaterThan(report.metrics["macro_f1"]!, report.metrics["majority_macro_f1"]! + 0.3)
    // The training inputs' vectors and labels and a 4-value header, in Float32.
    XCTAssertEqual(
      report.metrics["stored_bytes"], Double(4 * (4 + report.trainExamples * (384 + 1))))
    XCTAssertEqual(
      try router.versions().versions[0].lineage["classifier"], .string("nearest_examples"))

    let texts = Array(report.heldOutInputs.prefix(6)) + ["how do I back up a database"]
    let decisions = try router.route(texts, log: false)
    let path = db.path
    db = nil
    db = try Database(path: path)
    let reopened = try db.router("docs")
    XCTAssertEqual(try reopened.route(texts, log: false), decisions)

    options.tier = .lora
    options.force = true
    let lora = try reopened.train(options: options)
    XCTAssertEqual(lora.classifier, "nearest_examples")
    XCTAssertEqual(lora.metrics["lora_epochs"], 0)
    XCTAssertEqual(lora.metrics["stored_bytes"], report.metrics["stored_bytes"])
    XCTAssertEqual(try reopened.route(texts, log: false).map(\.path), decisions.map(\.path))

    XCTAssertEqual(try db.verifyReport().problems, [])
    // A bit of the stored head flipped: refused by the version's checksum, by verify and
    // at load, instead of silently changing decisions.
    let served = try db.router("docs")
    let active = try XCTUnwrap(try served.versions().active)
    let key = RouterVersionKey(router: served.id, version: UInt32(active))
    var head = try db.environment.read {
      Array(try XCTUnwrap(try $0.get(served.store.weights, key: key)))
    }
    head[head.count - 3] ^= 0x10  // a mantissa bit of the last stored vector
    try db.environment.write { try $0.put(served.store.weights, key: key, value: head) }
    db = nil
    db = try Database(path: path)
    XCTAssertEqual(
      try db.verifyReport().problems,
      ["router \"docs\" version \(active): its head or adapters fail its checksum"])
    XCTAssertThrowsError(try db.router("docs").route(texts, log: false)) { error in
      XCTAssertEqual(
        "\(error)", "\(path) is damaged: router \"docs\" version \(active) fails its checksum")
    }
    // Stored heads that do not fit (with a checksum that matches them, as a bug would store
    // them) are refused as damage, never read past their end: one over 3-dimensional
    // embeddings (the model makes 384), one that is not the layout.
    let other = NearestExamples(inputs: [[1, 0, 0], [0, 1, 0]], labels: [0, 1], classes: 5)
    for (parameters, detail) in [
      (other.parameters, "reads 3-dimensional embeddings; its model v1 makes 384"),
      (Array(other.parameters.dropLast()), "has no valid head"),
    ] {
      let current = try db.router("docs")
      try db.environment.write { txn in
        try current.store.putHead(
          RouterStore.bytes(parameters), router: current.id, version: active, in: txn)
        var info = try XCTUnwrap(try current.store.version(router: current.id, active, in: txn))
        info.checksum = RouterStore.checksum(head: RouterStore.bytes(parameters), adapters: nil)
        try current.store.put(info, router: current.id, in: txn)
      }
      db = nil
      db = try Database(path: path)
      XCTAssertEqual(try db.verifyReport().problems.count, 1)
      XCTAssertThrowsError(try db.router("docs").route(texts, log: false)) { error in
        guard case VectorDBError.damaged(_, let message) = error else { return XCTFail("\(error)") }
        XCTAssertTrue(message.contains(detail), message)
      }
    }
    // A ready version's head lost: verify names it (routing it fails as above).
    let current = try db.router("docs")
    try db.environment.write { txn in
      try txn.delete(
        current.store.weights, key: RouterVersionKey(router: current.id, version: UInt32(active)))
    }
    XCTAssertEqual(
      try db.verifyReport().problems, ["router \"docs\" version \(active): its head is missing"])
  }

  func testBadRoutersAreRefusedAndNothingIsWritten() throws {
    func refused(_ paths: [RoutePath], escalation: String? = nil, _ message: String) {
      XCTAssertThrowsError(try db.createRouter("r", paths: paths, escalation: escalation)) {
        XCTAssertTrue("\($0)".contains(message), "\($0)")
      }
    }
    refused([RoutePath(name: "only")], "at least two paths")
    refused([RoutePath(name: "a"), RoutePath(name: "a")], "given twice")
    refused([RoutePath(name: "a"), RoutePath(name: "b")], escalation: "c", "not one of its paths")
    refused([RoutePath(name: "a", cost: -1), RoutePath(name: "b")], "cost")
    XCTAssertEqual(try db.routerNames(), [])
    try db.createRouter("r", paths: [RoutePath(name: "a"), RoutePath(name: "b")])
    XCTAssertThrowsError(
      try db.createRouter("r", paths: [RoutePath(name: "a"), RoutePath(name: "b")]))
    XCTAssertThrowsError(try db.router("nope")) {
      XCTAssertEqual($0 as? VectorDBError, .routerNotFound("nope"))
      XCTAssertTrue("\($0)".contains("no router named \"nope\""))
    }
  }

  func testBadImportsNameFileAndLineAndImportNothing() throws {
    let router = try docsRouter()
    let cases: [([String], String)] = [
      (
        [#"{"input": "a", "path": "shell"}"#, #"{"input": "b", "path": "nowhere"}"#],
        #":2: unknown path "nowhere""#
      ),
      ([#"{"input": "a", "path": "shell"}"#, "", #"{"path": "shell"}"#], #":3: missing "input""#),
      ([#"{"input": "  ", "path": "shell"}"#], ":1: the input is empty"),
      ([#"{"input": "a", "path": "shell", "outcome": "great"}"#], #":1: "outcome" must be"#),
      ([#"{"input": "a", "path": "shell", "outcom": "bad"}"#], #":1: unknown field "outcom""#),
      ([#"{"input": "a", "path": "shell""#], ":1: invalid JSON"),
      (["", "  "], "the file has no examples"),
    ]
    for (index, (lines, message)) in cases.enumerated() {
      let file = try write("bad\(index).jsonl", lines)
      XCTAssertThrowsError(try router.importJSONL(path: file)) { error in
        XCTAssertTrue("\(error)".hasPrefix(file), "\(error)")
        XCTAssertTrue("\(error)".contains(message), "\(error) should say \(message)")
      }
    }
    XCTAssertEqual(try router.examples(), [], "nothing was imported")
    XCTAssertThrowsError(try router.record(input: "x", path: "elsewhere", outcome: .good))
  }

  func testBestPathIsTheCheapestGoodOne() throws {
    let router = try db.createRouter(
      "support",
      paths: [
        RoutePath(name: "agent", cost: 20), RoutePath(name: "faq", cost: 1),
        RoutePath(name: "docs"),
      ],
      escalation: "agent")
    try router.record(input: "q1", path: "agent", outcome: .good)
    try router.record(input: "q1", path: "faq", outcome: .good)
    try router.record(input: "q2", path: "faq", outcome: .bad)
    try router.record(input: "q2", path: "docs", outcome: .good)
    try router.record(input: "q2", path: "agent", outcome: .good)
    try router.record(input: "q3", path: "faq", outcome: .bad)
    try router.record(input: "q4", path: "faq", outcome: .good)
    try router.record(input: "q4", path: "faq", outcome: .bad)  // the later outcome wins
    let best = Dictionary(uniqueKeysWithValues: try router.examples().map { ($0.input, $0.best) })
    XCTAssertEqual(best["q1"], "faq")
    XCTAssertEqual(best["q2"], "agent", "a path with a cost comes before one without")
    XCTAssertEqual(best["q3"], .some(nil), "no good outcome: no label")
    XCTAssertEqual(best["q4"], .some(nil))
  }

  func testTooFewExamplesAreRefusedWithHowManyAreNeeded() throws {
    let router = try docsRouter()
    for (index, family) in Self.families.enumerated() {
      for j in 0..<(index + 3) {
        try router.record(input: "\(family) \(j)", path: family, outcome: .good)
      }
    }
    XCTAssertThrowsError(try router.train()) { error in
      guard case VectorDBError.notEnoughExamples(router.name, _, 5) = error else {
        return XCTFail("\(error)")
      }
      let text = "\(error)"
      XCTAssertTrue(text.contains(#"path "storage" has 3 (2 more needed)"#), text)
      XCTAssertTrue(text.contains(#"path "general" has 0 (5 more needed)"#), text)
      XCTAssertFalse(text.contains(#""training""#), text)
    }
    XCTAssertEqual(try router.versions().versions, [])
  }

  func testTrainGateServeAndRollback() throws {
    let router = try docsRouter()
    try router.importJSONL(path: Self.tools + "/route-examples.jsonl")
    var options = RouterTrainingOptions()
    options.maxEscalation = 0.3
    let report = try router.train(options: options)
    XCTAssertTrue(report.activated, report.reason)
    XCTAssertEqual(report.examples.values.reduce(0, +), 110)
    let m = report.metrics
    // The first version is gated against always choosing the most common path. (Against
    // nearest centroid this small set shows no difference beyond noise: route-bench.)
    XCTAssertGreaterThan(m["macro_f1"]!, m["majority_macro_f1"]! + 0.3)
    XCTAssertNotNil(m["nearest_centroid_macro_f1"])
    XCTAssertEqual(report.curve.count, 11)
    // Escalating 0.3 leaves room for every input the classifier is sure needs "general".
    XCTAssertEqual(report.warnings, [])

    // Serving applies the threshold chosen on the held-out split: the target holds there.
    let decisions = try router.route(report.heldOutInputs, log: false)
    let escalated = decisions.filter { $0.path == "general" }.count
    XCTAssertLessThanOrEqual(Double(escalated) / Double(decisions.count), 0.3 + 1e-9)
    XCTAssertEqual(Double(escalated) / Double(decisions.count), m["escalation"]!, accuracy: 1e-9)
    for decision in decisions {
      XCTAssertEqual(decision.probabilities.values.reduce(0, +), 1, accuracy: 1e-6)
      XCTAssertNil(decision.logID)
      if decision.escalated {
        XCTAssertEqual(decision.path, "general")
        XCTAssertLessThan(decision.confidence, m["threshold"]!)
      } else {
        XCTAssertNotEqual(decision.path, "general", "the generalist is reached by escalation only")
        XCTAssertGreaterThanOrEqual(decision.confidence, m["threshold"]!)
      }
    }

    // The same data and seed give the same head: no gain, so the gate rejects it.
    let again = try router.train()
    XCTAssertEqual(again.warnings, [], "without a target the threshold is 0.5: no warning")
    XCTAssertFalse(again.activated)
    XCTAssertTrue(again.reason.hasPrefix("not activated"), again.reason)
    var (versions, active) = try router.versions()
    XCTAssertEqual(versions.map(\.state), [.ready, .rejected])
    XCTAssertEqual(active, 1)
    XCTAssertEqual(versions[1].reason, again.reason)
    XCTAssertEqual(versions[1].parent, 1)
    // The lineage records the classifier the training split chose, as the report does.
    XCTAssertEqual(versions[0].lineage["classifier"], .string(report.classifier))
    XCTAssertTrue(
      ["nearest_centroid", "shrunk_lda", "softmax", "nearest_examples"].contains(report.classifier),
      report.classifier)
    XCTAssertEqual(m["shrinkage"] != nil, report.classifier == "shrunk_lda")
    try router.activate(version: 2)
    try router.activate(version: 2)  // already serving: the history is unchanged
    XCTAssertEqual(try router.versions().active, 2)
    XCTAssertEqual(try router.rollback(), 1)
    (versions, active) = try router.versions()
    XCTAssertEqual(active, 1)
    XCTAssertThrowsError(try router.rollback()) { error in
      guard case VectorDBError.routerNotAvailable(router.name, let reason) = error else {
        return XCTFail("\(error)")
      }
      XCTAssertTrue(reason.contains("no earlier version"), reason)
    }

    let evaluation = try router.evaluate(path: Self.tools + "/route-test.jsonl")
    XCTAssertEqual(evaluation.examples, 36)
    XCTAssertEqual(evaluation.confusion.flatMap { $0 }.reduce(0, +), 36)
    XCTAssertGreaterThan(evaluation.macroF1, 0.5)

    // Another seed splits the same way: the inputs that judge a candidate never trained
    // the version it is judged against.
    options.seed = 7
    XCTAssertEqual(try router.train(options: options).heldOutInputs, report.heldOutInputs)
  }

  /// A retrain embeds only the inputs no earlier run embedded with the same encoder; the
  /// store keeps exactly the labelled inputs' vectors; a damaged one is named by verify and
  /// made again; deleting a model version deletes its vectors.
  func testRetrainingEmbedsOnlyNewInputs() throws {
    let router = try docsRouter()
    try router.importJSONL(path: Self.tools + "/route-examples.jsonl")
    let cache = router.store.vectors
    let table = try XCTUnwrap(cache.table)
    func stored() throws -> [RouterVectorKey: [Float]] {
      try db.environment.read { txn in
        var entries: [RouterVectorKey: [Float]] = [:]
        try txn.forEach(in: table) { key, value in
          let key = try XCTUnwrap(RouterVectorKey.decode(key))
          entries[key] = RouterVectorCache.vector(value, dimension: 384)
          return true
        }
        return entries
      }
    }
    let first = try router.train()
    XCTAssertEqual(first.embeddedInputs, 110)
    let vectors = try stored()
    XCTAssertEqual(vectors.count, 110)
    XCTAssertEqual(Set(vectors.keys.map(\.model)), [1])
    // What is stored is what the encoder makes of the input.
    let input = first.heldOutInputs[0]
    let fresh = try db.encoder(version: 1).embed([input])[0]
    let kept = try XCTUnwrap(
      vectors[RouterVectorKey(model: 1, router: router.id, input: ContentHash(text: input))])
    XCTAssertGreaterThan(zip(fresh, kept).map { $0 * $1 }.reduce(0, +), 0.9999)

    // Nothing new: nothing embedded, and the same vectors give the same version.
    let second = try router.train()
    XCTAssertEqual(second.embeddedInputs, 0)
    XCTAssertEqual(second.metrics["macro_f1"], first.metrics["macro_f1"])
    XCTAssertEqual(second.classifier, first.classifier)

    // One new input: one embedded, and one more stored.
    try router.record(input: "how do I list the collections", path: "shell", outcome: .good)
    XCTAssertEqual(try router.train().embeddedInputs, 1)
    XCTAssertEqual(try stored().count, 111)

    // A damaged vector is named by verify and made again by the next run.
    let key = RouterVectorKey(model: 1, router: router.id, input: ContentHash(text: input))
    var value = try db.environment.read { Array(try XCTUnwrap(try $0.get(table, key: key))) }
    value[5] ^= 0x40
    try db.environment.write { try $0.put(table, key: key, value: value) }
    XCTAssertEqual(
      try db.verifyReport().problems,
      [
        "router \"docs\": the stored vector of input \(key.input) by model v1 fails its"
          + " checksum or is not 384 finite numbers"
      ])
    XCTAssertEqual(try router.train().embeddedInputs, 1)
    let remade = try XCTUnwrap(try stored()[key])
    XCTAssertGreaterThan(zip(remade, kept).map { $0 * $1 }.reduce(0, +), 0.9999)
    XCTAssertEqual(try db.verifyReport().problems, [])

    // A version's vectors go with it (its number may be given again).
    let other = try db.convertModel(version: 1, precision: .bfloat16)
    var otherKey = key
    otherKey.model = UInt32(other.version)
    try db.environment.write {
      try $0.put(table, key: otherKey, value: RouterVectorCache.value(kept))
    }
    XCTAssertEqual(Set(try stored().keys.map(\.model)), [1, UInt32(other.version)])
    try db.deleteModel(version: other.version)
    XCTAssertEqual(Set(try stored().keys.map(\.model)), [1])
    XCTAssertEqual(try stored().count, 111)
  }

  /// Dropping a router deletes every entry it owns in every table and nothing of another
  /// router's; a handle to it then writes nothing, even once a router of the same name
  /// exists again.
  func testDropDeletesWhatTheRouterOwnsAndNothingElse() throws {
    let dropped = try docsRouter()
    let kept = try docsRouter("other")
    for router in [dropped, kept] {
      try router.importJSONL(path: Self.tools + "/route-examples.jsonl")
      _ = try router.train()
    }
    _ = try dropped.route(["how do I list collections"])
    let store = dropped.store
    let tables = [store.versions, store.weights, store.log, try XCTUnwrap(store.vectors.table)]
    /// Entries per router id, over the tables keyed by router (the vectors' key has the
    /// model version first).
    func owners() throws -> [UInt32: Int] {
      try db.environment.read { txn in
        var counts: [UInt32: Int] = [:]
        for table in tables {
          try txn.forEach(in: table) { key, _ in
            let owner =
              table == store.vectors.table
              ? RouterVectorKey.decode(key)?.router
              : key.loadUnaligned(as: UInt32.self).bigEndian
            counts[owner ?? 0, default: 0] += 1
            return true
          }
        }
        return counts
      }
    }
    try db.flushLog()
    let before = try owners()
    XCTAssertGreaterThan(before[dropped.id] ?? 0, 220)  // log 111, vectors 110, head, version
    XCTAssertEqual(before.keys.sorted(), [dropped.id, kept.id])

    try db.dropRouter("docs")
    XCTAssertEqual(try owners(), [kept.id: before[kept.id]!])
    XCTAssertEqual(try db.routerNames(), ["other"])
    XCTAssertThrowsError(try db.dropRouter("docs")) {
      XCTAssertEqual("\($0)", "\(VectorDBError.routerNotFound("docs"))")
    }
    // The same name again is a new router; the old handle does not reach it.
    let again = try docsRouter()
    XCTAssertNotEqual(again.id, dropped.id)
    for attempt in [
      { _ = try dropped.record(input: "x", path: "shell", outcome: .good) },
      { _ = try dropped.route(["x"]) }, { _ = try dropped.versions() },
    ] {
      XCTAssertThrowsError(try attempt()) {
        guard case VectorDBError.routerNotFound("docs") = $0 else { return XCTFail("\($0)") }
      }
    }
    XCTAssertEqual(try owners(), [kept.id: before[kept.id]!])
    XCTAssertEqual(try db.verifyReport().problems, [])
  }

  /// The LoRA tier stores its adapters with the version, serves with them merged (from a
  /// fresh process state too), is deterministic given the seed, and a rejected LoRA version
  /// keeps its lineage only, so it cannot be activated.
  func testLoRATierStoresServesAndGates() throws {
    let router = try docsRouter()
    try router.importJSONL(path: Self.tools + "/route-examples.jsonl")
    var options = RouterTrainingOptions()
    options.tier = .lora
    options.loraEpochs = 1
    options.chooseLoRAEpochs = false
    options.loraRank = 4
    options.force = true
    var stages: [String] = []
    let report = try router.train(options: options) { stage in
      if case .tuning(let epoch, let epochs, let loss) = stage {
        XCTAssert(loss.isFinite)
        stages.append("\(epoch)/\(epochs)")
      }
    }
    XCTAssertEqual(stages, ["1/1"])
    XCTAssertTrue(report.activated)
    XCTAssertEqual(report.metrics["lora_epochs"], 1)
    let (versions, _) = try router.versions()
    XCTAssertEqual(versions[0].lineage["tier"], .string("lora"))
    XCTAssertEqual(versions[0].lineage["lora_rank"], .number(4))
    // rank 4 × (384 in + 384 out) × 4 targets × 6 layers, Float32, plus the safetensors header.
    let adapterFloats = 4 * 768 * 4 * 6
    XCTAssertGreaterThan(report.metrics["stored_bytes"]!, Double(4 * adapterFloats))
    XCTAssertLessThan(report.metrics["stored_bytes"]!, Double(4 * adapterFloats + 40_000))

    // A fresh database object (no cache) serves the stored adapters: its encoder is not the
    // base one, and its held-out accuracy is the one training measured.
    let path = db.path
    db = nil
    db = try Database(path: path)
    let reopened = try db.router("docs")
    let served = try XCTUnwrap(try reopened.loadVersion(1))
    let text = "how do I back up a database"
    XCTAssertNotEqual(served.encoder.embed(text), try db.encoder(version: 1).embed(text))
    let labelOf = Dictionary(
      try reopened.examples().compactMap { e in e.best.map { (e.input, $0) } },
      uniquingKeysWith: { a, _ in a })
    let probabilities = served.probabilities(report.heldOutInputs)
    let correct = zip(report.heldOutInputs, probabilities).filter { input, p in
      served.info.paths[Router.argmax(p)] == labelOf[input]
    }.count
    XCTAssertEqual(
      Double(correct) / Double(report.heldOutInputs.count), report.metrics["accuracy"]!,
      accuracy: 1e-9)
    XCTAssertEqual(try reopened.route([text], log: false).count, 1)

    // The same seed gives the same version: no gain, rejected, its weights not kept.
    options.force = false
    let again = try reopened.train(options: options)
    XCTAssertFalse(again.activated, again.reason)
    XCTAssertEqual(again.metrics["macro_f1"], report.metrics["macro_f1"])
    XCTAssertEqual(again.metrics["temperature"], report.metrics["temperature"])
    XCTAssertEqual(again.metrics["stored_bytes"], 0)
    XCTAssertEqual(try reopened.versions().versions.map(\.state), [.ready, .rejected])
    XCTAssertThrowsError(try reopened.activate(version: 2)) { error in
      XCTAssertEqual(
        error as? VectorDBError,
        .routerVersionWithoutWeights(router: reopened.name, version: 2))
      XCTAssert("\(error)".contains("weights were not kept"), "\(error)")
    }
    XCTAssertEqual(try reopened.versions().active, 1)
  }

  /// A learning rate far too large makes the head's scores infinite: a clear error, no
  /// version, never a trap in what comes after (calibration, the threshold).
  func testADivergingHeadIsRefusedAndWritesNothing() throws {
    let router = try docsRouter()
    try router.importJSONL(path: Self.tools + "/route-examples.jsonl")
    var options = RouterTrainingOptions()
    options.classifier = .softmax
    options.learningRate = 1e10
    XCTAssertThrowsError(try router.train(options: options)) { error in
      XCTAssertTrue("\(error)".contains("the training diverged"), "\(error)")
    }
    XCTAssertEqual(try router.versions().versions, [])
  }

  func testUnreachableTargetNamesTheClosestAndWritesNothing() throws {
    // The generalist fails every family question: escalating stops being a safe default,
    // and no threshold reaches a quality of 0.99.
    let router = try docsRouter()
    let lines = try String(contentsOfFile: Self.tools + "/route-examples.jsonl", encoding: .utf8)
      .split(separator: "\n").map(String.init)
    let generalistFails = lines.filter { !$0.contains(#""general""#) && $0.contains(#""good""#) }
      .map { $0.replacingOccurrences(of: #""good""#, with: #""bad""#) }
      .map { $0.replacing(#/"path": "[a-z]+"/#, with: #""path": "general""#) }
    try router.importJSONL(path: try write("harsh.jsonl", lines + generalistFails))
    var options = RouterTrainingOptions()
    options.minQuality = 0.99
    XCTAssertThrowsError(try router.train(options: options)) { error in
      XCTAssertTrue("\(error)".contains("no threshold reaches quality 0.99"), "\(error)")
      XCTAssertTrue("\(error)".contains("the closest is escalation"), "\(error)")
    }
    XCTAssertEqual(try router.versions().versions, [])
    let plain = try db.createRouter("plain", paths: [RoutePath(name: "a"), RoutePath(name: "b")])
    XCTAssertThrowsError(try plain.train(options: options)) { error in
      XCTAssertTrue("\(error)".contains("no escalation path"), "\(error)")
    }
    options.maxEscalation = 0.3
    XCTAssertThrowsError(try plain.train(options: options)) { error in
      XCTAssertTrue("\(error)".contains("not both"), "\(error)")
    }
    var greedy = RouterTrainingOptions()
    greedy.heldOutFraction = 0.99
    XCTAssertThrowsError(try router.train(options: greedy)) { error in
      XCTAssertTrue("\(error)".contains("to train on; at least 2 are needed"), "\(error)")
    }
    options.minQuality = nil
    XCTAssertThrowsError(try plain.train(options: options)) { error in
      XCTAssertTrue("\(error)".contains("no escalation path"), "\(error)")
    }
  }

  /// A low escalation target on a router whose escalation path is often the best one: the
  /// threshold sends inputs the classifier is sure need "general" elsewhere, and the report
  /// says how many, as serving them shows.
  func testSureEscalationsSentElsewhereAreWarnedOf() throws {
    let router = try db.createRouter(
      "common",
      paths: [
        RoutePath(name: "search", cost: 1), RoutePath(name: "training", cost: 1),
        RoutePath(name: "general", cost: 4),
      ],
      escalation: "general")
    let lines = try String(contentsOfFile: Self.tools + "/route-examples.jsonl", encoding: .utf8)
    try router.importJSONL(
      path: try write(
        "common.jsonl",
        [lines.replacing(#/"path": "(storage|shell)"/#, with: #""path": "general""#)]))
    var options = RouterTrainingOptions()
    options.maxEscalation = 0.1
    let report = try router.train(options: options)
    let threshold = report.metrics["threshold"]!
    XCTAssertLessThan(threshold, 0.1)

    let decisions = try router.route(report.heldOutInputs, log: false)
    let sure = decisions.filter { $0.probabilities["general"]! >= 0.9 }
    let sentElsewhere = sure.filter { !$0.escalated }.count
    XCTAssertGreaterThan(sentElsewhere, 0, "the setup should make the warning appear")
    XCTAssertEqual(report.warnings.count, 1, "\(report.warnings)")
    let warning = try XCTUnwrap(report.warnings.first)
    XCTAssertTrue(
      warning.hasPrefix(
        String(
          format: "at threshold %.3f (chosen for --max-escalation 0.1) the router sends", threshold)
          + " \(sentElsewhere) of the \(sure.count) held-out inputs it gives to \"general\""
          + " with probability ≥ 0.9 to another path; escalating them all takes a threshold above"),
      warning)

    // A target with room for them all: no warning.
    options.maxEscalation = 1
    XCTAssertEqual(try router.train(options: options).warnings, [])
  }

  func testDecisionsAreLoggedAndOutcomesAttachedLaterFeedDiagnosis() throws {
    let router = try docsRouter()
    try router.importJSONL(path: Self.tools + "/route-examples.jsonl")
    var options = RouterTrainingOptions()
    options.minQuality = 0.9
    XCTAssertTrue(try router.train(options: options).activated)
    let inputs = ["how do I delete a document", "what is the layout of a key", "what is vdb"]
    let decisions = try router.route(inputs)
    XCTAssertEqual(decisions.compactMap(\.logID).count, 3)
    let first = decisions[0]
    let second = decisions[1]
    try router.record(outcome: .bad, path: first.path, for: first.logID!)
    try router.record(outcome: .good, path: second.path, for: second.logID!)
    XCTAssertThrowsError(try router.record(outcome: .good, path: "shell", for: 999_999)) {
      XCTAssertEqual($0 as? VectorDBError, .routeLogEntryNotFound(router: "docs", id: 999_999))
    }
    let diagnosis = try router.diagnose()
    XCTAssertEqual(diagnosis.decisions, 3)
    XCTAssertEqual(diagnosis.judged, 2)
    let expectedUnder = first.escalated ? 0.0 : 0.5
    XCTAssertEqual(diagnosis.underEscalation, expectedUnder, accuracy: 1e-12)
    // The outcome joins the router's data for the next training.
    let example = try router.examples().first { $0.input == inputs[1] }
    XCTAssertEqual(example?.best, second.path)

    // The log as stored: the file's lines, then the three decisions with their outcomes.
    let lines = try String(
      contentsOfFile: Self.tools + "/route-examples.jsonl", encoding: .utf8
    ).split(separator: "\n").count
    let all = try router.logEntries(limit: 1000)
    XCTAssertEqual(all.count, lines + 3)
    XCTAssertEqual(all.map(\.logID), all.map(\.logID).sorted())
    XCTAssertEqual(all.suffix(3).map(\.input), inputs)
    XCTAssertEqual(all.suffix(3).compactMap(\.decision?.path), decisions.map(\.path))
    XCTAssertEqual(all[all.count - 2].outcomes, [second.path: .good])
    // Waiting for an outcome: the third decision only.
    let pending = try router.logEntries(pending: true)
    XCTAssertEqual(pending.map(\.logID), [decisions[2].logID!])
    // Paged by log id; `since` in the future keeps nothing.
    let page = try router.logEntries(after: all[9].logID, limit: 5)
    XCTAssertEqual(page.map(\.logID), all[10..<15].map(\.logID))
    XCTAssertEqual(try router.logEntries(since: Date().addingTimeInterval(60)), [])
    XCTAssertEqual(try router.logEntries(after: .max), [])
    XCTAssertEqual(try router.logEntries(limit: 0), [])
    // An id that is not a decision is most likely mistyped: refused, nothing written.
    XCTAssertThrowsError(try router.record(outcome: .bad, path: first.path, for: all[0].logID)) {
      XCTAssertTrue("\($0)".contains("is a recorded outcome, not a routing decision"), "\($0)")
    }
    XCTAssertEqual(try router.logEntries(limit: 1)[0].outcomes, all[0].outcomes)
  }

  /// Bare decisions are pruned by the log's retention, oldest first, by the log writer as
  /// they come and at once when the retention is set; labelled examples and a decision
  /// with an outcome stay, whatever their age.
  func testRetentionPrunesOnlyDecisionsWithoutOutcomes() throws {
    let router = try docsRouter()
    try router.importJSONL(path: Self.tools + "/route-examples.jsonl")
    XCTAssertTrue(try router.train().activated)
    let labelled = try router.examples().count
    let judged = try router.route(["how do I delete a document"])[0]
    try router.record(outcome: .good, path: judged.path, for: judged.logID!)
    func entries() throws -> Int {
      try db.flushLog()
      return try db.environment.read { try $0.count(db.schema.routing.log) }
    }
    let kept = try entries()
    let limit = kept + 10
    try db.setLogRetention(LogRetention(maxEntries: limit))
    XCTAssertEqual(try entries(), kept, "nothing beyond the limit yet")

    var bare: [RouteDecision] = []
    for round in 0..<4 {
      bare += try router.route((0..<50).map { "question \(round) \($0) about the index" })
      // The writer prunes as it commits: never more than a tenth (plus 64) past the limit.
      XCTAssertLessThanOrEqual(try entries(), limit + limit / 10 + 64, "round \(round)")
    }
    XCTAssertLessThan(try entries(), kept + bare.count, "the writer pruned")
    try db.setLogRetention(LogRetention(maxEntries: limit))
    XCTAssertEqual(try entries(), limit)
    // The newest bare decisions are the ones kept.
    XCTAssertThrowsError(try router.record(outcome: .bad, path: "shell", for: bare[0].logID!)) {
      XCTAssertEqual(
        $0 as? VectorDBError, .routeLogEntryNotFound(router: "docs", id: bare[0].logID!))
    }
    try router.record(outcome: .bad, path: "shell", for: bare.last!.logID!)

    Thread.sleep(forTimeInterval: 0.01)
    try db.setLogRetention(LogRetention(maxEntries: nil, maxAge: 0.005))
    XCTAssertEqual(try entries(), kept + 1, "every bare decision is older than 5 ms")
    XCTAssertEqual(try router.examples().count, labelled + 2)
    XCTAssertEqual(try router.diagnose().judged, 2)
  }
}
