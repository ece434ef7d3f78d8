import Foundation
import LMDB
import Tensor
import VectorDB
import XCTest

/// Careless and hostile input through the real binary: it must answer with the right
/// exit code and a message naming the input, never crash, never take "damaged" for
/// "empty", never write where it was not asked to.
final class HostileInputTests: ShellTestCase {
  /// A `.npy` file (format 1.0, `<f4`) with `shape` written verbatim and `floats`
  /// zero floats of data.
  func writeNPY(_ name: String, shape: String, floats: Int) throws -> String {
    var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }"
    header += String(repeating: " ", count: 63 - (10 + header.utf8.count) % 64) + "\n"
    var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
    data += [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
    data += Data(header.utf8) + Data(count: floats * 4)
    let path = directory + "/" + name
    try data.write(to: URL(fileURLWithPath: path))
    return path
  }

  func writeFvecs(_ name: String, rows: [[Float]], dimension: Int32? = nil) throws -> String {
    var data = Data()
    for row in rows {
      withUnsafeBytes(of: (dimension ?? Int32(row.count)).littleEndian) { data += $0 }
      for value in row { withUnsafeBytes(of: value.bitPattern.littleEndian) { data += $0 } }
    }
    let path = directory + "/" + name
    try data.write(to: URL(fileURLWithPath: path))
    return path
  }

  func assertNoCrash(
    _ result: Shell.Result, _ what: String, file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertFalse(
      result.signaled, "\(what): killed by signal \(result.status)\n\(result.stderr)", file: file,
      line: line)
    XCTAssertFalse(
      result.stderr.contains("Fatal error") || result.stderr.contains("Backtrace")
        || result.stderr.contains("crashed"),
      "\(what): raw crash output\n\(result.stderr)", file: file, line: line)
    if result.status != 0 {
      XCTAssertTrue(
        result.stderr.hasPrefix("error: ") || result.stderr.hasPrefix("warning: "),
        "\(what): \(result.stderr)", file: file, line: line)
    }
  }

  func testVectorFileHeadersThatWouldTrapAreRefusedNamingTheFile() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let cases: [(String, String, Int)] = [
      ("negative.npy", "(-1, 16)", 16),
      ("overflow.npy", "(9223372036854775807, 16)", 16),
      ("terabytes.npy", "(1000000000000, 0)", 0),
      ("zero-dimension.npy", "(50000000, 0)", 0),
      ("three-d.npy", "(2, 4, 4)", 32),
      ("words.npy", "(two, 4)", 8),
      ("short.npy", "(4, 16)", 63),
    ]
    for (name, shape, floats) in cases {
      let path = try writeNPY(name, shape: shape, floats: floats)
      let result = try Shell.vdb(["import", "--vectors", path, "-c", "v", "--db", db])
      assertNoCrash(result, shape)
      XCTAssertEqual(result.status, 1, "\(shape): \(result.stderr)")
      XCTAssertTrue(result.stderr.hasPrefix("error: \(path): "), result.stderr)
    }
    let negative = try writeFvecs("negative.fvecs", rows: [[1, 2]], dimension: -5)
    let fvecs = try Shell.vdb(["import", "--vectors", negative, "-c", "v", "--db", db])
    XCTAssertEqual(fvecs.status, 1, fvecs.stderr)
    XCTAssertTrue(fvecs.stderr.contains("\(negative):1: "), fvecs.stderr)

    // The same reader behind `query --vectors`.
    let good = try writeFvecs(
      "good.fvecs", rows: (0..<20).map { i in (0..<4).map { Float($0 + i) } })
    XCTAssertEqual(try Shell.vdb(["import", "--vectors", good, "-c", "v", "--db", db]).status, 0)
    let bad = directory + "/negative.npy"
    let query = try Shell.vdb(["query", "--vectors", bad, "-c", "v", "--db", db, "--no-log"])
    assertNoCrash(query, "query --vectors")
    XCTAssertEqual(query.status, 1, query.stderr)
  }

  func testBadVectorsNameTheRowAndAreUserErrors() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    // The collection exists first: a failed first import removes the collection it made.
    let good = try writeFvecs("good.fvecs", rows: [[1, 0, 0], [0, 1, 0]])
    XCTAssertEqual(try Shell.vdb(["import", "--vectors", good, "-c", "v", "--db", db]).status, 0)
    let rows: [[Float]] = [[1, 0, 0], [0, 1, 0], [0, .nan, 1]]
    let nan = try writeFvecs("nan.fvecs", rows: rows)
    let result = try Shell.vdb(["import", "--vectors", nan, "-c", "v", "--db", db])
    XCTAssertEqual(result.status, 1, result.stderr)
    XCTAssertTrue(result.stderr.contains("\(nan):3: row 2: "), result.stderr)
    let zero = try writeFvecs("zero.fvecs", rows: [[1, 0, 0], [0, 0, 0]])
    let zeros = try Shell.vdb(["import", "--vectors", zero, "-c", "v", "--db", db])
    XCTAssertEqual(zeros.status, 1, zeros.stderr)
    XCTAssertTrue(zeros.stderr.contains("\(zero):2: row 1: the vector is all zeros"), zeros.stderr)
    let infinite = try Shell.vdb([
      "upsert", "--db", db, "-c", "v", "--id", "x", "--text", "", "--vector", "[1, 1e39, 0]",
    ])
    XCTAssertEqual(infinite.status, 1, infinite.stderr)
    XCTAssertTrue(infinite.stderr.contains("document \"x\""), infinite.stderr)
  }

  /// A JSON Lines import is checked whole before it writes: a vector whose length would
  /// overflow l2 scores, past the first batch, writes nothing and names its line.
  func testAVectorTooLongForScoresFailsTheImportAtItsLine() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let create = ["collections", "create", "v", "--vectors", "4", "--metric", "l2", "--db", db]
    XCTAssertEqual(try Shell.vdb(create).status, 0)
    let file = directory + "/big.jsonl"
    var lines = (0..<300).map { #"{"id": "g\#($0)", "text": "", "vector": [1, 2, 3, 4]}"# }
    lines.append(#"{"id": "bad", "text": "", "vector": [3e38, 3e38, 3e38, 3e38]}"#)
    try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: file))
    let result = try Shell.vdb(["import", file, "-c", "v", "--db", db])
    XCTAssertEqual(result.status, 1, result.stderr)
    XCTAssertTrue(result.stderr.contains("\(file):301:"), result.stderr)
    XCTAssertTrue(result.stderr.contains("scores would overflow"), result.stderr)
    XCTAssertEqual(try Shell.vdb(["count", "-c", "v", "--db", db]).stdout, "0\n")
    let skipping = try Shell.vdb(["import", file, "-c", "v", "--db", db, "--skip-bad"])
    XCTAssertEqual(skipping.status, 0, skipping.stderr)
    XCTAssertEqual(try Shell.vdb(["count", "-c", "v", "--db", db]).stdout, "300\n")
  }

  /// A mistyped output path never replaces the database's own files: every option that
  /// writes a file refuses one in the database directory, also through a symbolic link.
  func testOutputPathsInTheDatabaseDirectoryAreRefused() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let upsert = ["upsert", "-c", "c", "--id", "a", "--text", "kept", "--db", db]
    XCTAssertEqual(try Shell.vdb(upsert).status, 0)
    let dataFile = db + "/data.mdb"
    let before = try Data(contentsOf: URL(fileURLWithPath: dataFile))
    let link = directory + "/link"
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: dataFile)
    for arguments in [
      ["export", "-c", "c", "-o", dataFile], ["export", "-c", "c", "-o", link],
      ["export", "-c", "c", "-o", db + "/new.jsonl"], ["export", "-c", "c", "--npy", dataFile],
      ["eval", "-c", "c", "--from-log", "--per-query", dataFile],
      ["train", "-c", "c", "--report", db + "/lock.mdb"],
    ] {
      let result = try Shell.vdb(arguments + ["--db", db])
      XCTAssertEqual(result.status, 1, "\(arguments): \(result.stderr)")
      XCTAssertTrue(
        result.stderr.contains("is in the database directory"), "\(arguments): \(result.stderr)")
    }
    let shell = try Shell.vdb(["--db", db], input: ".output \(dataFile)\ncount -c c\n")
    XCTAssertTrue(shell.stderr.contains("is in the database directory"), shell.stderr)
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dataFile)), before)
    XCTAssertFalse(FileManager.default.fileExists(atPath: db + "/new.jsonl"))
    XCTAssertEqual(try Shell.vdb(["verify", "--db", db]).status, 0)
  }

  /// Layouts LMDB would silently take for a new database, or follow outside.
  func testDamagedLayoutsAreRefusedAndNothingIsWritten() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let fm = FileManager.default
    func layout(_ name: String, _ make: (String) throws -> Void) throws -> String {
      let path = directory + "/" + name
      try fm.createDirectory(atPath: path, withIntermediateDirectories: false)
      try make(path)
      return path
    }
    let outside = directory + "/outside"
    try fm.createDirectory(atPath: outside, withIntermediateDirectories: false)
    try fm.copyItem(atPath: db + "/data.mdb", toPath: outside + "/data.mdb")
    let layouts = [
      try layout("empty") {
        XCTAssertTrue(fm.createFile(atPath: $0 + "/data.mdb", contents: Data()))
      },
      try layout("dangling") {
        try fm.createSymbolicLink(
          atPath: $0 + "/data.mdb", withDestinationPath: outside + "/gone.mdb")
      },
      try layout("lock-only") {
        XCTAssertTrue(fm.createFile(atPath: $0 + "/lock.mdb", contents: Data(count: 8192)))
      },
      try layout("directory") {
        try fm.createDirectory(atPath: $0 + "/data.mdb", withIntermediateDirectories: false)
      },
      try layout("escaping") {
        try fm.createSymbolicLink(
          atPath: $0 + "/data.mdb", withDestinationPath: outside + "/data.mdb")
      },
    ]
    func snapshot(_ path: String) throws -> [String: Int] {
      var result: [String: Int] = [:]
      for name in try fm.contentsOfDirectory(atPath: path) {
        var info = stat()
        lstat(path + "/" + name, &info)
        result[name] = Int(info.st_size)
      }
      return result
    }
    let outsideBefore = try snapshot(outside)
    for path in layouts {
      let before = try snapshot(path)
      for command in [["status"], ["get", "-c", "c", "x"], ["init", "--no-model"]] {
        let result = try Shell.vdb(command + ["--db", path])
        assertNoCrash(result, path)
        XCTAssertEqual(result.status, 3, "\(command) on \(path): \(result.stderr)")
        XCTAssertTrue(result.stderr.contains("damaged"), result.stderr)
        XCTAssertEqual(try snapshot(path), before, "\(command) wrote into \(path)")
      }
    }
    XCTAssertEqual(try snapshot(outside), outsideBefore, "a file outside the database was written")
    XCTAssertFalse(fm.fileExists(atPath: outside + "/gone.mdb"))
  }

  /// One flipped byte in data.mdb — a page's flags or anywhere — must not kill the
  /// shell with a raw crash: the command works, or fails with exit code 1 or 3.
  func testFlippedBytesInTheDataFileNeverCrashTheShell() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let docs = directory + "/docs.jsonl"
    try Shell.writeBatch(docs, prefix: "d", count: 300, textBytes: 200)
    XCTAssertEqual(try Shell.vdb(["import", docs, "-c", "docs", "--db", db]).status, 0)
    // Seeded: the same flips every run (random ones found a raw DecodingError once).
    var generator = SplitMix64(seed: 16)
    let vectors = try writeFvecs(
      "v.fvecs",
      rows: (0..<400).map { _ in (0..<16).map { _ in Float.random(in: -1...1, using: &generator) } }
    )
    XCTAssertEqual(
      try Shell.vdb(["import", "--vectors", vectors, "-c", "v", "--db", db]).status, 0)
    let queries = try writeFvecs("q.fvecs", rows: [(0..<16).map { Float($0) / 16 }])
    let original = try Data(contentsOf: URL(fileURLWithPath: db + "/data.mdb"))
    let pages = original.count / 4096
    XCTAssertGreaterThan(pages, 10)
    var damaged = 0
    for trial in 0..<30 {
      let copy = directory + "/trial\(trial)"
      try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: false)
      var bytes = original
      // Even trials: the flags of a page (leaf ↔ branch ↔ overflow); odd: any byte.
      let page = Int.random(in: 2..<pages, using: &generator)
      let offset =
        trial % 2 == 0 ? page * 4096 + 10 : Int.random(in: 8192..<bytes.count, using: &generator)
      bytes[offset] ^= trial % 2 == 0 ? 0x07 : UInt8.random(in: 1...255, using: &generator)
      try bytes.write(to: URL(fileURLWithPath: copy + "/data.mdb"))
      for command in [
        ["status"], ["get", "-c", "docs", "d-7"], ["get", "-c", "docs", "--limit", "300"],
        ["query", "-c", "v", "--vectors", queries, "--no-log"], ["verify"],
      ] {
        let result = try Shell.vdb(command + ["--db", copy])
        assertNoCrash(result, "trial \(trial) (byte \(offset)) \(command)")
        XCTAssertTrue(
          [0, 1, 3].contains(result.status), "\(command): \(result.status) \(result.stderr)")
        if result.status == 3 {
          damaged += 1
          XCTAssertTrue(result.stderr.hasPrefix("error: "), result.stderr)
        }
      }
      try FileManager.default.removeItem(atPath: copy)
    }
    XCTAssertGreaterThan(
      damaged, 0, "no trial found the damage: the test flips nothing that matters")
  }

  func testVerifyFindsAChangedDocumentAndExitsThree() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["upsert", "--db", db, "-c", "c", "--id", "a", "--text", "QUITEUNIQUETEXT"])
        .status, 0)
    let sound = try Shell.vdb(["verify", "--db", db, "--json"])
    XCTAssertEqual(sound.status, 0, sound.stderr)
    let report = try JSONSerialization.jsonObject(with: Data(sound.stdout.utf8)) as? [String: Any]
    XCTAssertEqual((report?["problems"] as? [Any])?.count, 0)
    XCTAssertGreaterThan((report?["tables"] as? [Any])?.count ?? 0, 3)
    let url = URL(fileURLWithPath: db + "/data.mdb")
    var bytes = try Data(contentsOf: url)
    let at = try XCTUnwrap(bytes.range(of: Data("QUITEUNIQUETEXT".utf8)))
    bytes[at.lowerBound] = UInt8(ascii: "X")
    try bytes.write(to: url)
    let found = try Shell.vdb(["verify", "--db", db])
    XCTAssertEqual(found.status, 3, found.stdout + found.stderr)
    XCTAssertTrue(found.stdout.contains("document \"a\" fails its content hash"), found.stdout)
  }

  func testFlippedModelWeightsAreRefusedNotUsed() throws {
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
    XCTAssertEqual(try Shell.vdb(["init", "--db", db]).status, 0)
    let url = URL(fileURLWithPath: db + "/data.mdb")
    var bytes = try Data(contentsOf: url)
    // The weights are one ~90 MB overflow run: the file's middle is inside it.
    bytes[bytes.count / 2 + 1001] ^= 0x10
    try bytes.write(to: url)
    let upsert = try Shell.vdb(["upsert", "--db", db, "-c", "t", "--id", "a", "--text", "hello"])
    XCTAssertEqual(upsert.status, 3, upsert.stderr)
    XCTAssertTrue(
      upsert.stderr.contains("weights of model version 1 fail their checksum"), upsert.stderr)
    let verify = try Shell.vdb(["verify", "--db", db])
    XCTAssertEqual(verify.status, 3)
    XCTAssertTrue(verify.stdout.contains("model version 1"), verify.stdout)
  }

  /// The settings and the vocabulary change every vector as surely as the weights: a
  /// changed byte in either is refused at load and found by verify.
  func testChangedModelSettingsOrVocabularyAreRefusedNotUsed() throws {
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first (README command 2 does)")
    XCTAssertEqual(try Shell.vdb(["init", "--db", db]).status, 0)
    let pristine = try Data(contentsOf: URL(fileURLWithPath: db + "/data.mdb"))
    // A word limit of 10 characters instead of 100 (still valid JSON), a vocabulary token.
    for (from, to) in [
      (#""maxCharactersPerWord":100"#, #""maxCharactersPerWord":10 "#),
      ("[unused17]", "[unused71]"),
    ] {
      var bytes = pristine
      let at = try XCTUnwrap(bytes.range(of: Data(from.utf8)), from)
      bytes.replaceSubrange(at, with: Data(to.utf8))
      try bytes.write(to: URL(fileURLWithPath: db + "/data.mdb"))
      let upsert = try Shell.vdb(["upsert", "--db", db, "-c", "t", "--id", "a", "--text", "hello"])
      XCTAssertEqual(upsert.status, 3, upsert.stderr)
      XCTAssertTrue(
        upsert.stderr.contains("settings or vocabulary of model version 1 fail their checksum"),
        upsert.stderr)
      let verify = try Shell.vdb(["verify", "--db", db])
      XCTAssertEqual(verify.status, 3, from)
      XCTAssertTrue(verify.stdout.contains("model version 1"), verify.stdout)
    }
  }

  func testAnInitWhoseModelFailsLeavesNoDatabase() throws {
    let model = directory + "/model"
    try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
    try Data(#"{"hidden_size": 384}"#.utf8).write(to: URL(fileURLWithPath: model + "/config.json"))
    try Data().write(to: URL(fileURLWithPath: model + "/vocab.txt"))
    let empty = directory + "/empty"
    try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
    for target in [db, empty] {
      let result = try Shell.vdb(["init", "--db", target, "--model", model])
      XCTAssertEqual(result.status, 1, result.stderr)
      XCTAssertTrue(result.stderr.hasPrefix("error: cannot load the model"), result.stderr)
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: db), "the directory it created")
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: empty), [])
  }

  func testCountOptionsOutOfRangeAreUsageErrors() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let file = directory + "/d.jsonl"
    try Shell.writeBatch(file, prefix: "d", count: 3)
    for command in [
      ["import", file, "-c", "c", "--batch-size", "0"],
      ["reembed", "-c", "c", "--batch-size=-5"],
      ["query", "-c", "c", "x", "-k", "0"],
      ["query", "-c", "c", "x", "--ef=-1"],
      ["get", "-c", "c", "--limit", "0"],
      ["log", "--limit=-1"],
      ["train", "-c", "c", "--epochs", "0"],
      ["train", "-c", "c", "--batch-size", "1"],
      ["eval", "-c", "c", "--from-log", "--ef", "0"],
      ["train", "-c", "c", "--lr", "inf"],
      ["train", "-c", "c", "--lr", "1e30"],
      ["route", "train", "-r", "r", "--lr", "inf"],
      ["route", "train", "-r", "r", "--lora-lr=-1"],
    ] {
      let result = try Shell.vdb(command + ["--db", db])
      XCTAssertEqual(result.status, 2, "\(command): \(result.stderr)")
      XCTAssertTrue(result.stderr.contains("must be"), result.stderr)
    }
    // Options that would do nothing are refused, not ignored.
    for command in [
      ["init", "--no-model", "--model", "/tmp"],
      ["init", "--no-model", "--precision", "int8"],
      ["query", "-c", "c", "x", "--exact", "--ef", "500"],
      ["train", "-c", "c", "--lora-rank", "4"],
      ["train", "-c", "c", "--tier", "adapter", "--matmul-precision", "bfloat16"],
      ["route", "train", "-r", "r", "--lora-epochs", "2"],
      ["route", "train", "-r", "r", "--matmul-precision", "float32"],
    ] {
      let result = try Shell.vdb(command + ["--db", db])
      XCTAssertEqual(result.status, 2, "\(command): \(result.stderr)")
      XCTAssertTrue(result.stderr.contains("applies to"), "\(command): \(result.stderr)")
    }
  }

  /// A table is for reading: a 50 MB text shows its first 1,000 characters (at once,
  /// not after seconds of measuring), and a failing shell line is echoed escaped and cut.
  func testHugeValuesAndLinesAreCutWhereTheyAreShown() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let big = String(repeating: "x", count: 20_000_000)
    let file = directory + "/big.jsonl"
    try Data(#"{"id": "big", "text": "\#(big)"}"#.utf8).write(to: URL(fileURLWithPath: file))
    XCTAssertEqual(try Shell.vdb(["import", file, "-c", "c", "--db", db]).status, 0)
    let table = try Shell.vdb(["get", "-c", "c", "big", "--db", db])
    XCTAssertEqual(table.status, 0, table.stderr)
    XCTAssertLessThan(table.stdout.utf8.count, 3_000)
    XCTAssertTrue(table.stdout.contains(String(repeating: "x", count: 1_000) + "…"))
    let json = try Shell.vdb(["get", "-c", "c", "big", "--json", "--db", db])
    XCTAssertGreaterThan(json.stdout.utf8.count, 20_000_000, "--json gives whole values")
    // Under a pipe's 64 KB: the harness writes the input before the shell reads it.
    let line = "nope \u{1B}]0;title\u{07}" + String(repeating: "y", count: 50_000)
    let shell = try Shell.vdb(["--db", db], input: line + "\n")
    XCTAssertNotEqual(shell.status, 0)
    XCTAssertFalse(shell.stderr.contains("\u{1B}"), "the echo is escaped")
    XCTAssertLessThan(shell.stderr.utf8.count, 2_000, shell.stderr)
    // One long unknown word: named cut short, with no "did you mean" worked out for it.
    let word = try Shell.vdb(["--db", db], input: String(repeating: "z", count: 50_000) + "\n")
    XCTAssertTrue(word.stderr.contains("unknown command"), word.stderr)
    XCTAssertTrue(word.stderr.contains("more characters"), word.stderr)
    XCTAssertLessThan(word.stderr.utf8.count, 2_000, word.stderr)
  }

  /// Qrels whose query ids match none of the queries (a wrong split, another data set)
  /// used to print every metric as 0 over "0 queries" and exit 0.
  func testAnEvaluationOfNoJudgedQueryIsAnError() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let file = directory + "/d.jsonl"
    try Shell.writeBatch(file, prefix: "d", count: 3)
    XCTAssertEqual(try Shell.vdb(["import", file, "-c", "c", "--db", db]).status, 0)
    let queries = directory + "/queries.jsonl"
    let qrels = directory + "/qrels.tsv"
    try Data(#"{"_id": "q1", "text": "document lorem"}"#.utf8).write(
      to: URL(fileURLWithPath: queries))
    try Data("query-id\tcorpus-id\tscore\n1\td-0\t1\n".utf8).write(to: URL(fileURLWithPath: qrels))
    let evaluate = ["eval", "-c", "c", "--mode", "keyword", "--db", db]
    var result = try Shell.vdb(evaluate + ["--queries", queries, "--qrels", qrels])
    XCTAssertEqual(result.status, 1, result.stderr)
    XCTAssertTrue(
      result.stderr.contains("none of the 1 queries has a relevant document in the qrels"),
      result.stderr)
    for source in [["--from-log", "--mode", "keyword"], ["--diagnose"]] {
      result = try Shell.vdb(["eval", "-c", "c", "--db", db] + source)
      XCTAssertEqual(result.status, 1, result.stderr)
      XCTAssertTrue(
        result.stderr.contains(
          #"no logged query of collection "c" has feedback naming a relevant document"#),
        result.stderr)
      XCTAssertTrue(result.stderr.contains("vdb feedback LOG_ID DOC_ID"), result.stderr)
    }
  }

  func testIdsWithControlCharactersAndDeepMetadataAreRefusedAtTheirLine() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let file = directory + "/d.jsonl"
    let deep = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
    let lines = [
      #"{"_id": "ok", "text": "fine"}"#,
      #"{"_id": "bad\u001b]0;owned\u0007", "text": "escape"}"#,
      #"{"_id": "nul\u0000", "text": "nul"}"#,
      #"{"_id": "deep", "text": "x", "metadata": {"a": \#(deep)}}"#,
      #"{"_id": "big", "text": "x", "metadata": {"n": 9007199254740993}}"#,
      #"{"_id": "dup", "text": "a", "text": "b"}"#,
      #"{"_id": 1e300, "text": "a number id no integer type holds"}"#,
    ]
    try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: file))
    let result = try Shell.vdb(["import", file, "-c", "c", "--db", db, "--skip-bad", "--json"])
    XCTAssertEqual(result.status, 0, result.stderr)
    let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    let skipped = (report?["skipped"] as? [[String: Any]])?.compactMap { $0["line"] as? Int }
    XCTAssertEqual(skipped, [2, 3, 4, 5, 6, 7], result.stdout)
    let meta = try Shell.vdb([
      "upsert", "--db", db, "-c", "c", "--id", "m", "--text", "t", "--meta", #"{"a": \#(deep)}"#,
    ])
    XCTAssertEqual(meta.status, 1, meta.stderr)
    XCTAssertTrue(meta.stderr.contains("64 levels"), meta.stderr)
    let filter = try Shell.vdb(["get", "--db", db, "-c", "", "x"])
    XCTAssertEqual(filter.status, 1, "an empty collection name is a user error: \(filter.stderr)")
    let echoed = try Shell.vdb(["get", "--db", db, "-c", "c", "a\u{1B}[31mred"])
    XCTAssertEqual(echoed.status, 1, echoed.stderr)
    XCTAssertFalse(echoed.stderr.contains("\u{1B}"), "an error shows an id, never obeys it")
    XCTAssertTrue(echoed.stderr.contains("a\\u{1B}[31mred"), echoed.stderr)
  }

  func testInitTightensAWorldWritableDirectory() throws {
    let open = directory + "/open"
    try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: false)
    chmod(open, 0o777)
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", open]).status, 0)
    var info = stat()
    stat(open, &info)
    XCTAssertEqual(info.st_mode & 0o777, 0o700)
  }

  func testUnwritablePerQueryPathFailsBeforeTheRun() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["upsert", "--db", db, "-c", "c", "--id", "a", "--text", "t"]).status, 0)
    let result = try Shell.vdb([
      "eval", "--db", db, "-c", "c", "--from-log", "--per-query", "/nonexistent/dir/out.json",
    ])
    XCTAssertEqual(result.status, 1, result.stderr)
    XCTAssertTrue(result.stderr.hasPrefix("error: /nonexistent/dir/out.json: "), result.stderr)
  }

  func testReadOnlyOpenReadsAndRefusesWritesClearly() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["upsert", "--db", db, "-c", "c", "--id", "a", "--text", "alpha"]).status, 0)
    func fileState() throws -> [FileAttributeKey: Any] {
      try FileManager.default.attributesOfItem(atPath: db + "/data.mdb")
    }
    let before = try fileState()
    for command in [["status"], ["get", "-c", "c", "a"], ["log"], ["models"], ["verify"]] {
      let result = try Shell.vdb(command + ["--db", db])
      XCTAssertEqual(result.status, 0, "\(command): \(result.stderr)")
    }
    let after = try fileState()
    XCTAssertEqual(before[.size] as? Int, after[.size] as? Int)
    XCTAssertEqual(before[.modificationDate] as? Date, after[.modificationDate] as? Date)

    var options = Database.Options()
    options.readOnly = true
    let database = try Database(path: db, options: options)
    XCTAssertTrue(database.isReadOnly)
    XCTAssertEqual(try database.collection("c", create: false).get("a")?.text, "alpha")
    XCTAssertThrowsError(try database.collection("c").upsert(Document(id: "b", text: "x"))) {
      guard case .storage(let error) = $0 as? VectorDBError else {
        return XCTFail("\($0)")
      }
      XCTAssertEqual(error.code, EACCES)
      XCTAssertNotNil(($0 as? VectorDBError)?.hint)
    }
  }

  /// Another user's database (tests run as root; `nobody` may read the files, not
  /// write them), through the real binary: reads answer, writes fail with a clear
  /// error and exit 3, and not a byte of the directory changes. It was written before
  /// the `routervectors` table existed, which a read-only open cannot create.
  func testAnotherUsersDatabaseServesReadsAndRefusesWrites() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    for (id, text) in [("a", "alpha"), ("b", "beta")] {
      let upsert = try Shell.vdb(["upsert", "--db", db, "-c", "c", "--id", id, "--text", text])
      XCTAssertEqual(upsert.status, 0, upsert.stderr)
    }
    do {
      let environment = try Environment.open(path: db)
      let table = try environment.table("routervectors")
      try environment.write { try $0.deleteTable(table) }
      XCTAssertFalse(try environment.tableNames().contains("routervectors"))
    }
    // Readable by everyone, writable by its owner only.
    for path in [directory!, db] { XCTAssertEqual(chmod(path, 0o755), 0) }
    for name in ["data.mdb", "lock.mdb"] { XCTAssertEqual(chmod(db + "/" + name, 0o644), 0) }
    let nobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    XCTAssertEqual(try Shell.vdb(["--version"], launcher: nobody).status, 0, "nobody runs vdb")
    func snapshot() throws -> [String: Data] {
      var files: [String: Data] = [:]
      for name in try FileManager.default.contentsOfDirectory(atPath: db) {
        files[name] = try Data(contentsOf: URL(fileURLWithPath: db + "/" + name))
      }
      return files
    }
    let before = try snapshot()

    let reads: [[String]] = [
      ["status"], ["collections"], ["get", "-c", "c", "a"], ["get", "-c", "c"],
      ["count", "-c", "c"], ["export", "-c", "c"], ["log"], ["models"], ["verify"],
      ["query", "-c", "c", "alpha", "--mode", "keyword", "--no-log"],
    ]
    for command in reads {
      let result = try Shell.vdb(command + ["--db", db], launcher: nobody)
      assertNoCrash(result, "\(command)")
      XCTAssertEqual(result.status, 0, "\(command): \(result.stderr)")
    }
    let get = try Shell.vdb(["get", "-c", "c", "a", "--db", db, "--json"], launcher: nobody)
    XCTAssertTrue(get.stdout.contains("alpha"), get.stdout)
    let count = try Shell.vdb(["count", "-c", "c", "--db", db], launcher: nobody)
    XCTAssertEqual(count.stdout, "2\n")

    let writes: [[String]] = [
      ["upsert", "-c", "c", "--id", "x", "--text", "new"], ["delete", "-c", "c", "a"],
      ["update", "-c", "c", "a", "--meta", "{}"], ["collections", "create", "d"],
      ["collections", "drop", "c"], ["collections", "rename", "c", "e"],
      ["import", "-", "-c", "c"],
    ]
    for command in writes {
      let result = try Shell.vdb(
        command + ["--db", db], input: #"{"_id": "y", "text": "t"}"#, launcher: nobody)
      assertNoCrash(result, "\(command)")
      XCTAssertEqual(result.status, 3, "\(command): \(result.stderr)")
      XCTAssertTrue(result.stderr.contains("read-only"), "\(command): \(result.stderr)")
      XCTAssertFalse(result.stderr.contains("Backtrace"), result.stderr)
    }
    // A logged query answers, without a log id, and is told how to read only.
    let query = try Shell.vdb(
      ["query", "-c", "c", "alpha", "--mode", "keyword", "--json", "--db", db], launcher: nobody)
    XCTAssertEqual(query.status, 0, query.stderr)
    XCTAssertTrue(query.stdout.contains(#""log_id":null"#), query.stdout)
    XCTAssertTrue(query.stdout.contains(#""id":"a""#), query.stdout)
    XCTAssertTrue(
      query.stderr.contains("\nwarning: the query could not be logged, so no log id is given:")
        && query.stderr.contains("`--no-log`"), "a query is told how to read: \(query.stderr)")
    XCTAssertEqual(try snapshot(), before, "nothing in the directory changed")
    XCTAssertEqual(
      try Shell.vdb(["count", "-c", "c", "--db", db]).stdout, "2\n", "and its owner reads it")
  }

  /// A commit whose write falls short is reported by LMDB as an I/O error; past the file
  /// size limit (`ulimit -f`) it is named as such, the transaction rolled back whole, and
  /// the process neither dies of SIGXFSZ nor leaves the database unsound. (A full disk is
  /// told the same way from the file system's free blocks; docs/reliability.md.)
  func testAFileSizeLimitIsNamedAndNothingIsHalfWritten() throws {
    // Its lock file is made whole first (LMDB's, with holes, written through a map, would
    // end the process with SIGBUS on a full disk); a database that cannot be made is
    // not left behind.
    let tooSmall = try Shell.run(
      "/bin/bash", ["-c", "ulimit -f 16 && '\(Shell.binary)' init --no-model --db '\(db)'"])
    XCTAssertEqual(tooSmall.status, 3, tooSmall.stderr)
    XCTAssertTrue(
      tooSmall.stderr.hasPrefix(
        "error: storage: create lock file \(db)/lock.mdb: File too large\n"),
      tooSmall.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: db))
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["collections", "create", "v", "--vectors", "4", "--db", db]).status, 0)
    let text = String(repeating: "lorem ipsum dolor sit amet ", count: 40_000)
    let path = directory + "/long.jsonl"
    let lines = (1...30).map {
      #"{"id": "\#($0)", "text": "\#(text)", "vector": [\#($0), 2, 3, 4]}"#
    }
    try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: path))
    let vdb = "'\(Shell.binary)' --db '\(db)'"
    let limited = try Shell.run(
      "/bin/bash", ["-c", "ulimit -f 10000 && \(vdb) import '\(path)' -c v"])
    XCTAssertEqual(limited.status, 3, limited.stderr)
    XCTAssertEqual(
      limited.stderr,
      "error: storage: commit write transaction: File too large\nhint: the database file reached"
        + " this process's file size limit (`ulimit -f`): raise it and retry (nothing was"
        + " half-written)\n")
    XCTAssertEqual(try Shell.vdb(["count", "-c", "v", "--db", db]).stdout, "0\n")
    XCTAssertEqual(try Shell.vdb(["verify", "--db", db]).status, 0)
    XCTAssertEqual(try Shell.vdb(["import", path, "-c", "v", "--db", db]).status, 0)
    XCTAssertEqual(try Shell.vdb(["count", "-c", "v", "--db", db]).stdout, "30\n")
  }

  /// Queries answer when their log cannot be written (a full disk, here the file size
  /// limit), whether the entries' commit fails or the reservation of their ids: the
  /// shell commits the entries before it prints their ids, so a lost entry is never
  /// shown with an id, and says so.
  func testQueriesWhoseLogCannotBeWrittenAnswerWithoutLogIDs() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["collections", "create", "v", "--vectors", "2", "--db", db]).status, 0)
    for (id, vector) in [("a", "[1, 0]"), ("b", "[0, 1]")] {
      XCTAssertEqual(
        try Shell.vdb(["upsert", "-c", "v", "--id", id, "--vector", vector, "--db", db]).status, 0)
    }
    // 20,000 entries need more pages than the file has free.
    var file = Data()
    for index in 0..<20_000 {
      // .fvecs: the dimension, then the values, little-endian.
      for word in [UInt32(2), Float(1).bitPattern, Float(index).bitPattern] {
        withUnsafeBytes(of: word.littleEndian) { file.append(contentsOf: $0) }
      }
    }
    let queries = directory + "/queries.fvecs"
    try file.write(to: URL(fileURLWithPath: queries))
    let size = try XCTUnwrap(
      FileManager.default.attributesOfItem(atPath: db + "/data.mdb")[.size] as? Int)
    let limited = try Shell.run(
      "/bin/bash",
      [
        "-c",
        "ulimit -f \((size + 1023) / 1024) && '\(Shell.binary)' query -c v --vectors"
          + " '\(queries)' -k 1 --json --db '\(db)'",
      ])
    XCTAssertEqual(limited.status, 0, limited.stderr)
    XCTAssertTrue(
      limited.stderr.hasPrefix(
        "warning: the queries could not be logged, so no log id is given: storage: commit write"
          + " transaction: File too large"), limited.stderr)
    let lines = limited.stdout.split(separator: "\n")
    XCTAssertEqual(lines.count, 20_000)
    XCTAssertTrue(lines.allSatisfy { $0.hasSuffix(#""log_id":null}"#) }, String(lines[0]))
    XCTAssertEqual(try Shell.vdb(["log", "--json", "--db", db]).stdout, "")
    // Below the file's size no page can be written: the log ids cannot even be reserved.
    let reserving = try Shell.run(
      "/bin/bash",
      [
        "-c",
        "ulimit -f 8 && '\(Shell.binary)' query -c v --vector '[1, 0]' --json --db '\(db)'",
      ])
    XCTAssertEqual(reserving.status, 0, reserving.stderr)
    XCTAssertEqual(
      reserving.stderr,
      "warning: the query could not be logged, so no log id is given: storage: commit write"
        + " transaction: File too large\nhint: the database file reached this process's file"
        + " size limit (`ulimit -f`): raise it and retry (nothing was half-written)\n")
    XCTAssertTrue(reserving.stdout.hasSuffix(#""log_id":null}"# + "\n"), reserving.stdout)
    XCTAssertEqual(try Shell.vdb(["log", "--json", "--db", db]).stdout, "")
    XCTAssertEqual(try Shell.vdb(["verify", "--db", db]).status, 0)
    let logged = try Shell.vdb(["query", "-c", "v", "--vector", "[1, 0]", "--json", "--db", db])
    XCTAssertFalse(logged.stdout.contains(#""log_id":null"#), logged.stdout)
    XCTAssertEqual(
      try Shell.vdb(["log", "--json", "--db", db]).stdout.split(separator: "\n").count, 1)
  }

  /// An empty path is named as such: Foundation reads "" as the current directory (a
  /// backup then tried to replace it; an export said "is a directory").
  func testEmptyPathsAreNamed() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["upsert", "-c", "c", "--id", "a", "--text", "t", "--db", db]).status, 0)
    let cases: [([String], Int32, String)] = [
      (["export", "-c", "c", "-o", ""], 2, "error: an output path is empty: give a file name\n"),
      (
        ["export", "-c", "c", "--npy", ""], 2, "error: an output path is empty: give a file name\n"
      ),
      (["backup", ""], 1, "error: backup: the destination is an empty path\n"),
      (
        ["export", "-c", "c", "-o", directory + "/new/"], 1,
        "error: \(directory!)/new/: it ends in / as a directory does: give a file name\n"
      ),
      (["import", "", "-c", "c"], 1, "error: input: the path is empty\n"),
    ]
    for (arguments, status, stderr) in cases {
      let result = try Shell.vdb(arguments + ["--db", db])
      XCTAssertEqual(result.status, status, "\(arguments): \(result.stderr)")
      XCTAssertEqual(result.stderr, stderr, "\(arguments)")
    }
  }

  func testStandardStreamsThatCannotBeUsedAreErrorsNotCrashes() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["upsert", "-c", "c", "--id", "a", "--text", "t", "--db", db]).status, 0)
    let vdb = "'\(Shell.binary)' --db '\(db)'"
    let cases: [(script: String, status: Int32, stderr: String)] = [
      (
        "\(vdb) import - -c c < /", 1,
        "error: <stdin>: cannot read: it is a directory, not a file\n"
      ),
      ("\(vdb) import - -c c <&-", 1, "error: <stdin>: cannot read: bad file descriptor\n"),
      ("\(vdb) query -c c --file - < /", 1, "error: <stdin>: cannot read: it is a directory"),
      (
        "\(vdb) get -c c a > /dev/full", 1,
        "error: standard output: cannot write (no space left on device)\n"
      ),
      (
        "\(vdb) export -c c > /dev/full", 1,
        "error: standard output: cannot write (no space left on device)\n"
      ),
      ("\(vdb) get -c c a >&-", 1, "error: standard output: cannot write (bad file descriptor)\n"),
      // Nowhere to say it: the exit code does.
      ("\(vdb) get -c missing a 2>&-", 1, ""),
    ]
    for (script, status, stderr) in cases {
      let result = try Shell.run("/bin/bash", ["-c", script])
      XCTAssertEqual(result.status, status, "\(script): \(result.stderr)")
      XCTAssertTrue(
        stderr.isEmpty ? result.stderr.isEmpty : result.stderr.hasPrefix(stderr),
        "\(script): \(result.stderr)")
    }
    // With standard output closed, the database's files must not become descriptor 1:
    // the count printed would land in lock.mdb (it did, through the shell's script mode).
    let closed = try Shell.run("/bin/bash", ["-c", "echo 'count -c c' | \(vdb) >&-"])
    XCTAssertEqual(closed.status, 1, closed.stderr)
    let lock = try Data(contentsOf: URL(fileURLWithPath: db + "/lock.mdb"))
    XCTAssertEqual(Array(lock.prefix(4)), [0xDE, 0xC0, 0xEF, 0xBE], "LMDB's lock file magic")
    // Written, but its report could not be: exit 1.
    XCTAssertEqual(
      try Shell.run("/bin/bash", ["-c", "\(vdb) upsert -c c --id b --text u <&- >&- 2>&-"]).status,
      1)
    XCTAssertEqual(try Shell.vdb(["verify", "--db", db]).status, 0)
    XCTAssertEqual(try Shell.vdb(["count", "-c", "c", "--db", db]).stdout, "2\n")
    let empty = try Shell.vdb(["status", "--db", ""])
    XCTAssertEqual(empty.status, 2, empty.stderr)
    XCTAssertTrue(empty.stderr.hasPrefix("error: --db is empty"), empty.stderr)
    // A reader that went away is no error. Whether it left before the write (the export
    // stops quietly) or after (the export ends as usual) is a race; both exit 0.
    let gone = try Shell.run("/bin/bash", ["-c", "set -o pipefail; \(vdb) export -c c | true"])
    XCTAssertEqual(gone.status, 0, gone.stderr)
    XCTAssertTrue(["", "exported 1 document\n"].contains(gone.stderr), gone.stderr)
  }

  /// JSON Lines that bring vectors (`vdb export --include vector`) make a new collection of
  /// given vectors of their dimension, compared by `--metric` (cosine by default), as a
  /// `--vectors` file does; into a collection without vectors they are refused, with the
  /// way out. (They were refused into a new collection too, and `--metric` was ignored.)
  func testJSONLinesWithVectorsMakeACollectionOfThemOrNameTheWayOut() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    let file = directory + "/vectors.jsonl"
    try Data(#"{"id": "a", "text": "t", "vector": [1, 2, 3]}"#.utf8).write(
      to: URL(fileURLWithPath: file))
    for (name, metric) in [("s", nil), ("l", "l2")] {
      let imported = try Shell.vdb(
        ["import", file, "-c", name, "--db", db] + (metric.map { ["--metric", $0] } ?? []))
      XCTAssertEqual(imported.status, 0, imported.stderr)
    }
    let listed = try Shell.vdb(["collections", "--json", "--db", db])
    let collections = try XCTUnwrap(
      try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
    XCTAssertEqual(collections.map { $0["name"] as? String }, ["l", "s"])
    XCTAssertEqual(collections.map { $0["dimension"] as? Int }, [3, 3])
    XCTAssertEqual(collections.map { $0["metric"] as? String }, ["l2", "cosine"])
    let otherMetric = try Shell.vdb(["import", file, "-c", "s", "--metric", "dot", "--db", db])
    XCTAssertEqual(otherMetric.status, 1, otherMetric.stderr)
    XCTAssertEqual(
      try Shell.vdb(["collections", "create", "n", "--no-vectors", "--db", db]).status, 0)
    let refused = try Shell.vdb(["import", file, "-c", "n", "--db", db])
    assertNoCrash(refused, "import")
    XCTAssertEqual(refused.status, 1, refused.stderr)
    XCTAssertTrue(
      refused.stderr.contains("`vdb collections create n --vectors DIMENSION --metric"),
      refused.stderr)
    let csv = try Shell.vdb(["import", "--csv", file, "-c", "c", "--metric", "l2", "--db", db])
    XCTAssertEqual(csv.status, 2, csv.stderr)
    // One document with its vector makes such a collection too.
    let upserted = try Shell.vdb([
      "upsert", "-c", "u", "--id", "a", "--vector", "[1, 2]", "--db", db,
    ])
    XCTAssertEqual(upserted.status, 0, upserted.stderr)
    let status = try Shell.vdb(["collections", "--json", "--db", db]).stdout
    XCTAssertTrue(status.contains(#""dimension":2"#), status)
    let empty = try Shell.vdb(["upsert", "-c", "e", "--id", "a", "--vector", "[]", "--db", db])
    XCTAssertEqual(empty.status, 1, empty.stderr)
  }
}
