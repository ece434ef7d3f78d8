import Foundation
import XCTest

@testable import VectorDB

final class ImportTests: XCTestCase {
  var directory: String!

  override func setUpWithError() throws {
    directory = NSTemporaryDirectory() + "vdb-import-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  private func file(_ name: String, _ lines: [String], crlf: Bool = false) throws -> String {
    let path = directory + "/" + name
    try Data(lines.joined(separator: crlf ? "\r\n" : "\n").utf8).write(
      to: URL(fileURLWithPath: path))
    return path
  }

  private func collection() throws -> DocumentCollection {
    try Database(path: directory + "/db").collection("c")
  }

  func testImportsIdsTitlesAndMetadata() throws {
    let path = try file(
      "docs.jsonl",
      [
        #"{"_id": "1", "title": "Title", "text": "Body."}"#,
        "",
        #"{"id": 2, "text": "  Second  ", "metadata": {"year": 2020}}"#,
        #"{"_id": "3", "title": "", "text": "No title", "extra": true}"#,
      ], crlf: true)
    let docs = try collection()
    let report = try docs.importJSONL(path: path)
    XCTAssertEqual(report.imported, 3)
    XCTAssertEqual(try docs.get("1")?.text, "Title Body.")
    XCTAssertEqual(
      try docs.get("2"), Document(id: "2", text: "  Second  ", metadata: ["year": 2020]),
      "the text is kept as given")
    XCTAssertEqual(try docs.get("3")?.text, "No title")
    XCTAssertEqual(try docs.get("3")?.metadata, ["extra": true], "unknown fields are metadata")
  }

  func testATopLevelFieldAlsoInMetadataIsAnError() throws {
    let path = try file(
      "both.jsonl", [#"{"_id": "1", "text": "t", "year": 1, "metadata": {"year": 2}}"#])
    XCTAssertThrowsError(try collection().importJSONL(path: path)) { error in
      XCTAssertEqual(
        "\(error)", "\(path):1: field \"year\" is both a top-level field and in \"metadata\"")
    }
  }

  func testBadLineStopsTheImportAndWritesNothing() throws {
    let path = try file(
      "bad.jsonl",
      [
        #"{"_id": "1", "text": "fine"}"#, #"{"_id": "2", "text": "fine"}"#,
        #"{"_id": "3", "text": 42}"#,
      ])
    let docs = try collection()
    XCTAssertThrowsError(try docs.importJSONL(path: path)) { error in
      XCTAssertEqual("\(error)", "\(path):3: field \"text\" must be a string")
    }
    XCTAssertEqual(try docs.count(), 0)
  }

  func testAVectorTheCollectionCannotHoldOnALateLineWritesNothing() throws {
    let good = (1...5).map { #"{"_id": "\#($0)", "text": "t", "vector": [1, 0]}"# }
    let docs = try Database(path: directory + "/db").collection(
      "v", options: CollectionOptions(vectors: .given(dimension: 2, metric: .cosine)))
    for (late, problem) in [
      ("[0, 0]", "the vector is all zeros, which has no cosine similarity"),
      ("[1e39, 0]", "the vector holds inf at position 0"),
    ] {
      let path = try file(
        "late.jsonl", good + [#"{"_id": "6", "text": "t", "vector": \#(late)}"#])
      var options = ImportOptions()
      options.batchSize = 2
      XCTAssertThrowsError(try docs.importJSONL(path: path, options: options)) { error in
        XCTAssertEqual("\(error)", "\(path):6: document \"6\": \(problem)")
      }
      XCTAssertEqual(try docs.count(), 0)
    }
  }

  func testALineWithItsVectorMayLeaveTheTextOut() throws {
    let path = try file(
      "points.jsonl",
      [
        #"{"id": 1, "vector": [1, 0], "payload": "a"}"#,
        #"{"id": 2, "vector": [0, 1], "text": null}"#,
        #"{"id": 3, "vector": [1, 1], "text": "said"}"#,
      ])
    let docs = try Database(path: directory + "/db").collection(
      "v", options: CollectionOptions(vectors: .given(dimension: 2, metric: .cosine)))
    XCTAssertEqual(try docs.importJSONL(path: path).imported, 3)
    XCTAssertEqual(try docs.get("1"), Document(id: "1", text: "", metadata: ["payload": "a"]))
    XCTAssertEqual(try docs.get("2")?.text, "")
    XCTAssertEqual(try docs.get("3")?.text, "said")
    // Without a vector the text is what would be embedded: its absence is named.
    for (line, reason) in [
      (#"{"id": 4, "text": null}"#, "field \"text\" must be a string"),
      (#"{"id": 4, "vector": null}"#, "missing field \"text\""),
    ] {
      let bad = try file("bad.jsonl", [line])
      XCTAssertThrowsError(try collection().importJSONL(path: bad), line) { error in
        XCTAssertEqual("\(error)", "\(bad):1: \(reason)")
      }
    }
  }

  func testEachKindOfBadLineIsNamed() throws {
    let cases: [(String, String)] = [
      (#"{"text": "no id"}"#, "missing field \"_id\" (or \"id\")"),
      (#"{"_id": "1"}"#, "missing field \"text\""),
      (#"{"_id": "1", "text": "t", "metadata": [1]}"#, "field \"metadata\" must be a JSON object"),
      (#"{"_id": "1", "text": "t", "title": 5}"#, "field \"title\" must be a string"),
      (#"{"_id": "", "text": "t"}"#, "the id is empty"),
      (#"{"_id": "1", "text": "unterminated"#, "invalid JSON at byte 21: a string is not closed"),
      (#"["not", "an", "object"]"#, "expected a JSON object"),
      (
        #"{"_id": "1", "id": "2", "text": "t"}"#,
        "fields \"_id\" and \"id\" are both given: the id is one of them"
      ),
    ]
    for (line, reason) in cases {
      let path = try file("case.jsonl", [#"{"_id": "ok", "text": "fine"}"#, line])
      XCTAssertThrowsError(try collection().importJSONL(path: path), line) { error in
        XCTAssertEqual("\(error)", "\(path):2: \(reason)")
      }
    }
  }

  func testInvalidUTF8IsReportedWithItsLineAndCharacter() throws {
    let path = directory + "/latin1.jsonl"
    var bytes = Array(#"{"_id": "1", "text": "ok"}"#.utf8) + [10]
    bytes += Array(#"{"_id": "2", "text": "caf"#.utf8) + [0xE9] + Array(#""}"#.utf8)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    XCTAssertThrowsError(try collection().importJSONL(path: path)) { error in
      XCTAssertEqual("\(error)", "\(path):2: invalid UTF-8 at character 26")
    }
  }

  func testAByteOrderMarkAndCRLFLineEndsAreAccepted() throws {
    let path = directory + "/windows.jsonl"
    let lines =
      #"{"_id": "1", "text": "first"}"# + "\r\n" + #"{"_id": "2", "text": "second"}"# + "\r\n"
    try Data([0xEF, 0xBB, 0xBF] + Array(lines.utf8)).write(to: URL(fileURLWithPath: path))
    let notes = try collection()
    XCTAssertEqual(try notes.importJSONL(path: path).imported, 2)
    XCTAssertEqual(try notes.get("1")?.text, "first")
    XCTAssertEqual(try notes.get("2")?.text, "second")
  }

  func testAUTF16FileIsNamedAsSuch() throws {
    let path = directory + "/utf16.jsonl"
    let text = #"{"_id": "1", "text": "ok"}"# + "\n"
    try ([0xFF, 0xFE] + Data(text.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }))
      .write(to: URL(fileURLWithPath: path))
    XCTAssertThrowsError(try collection().importJSONL(path: path)) { error in
      XCTAssertEqual("\(error)", "\(path):1: invalid UTF-8: the file is UTF-16 (save it as UTF-8)")
    }
  }

  func testSkipBadReportsAndImportsTheRest() throws {
    let path = try file(
      "mixed.jsonl",
      [#"{"_id": "1", "text": "a"}"#, "not json", #"{"_id": "2", "text": "b"}"#, #"{"_id": 3}"#])
    var options = ImportOptions()
    options.skipBadLines = true
    let docs = try collection()
    let report = try docs.importJSONL(path: path, options: options)
    XCTAssertEqual(report.imported, 2)
    XCTAssertEqual(report.skipped.map(\.line), [2, 4])
    XCTAssertEqual(try docs.count(), 2)
  }

  func testDuplicateIdsInAFileLastWins() throws {
    let path = try file(
      "dup.jsonl",
      [
        #"{"_id": "1", "text": "old"}"#, #"{"id": 2, "text": "two"}"#,
        #"{"_id": "1", "text": "new"}"#, #"{"_id": "1", "text": "bad", "metadata": 5}"#,
        #"{"_id": "2", "text": "second two"}"#,
      ])
    var options = ImportOptions()
    options.skipBadLines = true
    options.batchSize = 1
    let docs = try collection()
    var progress: [Int] = []
    let report = try docs.importJSONL(path: path, options: options) {
      progress.append($0.total)
    }
    XCTAssertEqual(report.imported, 2, "one document per id")
    XCTAssertEqual(report.superseded, 2, "lines 1 and 2 are replaced; the bad line 4 is not")
    XCTAssertEqual(report.skipped.map(\.line), [4])
    XCTAssertEqual(progress, [2, 2], "progress counts documents, not lines")
    XCTAssertEqual(try docs.count(), 2)
    XCTAssertEqual(try docs.get("1")?.text, "new", "a bad last line does not replace a good one")
    XCTAssertEqual(try docs.get("2")?.text, "second two", "the integer id 2 is the id \"2\"")
  }

  func testTransactionsHoldMoreDocumentsWhenTheyBringTheirVectors() throws {
    let database = try Database(path: directory + "/db")
    var done: [Int] = []
    let record = { (progress: OperationProgress) in done.append(progress.done) }
    let texts = try file("texts.jsonl", (0...1_000).map { #"{"id": \#($0), "text": "t"}"# })
    try database.collection("texts").importJSONL(path: texts, progress: record)
    XCTAssertEqual(done, [1_000, 1_001], "texts: ImportOptions.embeddedBatchSize a transaction")
    let given = try file(
      "given.jsonl", (0...10_000).map { #"{"id": \#($0), "text": "", "vector": [\#($0), 1]}"# })
    let vectors = try database.collection("given", options: .vectors(dimension: 2, metric: .l2))
    done = []
    try vectors.importJSONL(path: given, progress: record)
    XCTAssertEqual(done, [10_000, 10_001], "vectors: ImportOptions.givenVectorsBatchSize")
    var fvecs = Data()
    for row in 0...10_000 {
      for value in [Float(bitPattern: 2), Float(row), 1] {
        withUnsafeBytes(of: value.bitPattern.littleEndian) { fvecs.append(contentsOf: $0) }
      }
    }
    let path = directory + "/rows.fvecs"
    try fvecs.write(to: URL(fileURLWithPath: path))
    done = []
    try vectors.importVectors(path: path, firstID: 20_000, progress: record)
    XCTAssertEqual(done, [10_000, 10_001])
    var options = ImportOptions()
    options.batchSize = 4_000
    done = []
    try vectors.importJSONL(path: given, options: options, progress: record)
    XCTAssertEqual(done, [4_000, 8_000, 10_001], "a batch size given is kept")
  }

  /// A file is read a chunk at a time, twice, never whole: lines cut by a chunk's end
  /// (a byte order mark, CRLF, blank lines, a line longer than a chunk) come out as from
  /// the file in memory, and a pipe, which cannot be read twice, is read whole.
  func testAFileIsReadAChunkAtATime() throws {
    let lines = [
      "", #"{"_id": "1", "text": "first"}"#, "  ",
      #"{"_id": "2", "text": "\#(String(repeating: "é", count: 40))"}"#,
      "", #"{"_id": "3", "text": "last, without a line end"}"#,
    ]
    let path = directory + "/chunks.jsonl"
    let data = Data([0xEF, 0xBB, 0xBF] + Array(lines.joined(separator: "\r\n").utf8))
    try data.write(to: URL(fileURLWithPath: path))
    var whole: [String] = []
    try JSONLines.forEach(in: data) {
      whole.append("\($0): " + String(decoding: $1, as: UTF8.self))
    }
    XCTAssertEqual(whole.map { $0.prefix(2) }, ["2:", "4:", "6:"])
    for chunkSize in [1, 2, 3, 7, 64, 1 << 20] {
      let file = try InputFile(path, chunkSize: chunkSize)
      var read: [String] = []
      try JSONLines.forEach(in: file) {
        read.append("\($0): " + String(decoding: $1, as: UTF8.self))
      }
      XCTAssertEqual(read, whole, "chunks of \(chunkSize) bytes")
      let database = try Database(path: directory + "/db\(chunkSize)")
      let report = try database.collection("c").importJSONL(file)
      XCTAssertEqual(report.imported, 3)
      XCTAssertEqual(try database.collection("c").get("3")?.text, "last, without a line end")
    }

    // A regular file that says it is empty but is not (`/proc`) is read to its end.
    XCTAssertGreaterThan(try InputFile("/proc/self/status").size, 0)

    let fifo = directory + "/fifo.jsonl"
    XCTAssertEqual(mkfifo(fifo, 0o600), 0)
    let writer = Thread {
      // Opening blocks until the import opens the pipe to read it.
      if let handle = FileHandle(forWritingAtPath: fifo) {
        handle.write(data)
        try? handle.close()
      }
    }
    writer.start()
    let docs = try collection()
    XCTAssertEqual(try docs.importJSONL(path: fifo).imported, 3, "a pipe is read whole")
    XCTAssertEqual(try docs.get("2")?.text, String(repeating: "é", count: 40))
  }

  /// A pipe is held in memory up to a limit, then copied on into a temporary file that
  /// is read like a regular file; a temporary directory without room is named.
  func testALongPipeIsCopiedIntoATemporaryFile() throws {
    // Less than a pipe holds (64 KiB), so that the writer is done before the reader
    // stops early.
    let lines = (1...1_000).map { #"{"_id": "\#($0)", "text": "line \#($0)"}"# }
    let data = Data(lines.joined(separator: "\n").utf8)
    /// `data` through a pipe, held in memory up to `limit` bytes.
    func piped(limit: Int) throws -> InputFile {
      var descriptors: [Int32] = [0, 0]
      XCTAssertEqual(pipe(&descriptors), 0)
      let ends = descriptors
      let writer = Thread {
        data.withUnsafeBytes { bytes in
          var done = 0
          while done < bytes.count {
            let count = write(ends[1], bytes.baseAddress! + done, bytes.count - done)
            guard count > 0 else { break }
            done += count
          }
        }
        close(ends[1])
      }
      writer.start()
      return try InputFile(descriptor: ends[0], source: "pipe", chunkSize: 4096, memoryLimit: limit)
    }
    for limit in [data.count, data.count - 1, 1_000, 0] {
      let input = try piped(limit: limit)
      XCTAssertEqual(input.size, data.count)
      XCTAssertEqual(input.isOnDisk, limit < data.count, "limit \(limit)")
      var read = Data()
      try input.forEachChunk { read.append(contentsOf: $0) }
      XCTAssertEqual(read, data, "limit \(limit)")
      let docs = try Database(path: directory + "/db\(limit)").collection("c")
      XCTAssertEqual(try docs.importJSONL(input).imported, 1_000)
      XCTAssertEqual(try docs.get("1000")?.text, "line 1000")
    }

    let saved = ProcessInfo.processInfo.environment["TMPDIR"]
    defer {
      if let saved { setenv("TMPDIR", saved, 1) } else { unsetenv("TMPDIR") }
    }
    setenv("TMPDIR", directory + "/missing", 1)
    XCTAssertThrowsError(try piped(limit: 1_000)) { error in
      XCTAssertEqual(
        "\(error)",
        "pipe: cannot copy the input into a temporary file in \(directory!)/missing (no such file"
          + " or directory); set TMPDIR to a directory with room")
    }
    XCTAssertNoThrow(try piped(limit: data.count), "what fits in memory needs no file")

    // A device is never copied to disk: one that gives bytes without end is refused at
    // the memory limit, not read until the disk is full.
    XCTAssertThrowsError(try InputFile("/dev/zero")) { error in
      XCTAssertEqual(
        "\(error)",
        "/dev/zero: cannot read: a device that gives more than 64 MiB (such as /dev/zero) is not"
          + " read; give a file or a pipe")
    }
    XCTAssertEqual(try InputFile("/dev/null").size, 0)
  }

  /// A file without line ends (a sparse file here, a disk image) is refused at the
  /// longest line read, not gathered until memory runs out.
  func testAFileWithoutLineEndsIsRefusedNotGathered() throws {
    let path = directory + "/image.jsonl"
    XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: nil))
    XCTAssertEqual(truncate(path, off_t(JSONLines.maxLineLength + (8 << 20))), 0)
    XCTAssertThrowsError(try collection().importJSONL(path: path)) { error in
      XCTAssertEqual("\(error)", "\(path):1: a line longer than 256 MiB: is this JSON Lines?")
    }
  }

  /// Another process writing the file between or during the two reads stops the import
  /// with an error saying so, never a mix of two versions, nor "bad line" for a good one.
  func testAFileThatChangesDuringTheImportIsAnError() throws {
    let path = try file("changing.jsonl", (1...3).map { #"{"_id": "\#($0)", "text": "t"}"# })
    var options = ImportOptions()
    options.batchSize = 1
    let docs = try collection()
    // Read 16 bytes at a time, the import meets the change on its next read; read whole
    // (a chunk of 4 MiB), when it looks again at the end.
    for (chunkSize, written) in [(16, 1), (4 << 20, 3)] {
      let original = try Data(contentsOf: URL(fileURLWithPath: path))
      try docs.delete(["1", "2", "3"])
      XCTAssertThrowsError(
        try docs.importJSONL(InputFile(path, chunkSize: chunkSize), options: options) {
          if $0.done == 1 { try Data("not json\n".utf8).write(to: URL(fileURLWithPath: path)) }
        }
      ) { error in
        XCTAssertEqual(
          "\(error)",
          "\(path): the file changed while it was read (another process wrote it); run again")
      }
      XCTAssertEqual(try docs.count(), written, "the batches read before the change stay")
      try original.write(to: URL(fileURLWithPath: path))
    }

    let vectors = try Database(path: directory + "/db").collection(
      "v", options: .vectors(dimension: 2, metric: .l2))
    let fvecs = directory + "/rows.fvecs"
    try VectorFile.fvecsBytes((0..<3).map { [Float($0), 1] }).write(to: URL(fileURLWithPath: fvecs))
    XCTAssertThrowsError(
      try vectors.importVectors(path: fvecs, batchSize: 1) { progress in
        if progress.done == 1 {
          try VectorFile.fvecsBytes([[9, 9]]).write(to: URL(fileURLWithPath: fvecs))
        }
      }
    ) { error in
      XCTAssertTrue("\(error)".contains("the file changed while it was read"), "\(error)")
    }
  }

  func testSciFactCorpus() throws {
    let scifact = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../../shared/datasets/scifact").standardized.path
    let docs = try collection()
    var updates = 0
    var options = ImportOptions()
    options.batchSize = 1000
    let report = try docs.importBEIR(directory: scifact, options: options) { _ in updates += 1 }
    XCTAssertEqual(report.imported, 5183)
    XCTAssertEqual(updates, 6)
    XCTAssertEqual(try docs.count(), 5183)
    XCTAssertTrue(
      try docs.get("4983")?.text.hasPrefix("Microstructural development of human newborn") ?? false)
    try Database(path: directory + "/db").verify()
  }
}
