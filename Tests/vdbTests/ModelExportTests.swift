import Foundation
import VectorDB
import XCTest

/// `vdb models export` writes a stored model as a sentence-transformers directory;
/// vdb loads it back and embeds exactly as the stored model does (`embed
/// --model-version`), and importing it finds the same weights.
final class ModelExportTests: ShellTestCase {
  /// The vectors `vdb embed ARGS --json` prints, in input order.
  func vectors(_ arguments: [String]) throws -> [[Float]] {
    let result = try Shell.vdb(["embed"] + arguments + ["--json"])
    XCTAssertEqual(result.status, 0, "\(arguments): \(result.stderr)")
    return try result.stdout.split(separator: "\n").map { line in
      let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
      return (object?["vector"] as? [Double] ?? []).map(Float.init)
    }
  }

  func testExportedModelLoadsBackAndEmbedsLikeTheStoredOne() throws {
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
    XCTAssertEqual(try Shell.vdb(["init", "--db", db]).status, 0)
    let exported = directory + "/exported"
    let export = try Shell.vdb(["models", "export", "1", exported, "--db", db, "--json"])
    XCTAssertEqual(export.status, 0, export.stderr)
    let report = try JSONSerialization.jsonObject(with: Data(export.stdout.utf8)) as? [String: Any]
    let files = report?["files"] as? [String] ?? []
    for name in [
      "config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "modules.json",
      "sentence_bert_config.json", "1_Pooling/config.json",
    ] {
      XCTAssertTrue(files.contains(name), "\(name) in \(files)")
      XCTAssertTrue(FileManager.default.fileExists(atPath: exported + "/" + name), name)
    }

    let texts = ["What is HNSW?", "LMDB est un arbre B+ — café, 中文 naïve"]
    let stored = try vectors(texts + ["--model-version", "1", "--db", db])
    XCTAssertEqual(stored.count, 2)
    XCTAssertEqual(stored.first?.count, 384)
    XCTAssertEqual(try vectors(texts + ["--model", exported]), stored, "same model, same floats")
    XCTAssertEqual(try vectors(texts), stored, "the stored model is the default one")

    let database = try Database(path: db)
    XCTAssertEqual(
      try database.importModel(directory: exported).version, 1, "the same weights: version 1")

    // Refusals name the input, leave nothing behind.
    let again = try Shell.vdb(["models", "export", "1", exported, "--db", db])
    XCTAssertEqual(again.status, 1, again.stderr)
    XCTAssertTrue(
      again.stderr.hasPrefix("error: \(exported): exists and is not an empty directory"),
      again.stderr)
    let missing = try Shell.vdb(["models", "export", "7", directory + "/seven", "--db", db])
    XCTAssertEqual(missing.status, 1)
    XCTAssertTrue(missing.stderr.hasPrefix("error: no model version 7"), missing.stderr)
    let unwritable = try Shell.vdb(["models", "export", "1", "/proc/vdb-export", "--db", db])
    XCTAssertEqual(unwritable.status, 1, unwritable.stderr)
    XCTAssertTrue(unwritable.stderr.hasPrefix("error: /proc/"), unwritable.stderr)
    XCTAssertEqual(
      try FileManager.default.contentsOfDirectory(atPath: directory).sorted(), ["db", "exported"])
    let both = try Shell.vdb(["embed", "x", "--model", exported, "--model-version", "1"])
    XCTAssertEqual(both.status, 2, both.stderr)
  }

  /// `vdb embed --as query|document` puts the model's prompt before each text, as the
  /// retriever does; without it the texts are embedded as given.
  /// A model directory `name` of the default model's files (linked) but for
  /// `config_sentence_transformers.json`, which holds `settings`.
  private func modelDirectory(_ name: String, settings: String) throws -> String {
    let model = directory + "/" + name
    try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
    for name in [
      "config.json", "vocab.txt", "tokenizer_config.json", "sentence_bert_config.json",
      "1_Pooling", "modules.json", "model.safetensors",
    ] {
      try FileManager.default.createSymbolicLink(
        atPath: model + "/" + name, withDestinationPath: DefaultModel.directory + "/" + name)
    }
    try settings.write(
      toFile: model + "/config_sentence_transformers.json", atomically: true, encoding: .utf8)
    return model
  }

  func testEmbedAsAQueryOrADocumentAddsTheModelsPrompt() throws {
    let model = try modelDirectory(
      "prompted", settings: #"{"prompts": {"query": "query: ", "passage": "passage: "}}"#)
    let initialised = try Shell.vdb(["init", "--db", db, "--model", model])
    XCTAssertEqual(initialised.status, 0, initialised.stderr)
    XCTAssertTrue(
      initialised.stdout.hasSuffix("\n  prompts: query \"query: \", document \"passage: \"\n"),
      initialised.stdout)
    let text = "What is HNSW?"
    let asQuery = try vectors(["query: " + text, "--model", model])
    let asDocument = try vectors(["passage: " + text, "--model", model])
    XCTAssertNotEqual(asQuery, asDocument)
    XCTAssertEqual(try vectors([text, "--model", model, "--as", "query"]), asQuery)
    XCTAssertEqual(try vectors([text, "--model", model, "--as", "document"]), asDocument)
    XCTAssertEqual(
      try vectors([text, "--model-version", "1", "--db", db, "--as", "query"]), asQuery)
    XCTAssertEqual(try vectors([text, "--model", model]), try vectors([text]), "as given")
    let other = try Shell.vdb(["embed", text, "--as", "passage"])
    XCTAssertEqual(other.status, 2, other.stderr)
  }

  func testCollectionsOfTheModelCompareAsItSays() throws {
    let model = try modelDirectory("dot", settings: #"{"similarity_fn_name": "dot"}"#)
    let initialised = try Shell.vdb(["init", "--db", db, "--model", model])
    XCTAssertEqual(initialised.status, 0, initialised.stderr)
    XCTAssertTrue(
      initialised.stdout.hasSuffix(
        "\n  similarity dot: its collections compare by it unless created with --metric\n"),
      initialised.stdout)
    for arguments in [["t"], ["c", "--metric", "cosine"], ["v", "--vectors", "4"]] {
      let created = try Shell.vdb(["collections", "create", "--db", db] + arguments)
      XCTAssertEqual(created.status, 0, created.stderr)
    }
    let listed = try Shell.vdb(["collections", "--db", db, "--json"])
    let array = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]
    let metrics = (array ?? []).map { "\($0["name"] ?? "")=\($0["metric"] ?? "")" }
    XCTAssertEqual(metrics, ["c=cosine", "t=dot", "v=cosine"])
    // A re-embed keeps the collection's metric, and says so when the model's differs.
    XCTAssertEqual(
      try Shell.vdb(["upsert", "-c", "c", "--id", "a", "--text", "a note", "--db", db]).status, 0)
    let reembed = try Shell.vdb(["reembed", "-c", "c", "--model", "1", "--all", "--db", db])
    XCTAssertEqual(reembed.status, 0, reembed.stderr)
    XCTAssertTrue(
      reembed.stderr.hasPrefix(
        "warning: model v1 compares its vectors by dot; collection \"c\" keeps its metric,"
          + " cosine (fixed when the collection was made)\n"), reembed.stderr)
  }
}
