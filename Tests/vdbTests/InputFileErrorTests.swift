import Foundation
import VectorDB
import XCTest

/// Bad input files through the real binary: exit 1 and a message naming the file and
/// line (or field), in words of the format, not of Swift or Foundation.
final class InputFileErrorTests: ShellTestCase {
  private func write(_ name: String, _ text: String) throws -> String {
    let path = directory + "/" + name
    try FileManager.default.createDirectory(
      atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    return path
  }

  private func assertRefused(
    _ arguments: [String], _ message: String, file: StaticString = #filePath, line: UInt = #line
  ) throws {
    let result = try Shell.vdb(arguments + ["--db", db])
    XCTAssertEqual(result.status, 1, result.stderr, file: file, line: line)
    XCTAssertEqual(
      result.stderr.split(separator: "\n").first.map(String.init), "error: \(message)",
      file: file, line: line)
  }

  /// An empty vector file is said to hold no vectors (not "dimension 0"), into a new
  /// collection or an existing one; a too wide one is named at its record.
  func testVectorFilesWithoutVectorsOrTooWideAreNamed() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let empty = try write("empty.fvecs", "")
    try assertRefused(
      ["import", "--vectors", empty, "-c", "v", "--metric", "l2"],
      "\(empty): the file holds no vectors")
    let good = directory + "/good.fvecs"
    try VectorFile.fvecsBytes([[1, 2], [3, 4]]).write(to: URL(fileURLWithPath: good))
    XCTAssertEqual(try Shell.vdb(["import", "--vectors", good, "-c", "v", "--db", db]).status, 0)
    try assertRefused(
      ["import", "--vectors", empty, "-c", "v"], "\(empty): the file holds no vectors")
    let wide = directory + "/wide.fvecs"
    try VectorFile.fvecsBytes([[Float](repeating: 0.5, count: 70_000)])
      .write(to: URL(fileURLWithPath: wide))
    try assertRefused(
      ["import", "--vectors", wide, "-c", "w", "--metric", "l2"],
      "\(wide):1: record of dimension 70000; it must be in 1...65536")
  }

  /// `--vectors -` reads standard input, `.npy` or `.fvecs` as its first bytes say
  /// (a pipe has no name to tell); a pipe of neither is named as what it was taken for.
  func testVectorsFromStandardInputInEitherFormat() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let rows: [[Float]] = [[1, 0.5], [-2, 3], [0.25, 4]]
    let npy = directory + "/rows.npy"
    try VectorFile.npyBytes(rows, dimension: 2).write(to: URL(fileURLWithPath: npy))
    let fvecs = directory + "/rows.fvecs"
    try VectorFile.fvecsBytes(rows).write(to: URL(fileURLWithPath: fvecs))
    for (file, collection) in [(npy, "n"), (fvecs, "f")] {
      // A pipe, not a redirected file: `cat FILE | vdb …`.
      let piped = try Shell.vdb(
        ["import", "--vectors", "-", "-c", collection, "--metric", "l2", "--json", "--db", db],
        launcher: ["/bin/sh", "-c", "cat '\(file)' | \"$0\" \"$@\""])
      XCTAssertEqual(piped.status, 0, piped.stderr)
      let got = try Shell.vdb(
        ["get", "-c", collection, "0", "1", "2", "--include", "vector", "--json", "--db", db])
      XCTAssertEqual(
        got.stdout.split(separator: "\n").map {
          try? JSONDecoder().decode(Row.self, from: Data($0.utf8)).vector
        }, rows, collection)
    }
    let text = try Shell.vdb(
      ["import", "--vectors", "-", "-c", "t", "--metric", "l2", "--db", db], input: "hello\n")
    XCTAssertEqual(text.status, 1)
    XCTAssertEqual(
      text.stderr.split(separator: "\n").first,
      "error: <stdin>:1: record of dimension 1819043176; it must be in 1...65536")
  }

  private struct Row: Decodable { var vector: [Float] }

  /// Files read whole (query lists, qrels, routing examples, id lists) are bounded too: a
  /// device that gives bytes without end was read until memory ran out, and the process
  /// ended (`query --file /dev/zero`, `feedback --qrels /dev/zero`: SIGILL).
  func testFilesReadWholeRefuseADeviceWithoutEnd() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["collections", "create", "v", "--vectors", "2", "--db", db]).status, 0)
    XCTAssertEqual(try Shell.vdb(["route", "create", "r", "a", "b", "--db", db]).status, 0)
    for arguments in [
      ["query", "-c", "v", "--file", "/dev/zero"],
      ["feedback", "-c", "v", "--qrels", "/dev/zero", "--queries", "/dev/zero"],
      ["route", "import", "-r", "r", "/dev/zero"], ["get", "-c", "v", "--ids-from", "/dev/zero"],
    ] {
      try assertRefused(
        arguments,
        "/dev/zero: cannot read: a device that gives more than 64 MiB (such as /dev/zero) is"
          + " not read; give a file or a pipe")
    }
  }

  /// A file that cannot be read says why; a pipe is read like a file (input files are read,
  /// not mapped: a mapped file cut short mid-import killed the process with SIGBUS).
  func testUnreadableInputSaysWhyAndPipesAreRead() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["collections", "create", "v", "--vectors", "2", "--db", db]).status, 0)
    let missing = directory + "/missing.jsonl"
    try assertRefused(
      ["import", missing, "-c", "v"], "\(missing): cannot read: no such file or directory")
    try assertRefused(
      ["import", directory, "-c", "v"],
      "\(directory!): cannot read: it is a directory, not a file")
    let piped = try Shell.vdb(
      ["import", "/dev/stdin", "-c", "v", "--db", db],
      input: #"{"id": "a", "text": "x", "vector": [1, 2]}"# + "\n")
    XCTAssertEqual(piped.status, 0, piped.stderr)
    XCTAssertEqual(try Shell.vdb(["count", "-c", "v", "--db", db]).stdout, "1\n")
  }

  /// A BEIR directory whose queries.jsonl has an empty or blank query text: eval and
  /// feedback name queries.jsonl and its line (were "query:2", "judgement:2", or for a
  /// blank text nothing at all).
  func testBlankQueryTextsNameTheirFileAndLine() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let beir = directory + "/beir"
    _ = try write(
      "beir/corpus.jsonl",
      #"{"_id":"d1","text":"hello world"}"# + "\n" + #"{"_id":"d2","text":"graphs"}"# + "\n")
    let qrels = try write(
      "beir/qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    XCTAssertEqual(try Shell.vdb(["import", "--beir", beir, "-c", "b", "--db", db]).status, 0)
    for text in ["", "  "] {
      let queries = try write(
        "beir/queries.jsonl",
        #"{"_id":"q1","text":"hello"}"# + "\n" + #"{"_id":"q2","text":"\#(text)"}"# + "\n")
      try assertRefused(
        ["eval", "-c", "b", "--beir", beir], "\(queries):2: the query text is empty")
      try assertRefused(
        ["feedback", "-c", "b", "--qrels", qrels, "--queries", queries],
        "\(queries):2: the query text is empty")
    }
  }

  /// Triples and qrels naming a document the collection lacks: the file and line, and
  /// nothing logged.
  func testUnknownDocumentsNameTheirFileAndLine() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let corpus = try write(
      "corpus.jsonl", #"{"id":"d1","text":"hello world"}"# + "\n" + #"{"id":"d2","text":"b"}"#)
    XCTAssertEqual(try Shell.vdb(["import", corpus, "-c", "b", "--db", db]).status, 0)
    let triples = try write(
      "tr.jsonl",
      #"{"query":"hi","positive":"d1"}"# + "\n" + #"{"query":"hi 2","positive":"zzz"}"# + "\n")
    try assertRefused(
      ["feedback", "-c", "b", "--triples", triples],
      "\(triples):2: no document \"zzz\" in collection \"b\"")
    let queries = try write("queries.jsonl", #"{"_id":"q1","text":"hello"}"#)
    let qrels = try write("qrels.tsv", "q1\td1\t1\nq1\tzzz\t1\n")
    try assertRefused(
      ["feedback", "-c", "b", "--qrels", qrels, "--queries", queries],
      "\(qrels):2: no document \"zzz\" in collection \"b\"")
    let log = try Shell.vdb(["log", "-c", "b", "--json", "--db", db])
    XCTAssertEqual(log.status, 0, log.stderr)
    XCTAssertFalse(log.stdout.contains("\"hi"), log.stdout)
  }

  /// A damaged model directory: the file and field, the JSON type in JSON's words, and
  /// no Swift or Foundation text ("is not a Int", "NSCocoaErrorDomain error 256").
  func testModelDirectoryErrorsNameFileAndFieldInJSONWords() throws {
    let model = directory + "/model"
    let source = DefaultModel.directory
    func copyModel() throws {
      try? FileManager.default.removeItem(atPath: model)
      try FileManager.default.createDirectory(
        atPath: model + "/1_Pooling", withIntermediateDirectories: true)
      for file in [
        "config.json", "vocab.txt", "tokenizer_config.json", "sentence_bert_config.json",
        "modules.json", "1_Pooling/config.json",
      ] where FileManager.default.fileExists(atPath: source + "/" + file) {
        try FileManager.default.copyItem(atPath: source + "/" + file, toPath: model + "/" + file)
      }
      try FileManager.default.createSymbolicLink(
        atPath: model + "/model.safetensors", withDestinationPath: source + "/model.safetensors")
    }
    func assertEmbedRefused(_ message: String, line: UInt = #line) throws {
      let result = try Shell.vdb(["embed", "--model", model, "hello"])
      XCTAssertEqual(result.status, 1, result.stderr, line: line)
      XCTAssertTrue(result.stderr.hasPrefix("error: "), result.stderr, line: line)
      XCTAssertTrue(result.stderr.contains(message), result.stderr, line: line)
      for raw in [
        "a Int", "a String", "Dictionary<", "NSCocoa", "Expected to decode", "around character",
      ] {
        XCTAssertFalse(result.stderr.contains(raw), result.stderr, line: line)
      }
    }
    try copyModel()
    let config = model + "/config.json"
    let original = try String(contentsOfFile: config, encoding: .utf8)
    try original.replacingOccurrences(of: "\"hidden_size\": 384", with: "\"hidden_size\": \"384\"")
      .write(toFile: config, atomically: true, encoding: .utf8)
    try assertEmbedRefused("\(config): field 'hidden_size' must be an integer")
    try "[1,2]".write(toFile: config, atomically: true, encoding: .utf8)
    try assertEmbedRefused("\(config): the top-level value must be an object")
    try original.replacingOccurrences(of: "1e-12", with: "1e400")
      .write(toFile: config, atomically: true, encoding: .utf8)
    try assertEmbedRefused("\(config): not valid JSON at line ")

    try copyModel()
    try FileManager.default.removeItem(atPath: model + "/vocab.txt")
    try FileManager.default.createDirectory(
      atPath: model + "/vocab.txt", withIntermediateDirectories: false)
    try assertEmbedRefused("\(model)/vocab.txt: cannot read: it is a directory, not a file")

    try copyModel()
    let sentence = model + "/sentence_bert_config.json"
    try #"{"max_seq_length": 0}"#.write(toFile: sentence, atomically: true, encoding: .utf8)
    try assertEmbedRefused("\(sentence): max_seq_length 0 is outside 2...512")
  }
}
