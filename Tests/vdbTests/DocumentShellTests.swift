import Foundation
import VectorDB
import XCTest

/// Documents through the real binary: stdin import, filters, count, update, vectors.
final class DocumentShellTests: XCTestCase {
  var directory: String!
  var db: String { directory + "/db" }

  override func setUpWithError() throws {
    directory = try Shell.temporaryDirectory("documents")
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  private func json(_ result: Shell.Result) throws -> [String: Any] {
    XCTAssertEqual(result.status, 0, result.stderr)
    return try XCTUnwrap(
      JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
  }

  func testAnImportSaysHowManyLinesALaterOneReplaced() throws {
    let lines = [
      #"{"id": "a", "text": "old"}"#, #"{"id": "b", "text": "bee"}"#,
      #"{"id": "a", "text": "new"}"#,
    ]
    let imported = try Shell.vdb(
      ["import", "-", "-c", "c", "--db", db], input: lines.joined(separator: "\n"))
    XCTAssertEqual(imported.status, 0, imported.stderr)
    XCTAssertTrue(
      imported.stdout.hasPrefix("imported 2 documents into c in "), imported.stdout)
    XCTAssertTrue(
      imported.stdout.hasSuffix("; 1 line replaced by a later one with the same id\n"),
      imported.stdout)
    let csv = try Shell.vdb(
      ["import", "--csv", "-", "-c", "c", "--db", db, "--json"], input: "id,text\na,x\na,y\n")
    XCTAssertEqual(try json(csv)["imported"] as? Int, 1)
    XCTAssertEqual(try json(csv)["superseded"] as? Int, 1)
    XCTAssertEqual(
      try json(Shell.vdb(["get", "-c", "c", "--db", db, "a", "--json"]))["text"] as? String, "y")
  }

  /// Standard input is read from where it stands (a file redirected to it, part read by
  /// the shell before), and a pipe longer than 64 MiB goes through a temporary file
  /// (`$TMPDIR`), not memory: a directory that cannot take it is named.
  func testStandardInputIsReadFromWhereItStandsAndALongPipeFromATemporaryFile() throws {
    XCTAssertEqual(
      try Shell.vdb(["collections", "create", "v", "--vectors", "4", "--db", db]).status, 0)
    let path = directory + "/long.jsonl"
    let text = String(repeating: "lorem ipsum dolor sit amet ", count: 40_000)
    let lines = (1...70).map {
      #"{"id": "\#($0)", "text": "\#(text)", "vector": [\#($0), 2, 3, 4]}"#
    }
    try Data(("not JSON\n" + lines.joined(separator: "\n")).utf8).write(
      to: URL(fileURLWithPath: path))
    let vdb = "'\(Shell.binary)' --db '\(db)'"
    let redirected = try Shell.run(
      "/bin/bash", ["-c", "{ read -r skipped; \(vdb) import - -c v --json; } < '\(path)'"])
    XCTAssertEqual(try json(redirected)["imported"] as? Int, 70, "the line read before is not")

    let missing = directory + "/missing"
    let refused = try Shell.run(
      "/bin/bash", ["-c", "tail -n +2 '\(path)' | TMPDIR='\(missing)' \(vdb) import - -c w"])
    XCTAssertEqual(refused.status, 1)
    XCTAssertEqual(
      refused.stderr,
      "error: <stdin>: cannot copy the input into a temporary file in \(missing) (no such file"
        + " or directory); set TMPDIR to a directory with room\n")
    let piped = try Shell.run(
      "/bin/bash",
      ["-c", "tail -n +2 '\(path)' | TMPDIR='\(directory!)' \(vdb) import - -c v --json"])
    XCTAssertEqual(try json(piped)["superseded"] as? Int, 0)
    XCTAssertEqual(try json(piped)["imported"] as? Int, 70)
    let last = try json(Shell.vdb(["get", "-c", "v", "--db", db, "70", "--json"]))
    XCTAssertEqual(last["text"] as? String, text)
    XCTAssertEqual(
      try FileManager.default.contentsOfDirectory(atPath: directory).sorted(),
      ["db", "long.jsonl"], "the temporary file is gone")
  }

  func testStdinImportFiltersCountUpdate() throws {
    let lines = (0..<10).map { #"{"id": "d\#($0)", "text": "text \#($0)", "n": \#($0)}"# }
    let imported = try Shell.vdb(
      ["import", "-", "-c", "c", "--db", db, "--json"], input: lines.joined(separator: "\n"))
    XCTAssertEqual(try json(imported)["imported"] as? Int, 10)
    let bad = try Shell.vdb(["import", "-", "-c", "c", "--db", db], input: "{\"id\": 1}\n")
    XCTAssertEqual(bad.status, 1)
    XCTAssertTrue(bad.stderr.hasPrefix("error: <stdin>:1: missing field \"text\""), bad.stderr)

    let filter = #"{"n": {"$gte": 7}}"#
    XCTAssertEqual(
      try json(Shell.vdb(["count", "-c", "c", "--db", db, "--json"]))["count"] as? Int, 10)
    XCTAssertEqual(
      try Shell.vdb(["count", "-c", "c", "--db", db, "--filter", filter]).stdout, "3\n")
    let listed = try Shell.vdb(["get", "-c", "c", "--db", db, "--filter", filter, "--json"])
    XCTAssertEqual(
      listed.stdout.split(separator: "\n").compactMap {
        (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["id"]
          as? String
      }, ["d7", "d8", "d9"])

    let dry = try json(
      Shell.vdb(["delete", "-c", "c", "--db", db, "--filter", filter, "--dry-run", "--json"]))
    XCTAssertEqual(dry["matched"] as? Int, 3)
    XCTAssertEqual(dry["deleted"] as? Int, 0)
    XCTAssertEqual(try Shell.vdb(["count", "-c", "c", "--db", db]).stdout, "10\n")
    let deleted = try json(
      Shell.vdb(["delete", "-c", "c", "--db", db, "--filter", filter, "--json"]))
    XCTAssertEqual(deleted["deleted"] as? Int, 3)
    XCTAssertEqual(try Shell.vdb(["count", "-c", "c", "--db", db]).stdout, "7\n")

    XCTAssertEqual(
      try Shell.vdb(["update", "-c", "c", "--db", db, "d1", "--meta", #"{"tag": "x"}"#]).status, 0)
    let updated = try json(Shell.vdb(["get", "-c", "c", "--db", db, "d1", "--json"]))
    XCTAssertEqual(updated["text"] as? String, "text 1")
    XCTAssertEqual(updated["metadata"] as? [String: String], ["tag": "x"])
    XCTAssertEqual(
      try Shell.vdb(["update", "-c", "c", "--db", db, "d1", "--metadata", #"{"tag": "y"}"#]).status,
      0, "--metadata: the JSON field's name works as the option's too")
    let renamed = try json(Shell.vdb(["get", "-c", "c", "--db", db, "d1", "--json"]))
    XCTAssertEqual(renamed["metadata"] as? [String: String], ["tag": "y"])
    let missing = try Shell.vdb(["update", "-c", "c", "--db", db, "zz", "--meta", "{}"])
    XCTAssertEqual(missing.status, 1)
    XCTAssertTrue(missing.stderr.hasPrefix(#"error: no document "zz""#), missing.stderr)
    let notObject = try Shell.vdb(["update", "-c", "c", "--db", db, "d1", "--meta", "[1]"])
    XCTAssertEqual(notObject.status, 1)
  }

  /// Ids from a file or stdin, one per line: as many as a command line would slow on.
  func testIdsFromAFileOrStdin() throws {
    let lines = (1...5000).map { #"{"id": "d\#($0)", "text": "note \#($0)"}"# }
    try Data(lines.joined(separator: "\n").utf8).write(
      to: URL(fileURLWithPath: directory + "/docs.jsonl"))
    try Shell.vdb(["import", directory + "/docs.jsonl", "-c", "c", "--db", db])
    let file = directory + "/ids.txt"
    try Data("d2\r\n\n  d7  \nd9\n".utf8).write(to: URL(fileURLWithPath: file))
    let got = try Shell.vdb(["get", "-c", "c", "--ids-from", file, "--json", "--db", db])
    XCTAssertEqual(got.status, 0, got.stderr)
    XCTAssertEqual(
      got.stdout.split(separator: "\n").map { $0.contains(#""id":"d"#) }, [true, true, true])
    XCTAssertTrue(got.stdout.contains(#""text":"note 7""#), got.stdout)

    let many = (1...4000).map { "d\($0)" }.joined(separator: "\n")
    try Data(many.utf8).write(to: URL(fileURLWithPath: file))
    let deleted = try Shell.vdb(
      ["delete", "-c", "c", "--ids-from", "-", "--db", db], input: "d4001\nd5\n")
    XCTAssertEqual(deleted.stdout, "deleted 2 of 2 documents\n", deleted.stderr)
    let all = try Shell.vdb(["delete", "-c", "c", "--ids-from", file, "--db", db])
    XCTAssertEqual(all.stdout, "deleted 3999 of 4000 documents\n", all.stderr)
    XCTAssertEqual(try Shell.vdb(["count", "-c", "c", "--db", db]).stdout, "999\n")

    for (arguments, status, words) in [
      (["get", "-c", "c", "d1", "--ids-from", file], Int32(2), "not both"),
      (["get", "-c", "c", "--ids-from", file, "--limit", "2"], 2, "not both"),
      (["delete", "-c", "c", "--ids-from", file, "--filter", "{}"], 2, "not both"),
      (["delete", "-c", "c", "--ids-from", directory + "/missing.txt"], 1, "missing.txt"),
    ] {
      let result = try Shell.vdb(arguments + ["--db", db])
      XCTAssertEqual(result.status, status, result.stderr)
      XCTAssertTrue(result.stderr.contains(words), result.stderr)
    }
    let blank = try Shell.vdb(["delete", "-c", "c", "--ids-from", "-", "--db", db], input: "\n \n")
    XCTAssertEqual(blank.status, 1)
    XCTAssertTrue(blank.stderr.contains("<stdin> holds no ids"), blank.stderr)
    XCTAssertEqual(try Shell.vdb(["count", "-c", "c", "--db", db]).stdout, "999\n")
  }

  func testIncludeVector() throws {
    try Shell.vdb(
      ["collections", "create", "v", "--vectors", "2", "--metric", "l2", "--db", db])
    try Shell.vdb(["upsert", "-c", "v", "--db", db, "--id", "a", "--vector", "[0.5, 2]"])
    let textless = try Shell.vdb(["upsert", "-c", "v", "--db", db, "--id", "b"])
    XCTAssertEqual(textless.status, 2)
    XCTAssertTrue(
      textless.stderr.hasPrefix("error: give --text, or --vector for a document without text"),
      textless.stderr)
    let row = try json(
      Shell.vdb(["get", "-c", "v", "--db", db, "a", "--include", "vector", "--json"]))
    XCTAssertEqual(row["vector"] as? [Double], [0.5, 2])
    let plain = try json(Shell.vdb(["get", "-c", "v", "--db", db, "a", "--json"]))
    XCTAssertNil(plain["vector"], "only on request")
  }

  func testQueryFileFromStdin() throws {
    let withModel = directory + "/model-db"
    XCTAssertEqual(try Shell.vdb(["init", "--db", withModel]).status, 0)
    for (id, text) in [("cat", "cats purr and sleep"), ("car", "engines burn fuel")] {
      try Shell.vdb(["upsert", "-c", "c", "--db", withModel, "--id", id, "--text", text])
    }
    let result = try Shell.vdb(
      ["query", "-c", "c", "--db", withModel, "--file", "-", "-k", "1", "--json"],
      input: "\u{FEFF}a kitten\r\n\r\nmotor oil\r\n")  // as a Windows editor saves it
    XCTAssertEqual(result.status, 0, result.stderr)
    let hits = result.stdout.split(separator: "\n").map {
      ((try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["hits"]
        as? [[String: Any]])?.first?["id"] as? String
    }
    XCTAssertEqual(hits, ["cat", "car"])
    let log = try Shell.vdb(["log", "-c", "c", "--db", withModel, "--json"])
    let logged = log.stdout.split(separator: "\n").map {
      (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["text"] as? String
    }
    XCTAssertEqual(logged, ["a kitten", "motor oil"], "no byte order mark, no carriage return")
  }

  func testQueryByOneVectorGivenAsJSON() throws {
    try Shell.vdb(["collections", "create", "v", "--vectors", "2", "--metric", "l2", "--db", db])
    for (id, vector) in [("a", "[1, 0]"), ("b", "[0, 1]"), ("c", "[5, 5]")] {
      try Shell.vdb(["upsert", "-c", "v", "--db", db, "--id", id, "--text", "", "--vector", vector])
    }
    let hits = try json(
      Shell.vdb(["query", "-c", "v", "--vector", "[0.1, 0.9]", "-k", "2", "--db", db, "--json"]))
    XCTAssertEqual(
      (hits["hits"] as? [[String: Any]])?.compactMap { $0["id"] as? String }, ["b", "a"])
    XCTAssertNotNil(hits["log_id"] as? Int, "logged as a vector query")
    for (vector, message) in [
      ("[1, 2, 3]", "3"), ("[1, \"x\"]", "--vector must be a JSON array of numbers"),
      ("{}", "--vector must be a JSON array of numbers"),
    ] {
      let bad = try Shell.vdb(["query", "-c", "v", "--vector", vector, "--db", db])
      XCTAssertEqual(bad.status, 1, bad.stderr)
      XCTAssertTrue(
        bad.stderr.hasPrefix("error: ") && bad.stderr.contains(message), bad.stderr)
    }
    let both = try Shell.vdb(["query", "-c", "v", "--vector", "[1, 0]", "text", "--db", db])
    XCTAssertEqual(both.status, 2)
    XCTAssertTrue(both.stderr.contains("give one of TEXT"), both.stderr)
  }

  func testLogRetentionShowsSetsAndPrunesAtOnce() throws {
    try Shell.vdb(["collections", "create", "v", "--vectors", "2", "--metric", "l2", "--db", db])
    try Shell.vdb([
      "upsert", "-c", "v", "--db", db, "--id", "a", "--text", "", "--vector", "[1, 0]",
    ])
    // Five queries, one .fvecs row each (the dimension as int32, then the floats).
    var rows = Data()
    for _ in 0..<5 {
      withUnsafeBytes(of: Int32(2).littleEndian) { rows.append(contentsOf: $0) }
      for value: Float in [1, 0] {
        withUnsafeBytes(of: value.bitPattern.littleEndian) { rows.append(contentsOf: $0) }
      }
    }
    let queries = directory + "/q.fvecs"
    try rows.write(to: URL(fileURLWithPath: queries))
    let asked = try Shell.vdb(["query", "-c", "v", "--db", db, "--vectors", queries, "--json"])
    XCTAssertEqual(asked.status, 0, asked.stderr)
    func logged() throws -> Int {
      try Shell.vdb(["log", "-c", "v", "--db", db, "--json"]).stdout.split(separator: "\n").count
    }
    XCTAssertEqual(try logged(), 5)
    XCTAssertEqual(
      try Shell.vdb(["log", "retention", "--db", db]).stdout,
      "the logs keep the newest 1000000 entries\n")
    let set = try json(Shell.vdb(["log", "retention", "--max-entries", "2", "--db", db, "--json"]))
    XCTAssertEqual(set["max_entries"] as? Int, 2)
    XCTAssertTrue(set["max_age"] is NSNull, "null: no age limit")
    XCTAssertEqual(try logged(), 2, "pruned at once")
    let unlimited = try json(
      Shell.vdb([
        "log", "retention", "--max-entries", "none", "--max-age", "7d", "--db", db, "--json",
      ]))
    XCTAssertTrue(unlimited["max_entries"] is NSNull)
    XCTAssertEqual(unlimited["max_age"] as? Double, 7 * 86_400)
    for bad in [
      ["--max-entries", "0"], ["--max-entries", "many"], ["--max-age", "-5d"],
      ["--max-age", "nand"], ["--max-age", "0s"], ["--max-age", "1e19s"],
    ] {
      let result = try Shell.vdb(["log", "retention", "--db", db] + bad)
      XCTAssertEqual(result.status, 2, "\(bad): a usage error, whoever finds it")
      XCTAssertTrue(result.stderr.hasPrefix("error: "), result.stderr)
      XCTAssertFalse(result.stderr.contains("CLIError"), result.stderr)
    }
    XCTAssertEqual(
      try Shell.vdb(["log", "retention", "--db", db]).stdout,
      "the logs keep the entries of the last 604800 s\n")
  }

  /// An output path naming a device, a pipe or a symbolic link is written through, never
  /// replaced by a file renamed over it (as root, that replaced `/dev/null` itself).
  func testOutputToADeviceAPipeOrALinkIsWrittenThrough() throws {
    let lines = (1...3).map { #"{"id": "d\#($0)", "text": "t", "vector": [\#($0), 1]}"# }
    XCTAssertEqual(
      try Shell.vdb(["collections", "create", "v", "--vectors", "2", "--db", db]).status, 0)
    XCTAssertEqual(
      try Shell.vdb(["import", "-", "-c", "v", "--db", db], input: lines.joined(separator: "\n"))
        .status, 0)
    let fifo = directory + "/out.fifo"
    XCTAssertEqual(mkfifo(fifo, 0o600), 0)
    let vdb = "'\(Shell.binary)' --db '\(db)'"
    let piped = try Shell.run(
      "/bin/bash",
      [
        "-c",
        "timeout 60 cat '\(fifo)' > '\(directory!)/copy' & \(vdb) export -c v -o '\(fifo)'; wait",
      ])
    XCTAssertEqual(piped.status, 0, piped.stderr)
    let copy = try String(contentsOfFile: directory + "/copy", encoding: .utf8)
    XCTAssertEqual(copy.split(separator: "\n").count, 3, copy)
    func kind(_ path: String) -> mode_t {
      var status = stat()
      XCTAssertEqual(lstat(path, &status), 0, path)
      return status.st_mode & S_IFMT
    }
    XCTAssertEqual(kind(fifo), S_IFIFO)

    let null = try Shell.vdb(["export", "-c", "v", "--db", db, "-o", "/dev/null"])
    XCTAssertEqual(null.status, 0, null.stderr)
    XCTAssertEqual(kind("/dev/null"), S_IFCHR)
    let npy = try Shell.vdb(["export", "-c", "v", "--db", db, "--npy", "/dev/null"])
    XCTAssertEqual(npy.status, 2)
    XCTAssertTrue(npy.stderr.hasPrefix("error: /dev/null: --npy needs a regular file"), npy.stderr)
    let folder = try Shell.vdb(["export", "-c", "v", "--db", db, "-o", directory])
    XCTAssertEqual(folder.status, 1)
    XCTAssertEqual(folder.stderr, "error: \(directory!): it is a directory: give a file name\n")

    let real = directory + "/real.jsonl"
    let link = directory + "/link.jsonl"
    try Data("old\n".utf8).write(to: URL(fileURLWithPath: real))
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: real)
    XCTAssertEqual(try Shell.vdb(["export", "-c", "v", "--db", db, "-o", link]).status, 0)
    XCTAssertEqual(kind(link), S_IFLNK)
    XCTAssertEqual(try String(contentsOfFile: real, encoding: .utf8), copy)

    // A one-character relative path (Foundation's `deletingLastPathComponent` traps on it).
    let short = try Shell.run("/bin/bash", ["-c", "cd '\(directory!)' && \(vdb) export -c v -o z"])
    XCTAssertEqual(short.status, 0, short.stderr)
    XCTAssertEqual(try String(contentsOfFile: directory + "/z", encoding: .utf8), copy)
  }

  /// export → import equal (documents and vectors), and a backup that opens.
  func testExportImportRoundTripAndBackup() throws {
    try Shell.vdb(["collections", "create", "v", "--vectors", "2", "--metric", "l2", "--db", db])
    for i in 0..<5 {
      try Shell.vdb([
        "upsert", "-c", "v", "--db", db, "--id", "d\(i)", "--text", "line\tone\n", "--meta",
        #"{"i": \#(i)}"#, "--vector", "[\(i), 0.25]",
      ])
    }
    let exported = try Shell.vdb(["export", "-c", "v", "--db", db, "--include", "vector"])
    XCTAssertEqual(exported.status, 0, exported.stderr)
    XCTAssertEqual(exported.stdout.split(separator: "\n").count, 5)
    try Shell.vdb(["collections", "create", "w", "--vectors", "2", "--metric", "l2", "--db", db])
    let imported = try Shell.vdb(["import", "-", "-c", "w", "--db", db], input: exported.stdout)
    XCTAssertEqual(imported.status, 0, imported.stderr)
    let again = try Shell.vdb(["export", "-c", "w", "--db", db, "--include", "vector"])
    XCTAssertEqual(again.stdout, exported.stdout)

    let npy = directory + "/v.npy"
    let file = directory + "/v.jsonl"
    XCTAssertEqual(
      try Shell.vdb(["export", "-c", "v", "--db", db, "--npy", npy, "-o", file]).status, 0)
    XCTAssertEqual(
      try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").count, 5)
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: npy)).count, 128 + 5 * 2 * 4)
    XCTAssertEqual(try VectorFile.read(npy).rows, (0..<5).map { [Float($0), 0.25] })
    // More rows than one write holds (a MiB) come back whole and in order.
    let wide = (0..<700).map { row in (0..<384).map { Float(row * 384 + $0) / 1_000 } }
    let wideLines = wide.enumerated().map { #"{"id": "w\#($0)", "text": "", "vector": \#($1)}"# }
    try Shell.vdb([
      "collections", "create", "wide", "--vectors", "384", "--metric", "l2", "--db", db,
    ])
    let wideFile = directory + "/wide.jsonl"
    try wideLines.joined(separator: "\n").write(
      toFile: wideFile, atomically: false, encoding: .utf8)
    XCTAssertEqual(try Shell.vdb(["import", wideFile, "-c", "wide", "--db", db]).status, 0)
    let wideNpy = directory + "/wide.npy"
    XCTAssertEqual(try Shell.vdb(["export", "-c", "wide", "--db", db, "--npy", wideNpy]).status, 0)
    // The rows are in the lines' order (id order: "w0", "w1", "w10", …).
    let rowOfLine = try Shell.vdb(["export", "-c", "wide", "--db", db]).stdout
      .split(separator: "\n").map { line in
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        return try XCTUnwrap(Int(try XCTUnwrap(object?["id"] as? String).dropFirst()))
      }
    XCTAssertEqual(try VectorFile.read(wideNpy).rows, rowOfLine.map { wide[$0] })
    // Rows become documents "0"…"4"; a second file appended from --first-id 5.
    for first in [[], ["--first-id", "5"]] {
      let rows = try Shell.vdb(["import", "--vectors", npy, "-c", "rows", "--db", db] + first)
      XCTAssertEqual(rows.status, 0, rows.stderr)
    }
    XCTAssertEqual(try Shell.vdb(["count", "-c", "rows", "--db", db]).stdout, "10\n")
    XCTAssertEqual(try Shell.vdb(["get", "-c", "rows", "9", "--db", db]).status, 0)

    let backup = directory + "/backup"
    XCTAssertEqual(try Shell.vdb(["backup", backup, "--db", db]).status, 0)
    XCTAssertEqual(try Shell.vdb(["count", "-c", "w", "--db", backup]).stdout, "5\n")
    let refused = try Shell.vdb(["backup", backup, "--db", db])
    XCTAssertEqual(refused.status, 1)
    XCTAssertTrue(refused.stderr.contains("a database is already there"), refused.stderr)
  }

  func testCSVImportFromStdin() throws {
    let csv = "key,body,lang\nk1,\"hello, world\",en\nk2,bonjour,fr\n"
    let result = try Shell.vdb(
      [
        "import", "--csv", "-", "--text-column", "body", "--id-column", "key", "-c", "c",
        "--db", db,
      ], input: csv)
    XCTAssertEqual(result.status, 0, result.stderr)
    let document = try json(Shell.vdb(["get", "-c", "c", "--db", db, "k1", "--json"]))
    XCTAssertEqual(document["text"] as? String, "hello, world")
    XCTAssertEqual(document["metadata"] as? [String: String], ["lang": "en"])
    let bad = try Shell.vdb(
      ["import", "--csv", "-", "--text-column", "text", "-c", "d", "--db", db], input: csv)
    XCTAssertEqual(bad.status, 1)
    XCTAssertTrue(bad.stderr.hasPrefix(#"error: <stdin>: no column "text""#), bad.stderr)
    let file = directory + "/notes.csv"
    try csv.write(toFile: file, atomically: true, encoding: .utf8)
    let asJSONLines = try Shell.vdb(["import", file, "-c", "e", "--db", db])
    XCTAssertEqual(asJSONLines.status, 1)
    XCTAssertEqual(
      asJSONLines.stderr,
      "error: \(file):1: invalid JSON at byte 0: unexpected 'k' where a value should be\n"
        + "hint: \(file) is read as JSON Lines; for CSV, use --csv \(file)\n")
    // Saved by a Windows editor: the byte order mark is not part of the first column's name.
    let bom = try Shell.vdb(
      ["import", "--csv", "-", "-c", "b", "--db", db], input: "\u{FEFF}id,text\nk1,hello\n")
    XCTAssertEqual(bom.status, 0, bom.stderr)
    XCTAssertEqual(
      try json(Shell.vdb(["get", "-c", "b", "--db", db, "k1", "--json"]))["text"] as? String,
      "hello")
    // Options that would do nothing are refused, not ignored.
    for arguments in [
      ["import", file, "--text-column", "body", "-c", "e", "--db", db],
      ["query", "-c", "c", "--mode", "keyword", "--fusion", "rrf", "hello", "--db", db],
    ] {
      let ignored = try Shell.vdb(arguments)
      XCTAssertEqual(ignored.status, 2, ignored.stderr)
      XCTAssertTrue(ignored.stderr.contains(" go with --"), ignored.stderr)
    }
    let tsv = try Shell.vdb(
      ["import", "--csv", "-", "--delimiter", "tab", "-c", "t", "--db", db, "--json"],
      input: "id\ttext\nt1\tone, two\n")
    XCTAssertEqual(try json(tsv)["imported"] as? Int, 1)
    let two = try Shell.vdb(
      ["import", "--csv", "-", "--delimiter", "ab", "-c", "t", "--db", db], input: "")
    XCTAssertEqual(two.status, 2)
    XCTAssertEqual(
      two.stderr,
      "error: --delimiter must be one ASCII character, not a quote or a line break (got \"ab\")\n"
    )
  }

  /// A query file or a CSV that is not UTF-8 is refused at the line of its first bad byte;
  /// a UTF-16 file is called that.
  func testTextFilesThatAreNotUTF8AreRefusedWhereTheyAre() throws {
    try Shell.vdb(["collections", "create", "v", "--vectors", "2", "--db", db])
    let latin1 = directory + "/latin1.txt"
    // "café" in Latin-1 on the second line: the é is the lone byte 0xE9.
    try (Data("a kitten\nmotor caf".utf8) + [0xE9] + Data("\n".utf8)).write(
      to: URL(fileURLWithPath: latin1))
    let utf16 = directory + "/utf16.txt"
    try "a kitten\n".data(using: .utf16)!.write(to: URL(fileURLWithPath: utf16))
    for (file, message) in [
      (latin1, "error: \(latin1):2: invalid UTF-8 at character 10\n"),
      (utf16, "error: \(utf16): the file is UTF-16 (save it as UTF-8)\n"),
    ] {
      let query = try Shell.vdb(["query", "-c", "v", "--db", db, "--file", file])
      XCTAssertEqual(query.status, 1)
      XCTAssertEqual(query.stderr, message)
    }
    let csv = directory + "/latin1.csv"
    try (Data("id,text\nk1,caf".utf8) + [0xE9] + Data("\n".utf8)).write(
      to: URL(fileURLWithPath: csv))
    let imported = try Shell.vdb(["import", "--csv", csv, "-c", "c", "--db", db])
    XCTAssertEqual(imported.status, 1)
    XCTAssertEqual(imported.stderr, "error: \(csv):2: invalid UTF-8 in field 2 of the record\n")
  }
}
