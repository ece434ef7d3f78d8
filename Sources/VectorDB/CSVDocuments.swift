import CSV
import Foundation

/// The documents a CSV input holds, read without writing anything: the part of
/// `importCSV` that sees the input (and that Fuzz/targets/csv.swift runs).
enum CSVDocuments {
  /// A record that was left out, and why.
  struct BadRecord {
    /// The line the record starts on, from 1 (the header's).
    var line: Int
    var reason: String
  }

  /// Reads every record of `data` as `importCSV` documents it.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `source`: a delimiter that is not one
  ///   ASCII character other than a quote or a line break, input that is not UTF-8, broken
  ///   quoting, no header row, a missing or repeated column, a record the parser cannot
  ///   read; and, unless `skipBadRecords`, the first bad record (with it, such records are
  ///   returned as `BadRecord`s instead). A record is named by the line it starts on.
  ///   Blank lines are not records: they are skipped, and do not count for the ids of
  ///   an input without an id column.
  static func read(
    _ data: Data, source: String, textColumn: String, idColumn: String?,
    delimiter: Unicode.Scalar, skipBadRecords: Bool
  ) throws -> (documents: [Document], bad: [BadRecord]) {
    func fail(_ reason: String) -> VectorDBError {
      .invalidInput(source: source, line: nil, reason: reason)
    }
    guard delimiter.isASCII, !"\"\r\n".unicodeScalars.contains(delimiter) else {
      throw fail("the delimiter must be one ASCII character, not a quote or a line break")
    }
    let text = try TextFile.utf8(data, source: source)
    let scan = scanRecords(text, delimiter: UInt8(delimiter.value))
    if let problem = scan.problem {
      throw VectorDBError.invalidInput(source: source, line: problem.line, reason: problem.reason)
    }
    guard let reader = try? CSVReader(string: text, hasHeaderRow: true, delimiter: delimiter),
      let header = reader.headerRow, !header.isEmpty
    else {
      throw fail("no header row")
    }
    let columns: CSVColumns
    do {
      columns = try CSVColumns(header: header, text: textColumn, id: idColumn)
    } catch let bad as CSVColumns.Bad {
      throw fail(bad.reason)
    }
    var documents: [Document] = []
    var skipped: [BadRecord] = []
    var (record, parsed) = (0, 0)  // records with fields; all records, blank lines too
    // The line a record starts on (the header is record 0), as `scanRecords` counts them.
    func line(_ parsed: Int) -> Int? { parsed < scan.starts.count ? scan.starts[parsed] : nil }
    while let fields = reader.next() {
      parsed += 1
      if fields == [""] { continue }  // a blank line
      record += 1
      do {
        documents.append(try columns.document(fields, record: record))
      } catch let bad as CSVColumns.Bad {
        let line = line(parsed)
        guard skipBadRecords else {
          throw VectorDBError.invalidInput(
            source: source, line: line,
            reason: (line == nil ? "record \(record): " : "") + bad.reason)
        }
        skipped.append(BadRecord(line: line ?? parsed + 1, reason: bad.reason))
      }
    }
    if let error = reader.error {
      throw VectorDBError.invalidInput(
        source: source, line: line(parsed + 1), reason: "cannot read the record (\(error))")
    }
    return (documents, skipped)
  }
}

/// Which columns of a CSV header make a document: the text, the id (nil: the record
/// number), and the rest as metadata.
private struct CSVColumns {
  /// What is wrong with the header or a record, in words.
  struct Bad: Error { var reason: String }

  let header: [String]
  let text: Int
  let id: Int?

  /// - Throws: `Bad` when `text` or `id` is not a column (the id column defaults to
  ///   one named `id` or `_id`, if any), or a name is in the header twice (one of the two
  ///   columns would be lost).
  init(header: [String], text textColumn: String, id idColumn: String?) throws {
    var seen: [String: Int] = [:]
    for (index, name) in header.enumerated() {
      if let first = seen.updateValue(index, forKey: name) {
        throw Bad(
          reason:
            "the header names column \"\(name)\" twice (columns \(first + 1) and \(index + 1))")
      }
    }
    func index(of name: String, for purpose: String) throws -> Int {
      guard let index = header.firstIndex(of: name) else {
        throw Bad(
          reason:
            "no column \"\(name)\" for the \(purpose) (columns: "
            + header.prefix(20).joined(separator: ", ") + (header.count > 20 ? ", …)" : ")"))
      }
      return index
    }
    self.header = header
    text = try index(of: textColumn, for: "text")
    id = try (idColumn ?? ["id", "_id"].first(where: header.contains)).map {
      try index(of: $0, for: "ids")
    }
  }

  /// The document of record number `record` (from 1, after the header).
  ///
  /// - Throws: `Bad` for a record with more or fewer fields than the header, or an
  ///   empty or over-long id.
  func document(_ fields: [String], record: Int) throws -> Document {
    guard fields.count == header.count else {
      let count = fields.count == 1 ? "1 field" : "\(fields.count) fields"
      throw Bad(reason: "\(count); the header has \(header.count)")
    }
    var metadata: [String: JSONValue] = [:]
    for (index, name) in header.enumerated()
    where index != text && index != id && !fields[index].isEmpty {
      metadata[name] = .string(fields[index])
    }
    let document = Document(
      id: id.map { fields[$0] } ?? String(record), text: fields[text], metadata: metadata)
    do {
      try document.validate()
    } catch VectorDBError.invalidDocument(_, let reason) {
      throw Bad(reason: reason)
    }
    return document
  }
}

/// The line each record of `text` starts on (`starts[0]` the header's, 1), and where its
/// quoting breaks RFC 4180 in a way the parser would read silently wrong: a quoted field
/// the input never closes (it would swallow the rest of the file), or text after a field's
/// closing quote (`"ab"c`, `"ab" `: the parser runs on into the next record) — the line and
/// what is wrong; nil when the quoting is sound. A field is quoted when its first
/// character is `"`, and inside it `""` is one quote; a quote elsewhere in an unquoted
/// field (`12" pizza`) is text, as the parser reads it.
private func scanRecords(_ text: String, delimiter: UInt8) -> (
  starts: [Int], problem: (line: Int, reason: String)?
) {
  enum State { case fieldStart, unquoted, quoted, afterQuote }
  let (quote, lf, cr) = (UInt8(ascii: "\""), UInt8(ascii: "\n"), UInt8(ascii: "\r"))
  var state = State.fieldStart
  var line = 1
  var starts = [1]
  var opened = 0
  var previous: UInt8 = 0
  for byte in text.utf8 {
    if state == .afterQuote && byte != quote && byte != delimiter && byte != lf && byte != cr {
      return (
        starts,
        (
          line,
          "text after the closing quote of a field (a quote inside a quoted field is written twice: \"\")"
        )
      )
    }
    // A line ends at LF, CR or CRLF (the LF of a CRLF does not count again); outside a
    // quoted field, so does the record.
    if byte == cr || (byte == lf && previous != cr) {
      line += 1
      if state != .quoted { starts.append(line) }
    }
    previous = byte
    switch (state, byte) {
    case (.quoted, quote): state = .afterQuote
    case (.quoted, _): break
    case (.fieldStart, quote), (.afterQuote, quote):
      if state == .fieldStart { opened = line }
      state = .quoted
    case (_, delimiter), (_, lf), (_, cr): state = .fieldStart
    default: state = .unquoted
    }
  }
  return (
    starts,
    state == .quoted ? (opened, "the quoted field that opens on this line is never closed") : nil
  )
}
