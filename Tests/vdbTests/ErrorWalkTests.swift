import ArgumentParser
import Embedding
import Foundation
import HNSW
import LMDB
import Training
import VectorDB
import XCTest

@testable import vdb

/// Every case of the public error enums — `VectorDBError` and the lower modules' errors
/// it wraps — through the shell's one reporting path (`VDB.report`): a one-line message
/// that names what and where, and the exit code docs/shell.md documents.
final class ErrorWalkTests: XCTestCase {
  /// The documented exit codes (docs/shell.md, `vdb --help`).
  enum Code: Int32 {
    case user = 1
    case usage = 2
    case database = 3
    case interrupted = 130
  }

  /// One sample of every `VectorDBError` case; the words its message must hold; its code.
  let samples: [(error: VectorDBError, names: [String], code: Code)] = [
    (.notADatabase(path: "/d/db", reason: "it is a file"), ["/d/db", "it is a file"], .database),
    (.newerFormat(path: "/d/db", found: 9, supported: 4), ["/d/db", "9", "4"], .database),
    (.damaged(path: "/d/db", detail: "table docs: page 7"), ["/d/db", "page 7"], .database),
    (.databaseNotFound(path: "/d/none"), ["/d/none"], .user),
    (.collectionNotFound("notes"), ["notes"], .user),
    (.collectionExists("notes"), ["notes"], .user),
    (.collectionBusy(name: "notes", job: "a re-embed job"), ["notes", "re-embed"], .user),
    (.documentNotFound(id: "doc-7", collection: "notes"), ["doc-7", "notes"], .user),
    (.invalidDocument(id: "doc-7", reason: "empty text"), ["doc-7", "empty text"], .user),
    (.logEntryNotFound(42), ["42"], .user),
    (.modelNotFound(5), ["5"], .user),
    (.modelWithoutWeights(5), ["5"], .user),
    (.modelInUse(version: 5, by: "notes generation 2"), ["5", "notes generation 2"], .user),
    (
      .invalidModel(directory: "/m", reason: "config.json: no vocab_size"), ["/m", "config.json"],
      .user
    ),
    (.invalidVector(reason: "row 3 holds NaN"), ["row 3"], .user),
    (.routerNotFound("support"), ["\"support\""], .user),
    (.routeLogEntryNotFound(router: "support", id: 42), ["\"support\"", "42"], .user),
    (
      .routerNotAvailable(router: "support", reason: "has no earlier version to roll back to"),
      ["\"support\"", "earlier version"], .user
    ),
    (.routerVersionWithoutWeights(router: "support", version: 3), ["\"support\"", "3"], .user),
    (
      .notEnoughExamples(router: "support", short: ["faq": 3, "agent": 0], needed: 8),
      ["\"support\"", "\"faq\" has 3 (5 more needed)", "\"agent\" has 0 (8 more needed)"], .user
    ),
    (.notAvailable(collection: "v", reason: "has no vectors"), ["\"v\"", "no vectors"], .user),
    (
      .modelUnsuitable(version: 4, reason: "is an encoder, not an adapter"), ["4", "encoder"], .user
    ),
    (
      .concurrentChange(collection: "v", detail: "generation 2 was dropped during the job"),
      ["\"v\"", "generation 2"], .user
    ),
    (.invalidInput(source: "docs.jsonl", line: 12, reason: "bad JSON"), ["docs.jsonl:12"], .user),
    (.invalidInput(source: "--meta", line: nil, reason: "not an object"), ["--meta"], .user),
    (
      .storage(LMDBError(code: EACCES, operation: "begin write transaction in /d/db")),
      ["/d/db", "Permission denied"], .database
    ),
    (
      .storage(LMDBError(code: ENOSPC, operation: "commit", table: "docs")),
      ["commit", "docs", "No space"], .database
    ),
    (
      .notEnoughJudgements(collection: "notes", judged: 3, needed: 80), ["notes", "3", "80"],
      .user
    ),
    (.collectionBusy(name: "notes", job: "a training run in process 77"), ["notes", "77"], .user),
    (.nothingToResume(collection: "notes"), ["notes"], .user),
  ]

  /// The case's name; a switch with no default, so a new case fails to compile here
  /// until it is given a sample above.
  static func caseName(_ error: VectorDBError) -> String {
    switch error {
    case .notADatabase: return "notADatabase"
    case .newerFormat: return "newerFormat"
    case .damaged: return "damaged"
    case .databaseNotFound: return "databaseNotFound"
    case .collectionNotFound: return "collectionNotFound"
    case .collectionExists: return "collectionExists"
    case .collectionBusy: return "collectionBusy"
    case .documentNotFound: return "documentNotFound"
    case .invalidDocument: return "invalidDocument"
    case .logEntryNotFound: return "logEntryNotFound"
    case .modelNotFound: return "modelNotFound"
    case .modelWithoutWeights: return "modelWithoutWeights"
    case .modelInUse: return "modelInUse"
    case .invalidModel: return "invalidModel"
    case .invalidVector: return "invalidVector"
    case .routerNotFound: return "routerNotFound"
    case .routeLogEntryNotFound: return "routeLogEntryNotFound"
    case .routerNotAvailable: return "routerNotAvailable"
    case .routerVersionWithoutWeights: return "routerVersionWithoutWeights"
    case .notEnoughExamples: return "notEnoughExamples"
    case .notAvailable: return "notAvailable"
    case .modelUnsuitable: return "modelUnsuitable"
    case .concurrentChange: return "concurrentChange"
    case .invalidInput: return "invalidInput"
    case .storage: return "storage"
    case .notEnoughJudgements: return "notEnoughJudgements"
    case .nothingToResume: return "nothingToResume"
    }
  }

  func assertOneLine(
    _ text: String, _ what: String, file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertFalse(text.isEmpty, what, file: file, line: line)
    XCTAssertFalse(text.contains("\n"), "\(what): \(text)", file: file, line: line)
    for raw in ["Optional(", "Error(", "NSCocoaErrorDomain", "Swift.", "_GenericObjCError"] {
      XCTAssertFalse(text.contains(raw), "\(what): raw \(raw) in \(text)", file: file, line: line)
    }
  }

  func testEveryVectorDBErrorNamesWhatAndWhereWithItsExitCode() {
    XCTAssertEqual(Set(samples.map { Self.caseName($0.error) }).count, 27, "a sample per case")
    for (error, names, code) in samples {
      let message = error.description
      assertOneLine(message, Self.caseName(error))
      for name in names {
        XCTAssertTrue(message.contains(name), "\(Self.caseName(error)): \"\(name)\" in \(message)")
      }
      if let hint = error.hint { assertOneLine(hint, "hint of \(Self.caseName(error))") }
      XCTAssertEqual(VDB.report(error), code.rawValue, message)
    }
    XCTAssertNotNil(
      VectorDBError.storage(LMDBError(code: ENOSPC, operation: "commit")).hint?.contains("disk"))
    XCTAssertNotNil(
      VectorDBError.storage(LMDBError(code: EACCES, operation: "open")).hint?.contains("read-only"))
  }

  /// Each lower module's errors, as the shell reports them: the case they stand for,
  /// the detail kept, the documented code.
  func testEveryWrappedErrorMapsToItsCaseAndCode() {
    let path = "/d/db"
    let lower: [(error: Error, kind: String, names: [String], code: Code)] = [
      (LMDBError(code: -30_796, operation: "get", table: "docs"), "damaged", ["docs"], .database),
      (LMDBError(code: -30_797, operation: "get", table: "docs"), "damaged", ["docs"], .database),
      (LMDBError(code: EIO, operation: "read page"), "storage", ["read page"], .database),
      (VectorIndexError.notFound(name: "c1.g2"), "damaged", ["c1.g2"], .database),
      (VectorIndexError.alreadyExists(name: "c1.g2"), "damaged", ["c1.g2"], .database),
      (
        VectorIndexError.invalidSettings(name: "c1.g2", reason: "M is 0"), "invalidInput",
        ["M is 0"], .user
      ),
      (
        VectorIndexError.newerFormat(name: "c1.g2", found: 3, supported: 1), "damaged",
        ["c1.g2", "3"], .database
      ),
      (VectorIndexError.corrupt("node 4"), "damaged", ["node 4"], .database),
      (VectorIndexError.readOnly, "damaged", ["read transaction"], .database),
      (HNSWError.dimensionMismatch(expected: 384, got: 3), "invalidVector", ["384", "3"], .user),
      (HNSWError.nonFiniteComponent(index: 7), "invalidVector", ["7"], .user),
      (HNSWError.zeroVector, "invalidVector", ["zero vector"], .user),
      (
        HNSWError.invalidParameter(name: "ef", value: "0", reason: "at least 1"), "invalidInput",
        ["ef"], .user
      ),
      (HNSWError.duplicateNode(9), "invalidInput", ["9"], .user),
      (HNSWError.corrupt("layer 2 of node 9"), "damaged", ["node 9"], .database),
      (TrainingError.invalidShape("heads 5"), "invalidModel", ["heads 5"], .user),
      (TrainingError.badParameter(name: "w", reason: "3 values"), "invalidModel", ["w"], .user),
      (TrainingError.badSequence(index: 4, reason: "empty"), "invalidInput", ["4"], .user),
      (TrainingError.badInput("no pairs"), "invalidInput", ["no pairs"], .user),
      (TrainingError.badCheckpoint("truncated"), "damaged", ["truncated"], .database),
      (EmbeddingError.missingFile(path: "/m/vocab.txt"), "invalidModel", ["/m/vocab.txt"], .user),
      (
        EmbeddingError.unreadableFile(path: "/m/vocab.txt", reason: "not UTF-8"), "invalidModel",
        ["/m/vocab.txt"], .user
      ),
      (
        EmbeddingError.invalidSafeTensors(source: "/m/w", tensor: "t", reason: "overlap"),
        "invalidModel", ["/m/w", "'t'"], .user
      ),
      (
        EmbeddingError.invalidConfiguration(source: "/m/config.json", reason: "hidden_size is 0"),
        "invalidModel", ["/m/config.json", "hidden_size"], .user
      ),
      (
        EmbeddingError.unsupported(source: "/m/c", feature: "gelu_new"), "invalidModel",
        ["gelu_new"], .user
      ),
      (
        EmbeddingError.missingTensor(source: "/m/w", tensor: "t.bias"), "invalidModel", ["t.bias"],
        .user
      ),
      (
        EmbeddingError.wrongShape(source: "/m/w", tensor: "t", shape: [2], expected: [3]),
        "invalidModel", ["[2]", "[3]"], .user
      ),
      (
        EmbeddingError.nonFiniteWeight(source: "/m/w", tensor: "t", index: 11), "invalidModel",
        ["'t'", "11"], .user
      ),
      (
        EmbeddingError.unsupportedDType(source: "/m/w", tensor: "t", dtype: "BF16"), "invalidModel",
        ["BF16"], .user
      ),
      (
        EmbeddingError.invalidVocabulary(source: "/m/vocab.txt", reason: "no [UNK]"),
        "invalidModel",
        ["[UNK]"], .user
      ),
      (
        EmbeddingError.invalidTokenIDs(sequence: 2, reason: "id 99999"), "invalidModel", ["99999"],
        .user
      ),
      (
        CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: "/out/q.json"]),
        "invalidInput", ["/out/q.json", "write"], .user
      ),
      (
        CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: "/in/q.txt"]),
        "invalidInput", ["/in/q.txt", "read"], .user
      ),
      (
        DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "bad")), "damaged",
        ["stored record"], .database
      ),
      (
        EncodingError.invalidValue(1.0, .init(codingPath: [], debugDescription: "too deep")),
        "invalidInput", ["too deep"], .user
      ),
    ]
    for (error, kind, names, code) in lower {
      guard let wrapped = VectorDBError(wrapping: error, path: path) else {
        XCTFail("\(error) is not mapped")
        continue
      }
      XCTAssertEqual(Self.caseName(wrapped), kind, "\(error)")
      assertOneLine(wrapped.description, "\(error)")
      for name in names {
        XCTAssertTrue(wrapped.description.contains(name), "\(name) in \(wrapped.description)")
      }
      if kind == "damaged" {
        XCTAssertTrue(wrapped.description.contains(path), "the place: \(wrapped.description)")
      }
      XCTAssertEqual(VDB.report(error), code.rawValue, wrapped.description)
    }
  }

  func testTheShellsOwnErrorsAndTheDocumentedCodes() throws {
    XCTAssertEqual(VDB.report(CLIError(message: "no collection given")), Code.user.rawValue)
    XCTAssertEqual(VDB.report(CLIError(message: "usage: use C", usage: true)), Code.usage.rawValue)
    XCTAssertEqual(VDB.report(ValidationError("--limit must be 1...")), Code.usage.rawValue)
    XCTAssertEqual(VDB.report(CancellationError()), Code.interrupted.rawValue)

    // docs/shell.md and `vdb --help` state the same codes.
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent()
    let doc = try String(contentsOf: root.appendingPathComponent("docs/shell.md"), encoding: .utf8)
      .split(whereSeparator: \.isWhitespace).joined(separator: " ")
    for phrase in [
      "**0** ok", "**1** user error", "**2** usage error", "**3** database error",
      "**130** interrupted",
    ] {
      XCTAssertTrue(doc.contains(phrase), "docs/shell.md: \(phrase)")
    }
    let help = VDB.helpMessage().split(whereSeparator: \.isWhitespace).joined(separator: " ")
    XCTAssertTrue(
      help.contains("0 ok, 1 user error (bad input, unknown id), 2 usage error, 3 database error"),
      help)
  }
}
