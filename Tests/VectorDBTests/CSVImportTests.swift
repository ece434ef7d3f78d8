import Foundation
import XCTest

@testable import VectorDB

final class CSVImportTests: XCTestCase {
  var path: String!

  override func setUpWithError() throws {
    path = NSTemporaryDirectory() + "vdb-csv-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  private func collection() throws -> DocumentCollection {
    try Database(path: path).collection("c", options: CollectionOptions(vectors: .none))
  }

  func testColumnsBecomeIdTextAndMetadata() throws {
    let csv = [
      "id,body,year,tag",
      #"a,"first, with a comma",2020,x"#,
      #"b,"two"# + "\n" + #"lines and ""quotes""",,y"#,
      "",
    ].joined(separator: "\r\n")
    let docs = try collection()
    let report = try docs.importCSV(InputFile(Data(csv.utf8), source: "in.csv"), textColumn: "body")
    XCTAssertEqual(report.imported, 2)
    XCTAssertEqual(
      try docs.get("a"),
      Document(id: "a", text: "first, with a comma", metadata: ["year": "2020", "tag": "x"]))
    XCTAssertEqual(
      try docs.get("b"),
      Document(id: "b", text: "two\nlines and \"quotes\"", metadata: ["tag": "y"]))
  }

  func testARepeatedIdIsWrittenOnceFromItsLastRecord() throws {
    let docs = try collection()
    let report = try docs.importCSV(
      InputFile(Data("id,text\na,old\nb,bee\na,new\n".utf8), source: "in.csv"), textColumn: "text")
    XCTAssertEqual(report.imported, 2)
    XCTAssertEqual(report.superseded, 1)
    XCTAssertEqual(try docs.get("a")?.text, "new")
  }

  func testRecordNumbersWithoutAnIdColumn() throws {
    let docs = try collection()
    try docs.importCSV(
      InputFile(Data("text\nalpha\nbeta\n".utf8), source: "in.csv"), textColumn: "text")
    XCTAssertEqual(try docs.documents().map(\.id), ["1", "2"])
  }

  func testBadInputIsNamedAndNothingIsWritten() throws {
    let docs = try collection()
    XCTAssertThrowsError(
      try docs.importCSV(
        InputFile(Data("id,body\na,x\n".utf8), source: "in.csv"), textColumn: "text")
    ) {
      XCTAssertEqual("\($0)", #"in.csv: no column "text" for the text (columns: id, body)"#)
    }
    XCTAssertThrowsError(
      try docs.importCSV(
        InputFile(Data("id,text,tag,n,tag\na,x,1,2,3\n".utf8), source: "in.csv"), textColumn: "text"
      )
    ) {
      XCTAssertEqual("\($0)", #"in.csv: the header names column "tag" twice (columns 3 and 5)"#)
    }
    let short = Data("id,text,n\na,x,1\nb,y\nc,z,3\n".utf8)
    XCTAssertThrowsError(try docs.importCSV(InputFile(short, source: "in.csv"), textColumn: "text"))
    {
      XCTAssertEqual("\($0)", "in.csv:3: 2 fields; the header has 3")
    }
    XCTAssertEqual(try docs.count(), 0)
    var options = ImportOptions()
    options.skipBadLines = true
    let report = try docs.importCSV(
      InputFile(short, source: "in.csv"), textColumn: "text", options: options)
    XCTAssertEqual(report.imported, 2)
    XCTAssertEqual(report.skipped.map(\.line), [3])
    XCTAssertEqual(try docs.documents().map(\.id), ["a", "c"])
  }

  /// Blank lines are no records (a trailing one failed the import), and a record is named
  /// by the line it starts on, after blank lines and fields that span lines.
  func testBlankLinesAreSkippedAndRecordsAreNamedByTheirLine() throws {
    let docs = try collection()
    try docs.importCSV(
      InputFile(Data("id,text\r\na,x\r\n\r\nb,y\r\n\r\n".utf8), source: "in.csv"),
      textColumn: "text")
    XCTAssertEqual(try docs.documents().map(\.id), ["a", "b"])
    try docs.importCSV(
      InputFile(Data("text\nalpha\n\nbeta\n\n".utf8), source: "ids.csv"), textColumn: "text")
    XCTAssertEqual(try docs.get("2")?.text, "beta", "blank lines count for no id")
    XCTAssertNil(try docs.get("3"))
    let bad = Data("id,text\na,\"two\nlines\"\n\nb,y,extra\n".utf8)
    XCTAssertThrowsError(try docs.importCSV(InputFile(bad, source: "in.csv"), textColumn: "text")) {
      XCTAssertEqual("\($0)", "in.csv:5: 3 fields; the header has 2")
    }
  }

  func testAnUnclosedQuoteIsNamedByItsLineNotSwallowed() throws {
    let docs = try collection()
    let unclosed = Data("id,text\r\na,\"two\nlines\"\r\nb,\"never closed\nc,more\n".utf8)
    XCTAssertThrowsError(
      try docs.importCSV(InputFile(unclosed, source: "in.csv"), textColumn: "text")
    ) {
      XCTAssertEqual(
        "\($0)", "in.csv:4: the quoted field that opens on this line is never closed")
    }
    XCTAssertEqual(try docs.count(), 0)
    for trailing in ["a,\"ab\" \nb,x\n", "a,\"ab\"c\nb,\"q\"\n"] {
      XCTAssertThrowsError(
        try docs.importCSV(
          InputFile(Data(("id,text\n" + trailing).utf8), source: "in.csv"), textColumn: "text")
      ) {
        XCTAssertTrue("\($0)".hasPrefix("in.csv:2: text after the closing quote"), "\($0)")
      }
    }
    // A quote inside an unquoted field is text, and a doubled quote inside a quoted one.
    let inches = Data("id,text\na,12\" pizza\nb,\"say \"\"hi\"\"\"\n".utf8)
    try docs.importCSV(InputFile(inches, source: "in.csv"), textColumn: "text")
    XCTAssertEqual(try docs.get("a")?.text, "12\" pizza")
    XCTAssertEqual(try docs.get("b")?.text, "say \"hi\"")
  }

  func testTabSeparatedValues() throws {
    let docs = try collection()
    let tsv = Data("id\ttext\tlang\na\thello, world\ten\nb\t\"a\ttab\"\tfr\n".utf8)
    try docs.importCSV(InputFile(tsv, source: "in.tsv"), textColumn: "text", delimiter: "\t")
    XCTAssertEqual(
      try docs.get("a"), Document(id: "a", text: "hello, world", metadata: ["lang": "en"]))
    XCTAssertEqual(try docs.get("b")?.text, "a\ttab")
    XCTAssertThrowsError(
      try docs.importCSV(InputFile(tsv, source: "in.tsv"), textColumn: "text", delimiter: "\"")
    ) {
      XCTAssertEqual(
        "\($0)", "in.tsv: the delimiter must be one ASCII character, not a quote or a line break")
    }
  }

  /// The records are the same whatever bytes a read brings: records, CRLFs, quotes, a
  /// byte order mark and UTF-8 characters cut between two chunks.
  func testChunkedReadingGivesTheSameRecords() throws {
    let csv =
      "\u{FEFF}id,text,tag\r\na,\"two\r\nlines, \"\"quoted\"\"\",x\r\n\r\nb,café 東京,\r\n"
      + "c,\"\",\"\"\"\"\nd,12\" pizza,y\re,last,z"
    let expected: [(Int, [String])] = [
      (1, ["id", "text", "tag"]), (2, ["a", "two\r\nlines, \"quoted\"", "x"]),
      (5, ["b", "café 東京", ""]), (6, ["c", "", "\""]), (7, ["d", "12\" pizza", "y"]),
      (8, ["e", "last", "z"]),
    ]
    FileManager.default.createFile(atPath: path, contents: Data(csv.utf8))
    for chunkSize in [1, 2, 3, 5, 7, 64, 1 << 20] {
      var records: [(Int, [String])] = []
      try CSVRecords.forEach(
        in: InputFile(path, chunkSize: chunkSize), delimiter: UInt8(ascii: ",")
      ) { records.append(($0, $1)) }
      XCTAssertEqual(records.map(\.0), expected.map(\.0), "chunks of \(chunkSize)")
      XCTAssertEqual(records.map(\.1), expected.map(\.1), "chunks of \(chunkSize)")
    }
  }

  /// Memory holds a record, not the input: a record past the bound is refused at its line
  /// (as is a quoted field never closed, which would otherwise gather the whole file).
  func testARecordPastTheBoundIsRefused() throws {
    let file = InputFile(
      Data("id,text\na,short\nb,\"opens\n\(String(repeating: "x", count: 100))".utf8),
      source: "in.csv")
    XCTAssertThrowsError(
      try CSVRecords.forEach(in: file, delimiter: UInt8(ascii: ","), maxRecordLength: 64) { _, _ in
      }
    ) {
      XCTAssertEqual(
        "\($0)",
        "in.csv:3: a record longer than 64 bytes (its quoted field that opens on line 3 is open)")
    }
  }

  func testARecordOfTooManyFieldsIsRefused() throws {
    let commas = String(repeating: ",", count: CSVRecords.maxFields)
    let file = InputFile(Data("id,text\na,b\n\(commas)\n".utf8), source: "in.csv")
    XCTAssertThrowsError(
      try CSVRecords.forEach(in: file, delimiter: UInt8(ascii: ",")) { _, _ in }
    ) {
      XCTAssertEqual("\($0)", "in.csv:3: a record of more than 65536 fields")
    }
  }

  func testTextThatIsNotUTF8IsNamedByItsLine() throws {
    let docs = try collection()
    var latin1 = Data("id,text\na,\"caf".utf8)
    latin1.append(contentsOf: [0xE9, 0x0A, 0xE9])
    latin1.append(contentsOf: Data("\"\n".utf8))
    XCTAssertThrowsError(
      try docs.importCSV(InputFile(latin1, source: "in.csv"), textColumn: "text")
    ) {
      XCTAssertEqual("\($0)", "in.csv:2: invalid UTF-8 in field 2 of the record")
    }
    var utf16 = Data([0xFF, 0xFE])
    utf16.append(contentsOf: Data("i\0d\0".utf8))
    XCTAssertThrowsError(
      try docs.importCSV(InputFile(utf16, source: "in.csv"), textColumn: "text")
    ) {
      XCTAssertEqual("\($0)", "in.csv: the file is UTF-16 (save it as UTF-8)")
    }
    XCTAssertEqual(try docs.count(), 0)
  }

}
