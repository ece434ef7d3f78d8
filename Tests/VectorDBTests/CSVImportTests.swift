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
    let report = try docs.importCSV(data: Data(csv.utf8), source: "in.csv", textColumn: "body")
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
      data: Data("id,text\na,old\nb,bee\na,new\n".utf8), source: "in.csv", textColumn: "text")
    XCTAssertEqual(report.imported, 2)
    XCTAssertEqual(report.superseded, 1)
    XCTAssertEqual(try docs.get("a")?.text, "new")
  }

  func testRecordNumbersWithoutAnIdColumn() throws {
    let docs = try collection()
    try docs.importCSV(data: Data("text\nalpha\nbeta\n".utf8), source: "in.csv", textColumn: "text")
    XCTAssertEqual(try docs.documents().map(\.id), ["1", "2"])
  }

  func testBadInputIsNamedAndNothingIsWritten() throws {
    let docs = try collection()
    XCTAssertThrowsError(
      try docs.importCSV(data: Data("id,body\na,x\n".utf8), source: "in.csv", textColumn: "text")
    ) {
      XCTAssertEqual("\($0)", #"in.csv: no column "text" for the text (columns: id, body)"#)
    }
    XCTAssertThrowsError(
      try docs.importCSV(
        data: Data("id,text,tag,n,tag\na,x,1,2,3\n".utf8), source: "in.csv", textColumn: "text")
    ) {
      XCTAssertEqual("\($0)", #"in.csv: the header names column "tag" twice (columns 3 and 5)"#)
    }
    let short = Data("id,text,n\na,x,1\nb,y\nc,z,3\n".utf8)
    XCTAssertThrowsError(try docs.importCSV(data: short, source: "in.csv", textColumn: "text")) {
      XCTAssertEqual("\($0)", "in.csv:3: 2 fields; the header has 3")
    }
    XCTAssertEqual(try docs.count(), 0)
    var options = ImportOptions()
    options.skipBadLines = true
    let report = try docs.importCSV(
      data: short, source: "in.csv", textColumn: "text", options: options)
    XCTAssertEqual(report.imported, 2)
    XCTAssertEqual(report.skipped.map(\.line), [3])
    XCTAssertEqual(try docs.documents().map(\.id), ["a", "c"])
  }

  /// Blank lines are no records (a trailing one failed the import), and a record is named
  /// by the line it starts on, after blank lines and fields that span lines.
  func testBlankLinesAreSkippedAndRecordsAreNamedByTheirLine() throws {
    let docs = try collection()
    try docs.importCSV(
      data: Data("id,text\r\na,x\r\n\r\nb,y\r\n\r\n".utf8), source: "in.csv", textColumn: "text")
    XCTAssertEqual(try docs.documents().map(\.id), ["a", "b"])
    try docs.importCSV(
      data: Data("text\nalpha\n\nbeta\n\n".utf8), source: "ids.csv", textColumn: "text")
    XCTAssertEqual(try docs.get("2")?.text, "beta", "blank lines count for no id")
    XCTAssertNil(try docs.get("3"))
    let bad = Data("id,text\na,\"two\nlines\"\n\nb,y,extra\n".utf8)
    XCTAssertThrowsError(try docs.importCSV(data: bad, source: "in.csv", textColumn: "text")) {
      XCTAssertEqual("\($0)", "in.csv:5: 3 fields; the header has 2")
    }
  }

  func testAnUnclosedQuoteIsNamedByItsLineNotSwallowed() throws {
    let docs = try collection()
    let unclosed = Data("id,text\r\na,\"two\nlines\"\r\nb,\"never closed\nc,more\n".utf8)
    XCTAssertThrowsError(try docs.importCSV(data: unclosed, source: "in.csv", textColumn: "text")) {
      XCTAssertEqual(
        "\($0)", "in.csv:4: the quoted field that opens on this line is never closed")
    }
    XCTAssertEqual(try docs.count(), 0)
    for trailing in ["a,\"ab\" \nb,x\n", "a,\"ab\"c\nb,\"q\"\n"] {
      XCTAssertThrowsError(
        try docs.importCSV(
          data: Data(("id,text\n" + trailing).utf8), source: "in.csv", textColumn: "text")
      ) {
        XCTAssertTrue("\($0)".hasPrefix("in.csv:2: text after the closing quote"), "\($0)")
      }
    }
    // A quote inside an unquoted field is text, and a doubled quote inside a quoted one.
    let inches = Data("id,text\na,12\" pizza\nb,\"say \"\"hi\"\"\"\n".utf8)
    try docs.importCSV(data: inches, source: "in.csv", textColumn: "text")
    XCTAssertEqual(try docs.get("a")?.text, "12\" pizza")
    XCTAssertEqual(try docs.get("b")?.text, "say \"hi\"")
  }

  func testTabSeparatedValues() throws {
    let docs = try collection()
    let tsv = Data("id\ttext\tlang\na\thello, world\ten\nb\t\"a\ttab\"\tfr\n".utf8)
    try docs.importCSV(data: tsv, source: "in.tsv", textColumn: "text", delimiter: "\t")
    XCTAssertEqual(
      try docs.get("a"), Document(id: "a", text: "hello, world", metadata: ["lang": "en"]))
    XCTAssertEqual(try docs.get("b")?.text, "a\ttab")
    XCTAssertThrowsError(
      try docs.importCSV(data: tsv, source: "in.tsv", textColumn: "text", delimiter: "\"")
    ) {
      XCTAssertEqual(
        "\($0)", "in.tsv: the delimiter must be one ASCII character, not a quote or a line break")
    }
  }
}
