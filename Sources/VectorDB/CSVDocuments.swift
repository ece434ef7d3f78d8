import Foundation

/// The documents a CSV input holds, read a chunk at a time without writing anything: the
/// part of `importCSV` that sees the input (and that Fuzz/targets/csv.swift runs).
enum CSVDocuments {
  /// Why a record cannot be a document.
  struct BadRecord: Error {
    var reason: String
  }

  /// Calls `body` with each record after the header: the line it starts on, and its
  /// document or why it cannot be one (a record with more or fewer fields than the header,
  /// an empty or over-long id). Blank lines are not records: they are skipped, and count
  /// for no id.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `file` (and the line, where there is
  ///   one): a delimiter that is not one ASCII character other than a quote or a line
  ///   break, no header row, a missing or repeated column, and what ``CSVRecords`` throws;
  ///   what `body` throws.
  static func forEach(
    in file: InputFile, textColumn: String, idColumn: String?, delimiter: Unicode.Scalar,
    _ body: (_ line: Int, _ document: Result<Document, BadRecord>) throws -> Void
  ) throws {
    func fail(_ reason: String) -> VectorDBError {
      .invalidInput(source: file.source, line: nil, reason: reason)
    }
    guard delimiter.isASCII, !"\"\r\n".unicodeScalars.contains(delimiter) else {
      throw fail("the delimiter must be one ASCII character, not a quote or a line break")
    }
    var columns: CSVColumns?
    var record = 0  // records after the header, bad ones too: an id without an id column
    try CSVRecords.forEach(in: file, delimiter: UInt8(delimiter.value)) { line, fields in
      guard let columns else {
        do {
          columns = try CSVColumns(header: fields, text: textColumn, id: idColumn)
        } catch let bad as CSVColumns.Bad {
          throw fail(bad.reason)
        }
        return
      }
      record += 1
      let document: Result<Document, BadRecord>
      do {
        document = .success(try columns.document(fields, record: record))
      } catch let bad as CSVColumns.Bad {
        document = .failure(BadRecord(reason: bad.reason))
      }
      try body(line, document)
    }
    guard columns != nil else { throw fail("no header row") }
  }
}

/// The records of an RFC 4180 input (UTF-8, fields split by one ASCII delimiter, records
/// by LF, CRLF or CR), read a chunk at a time: memory holds a chunk and one record.
///
/// A field is quoted when its first character is `"`; inside it `""` is one quote, and the
/// delimiter and line breaks are text. A quote elsewhere in an unquoted field (`12" pizza`)
/// is text. Quoting that other readers would take silently otherwise is an error: a quoted
/// field never closed (it would swallow the rest of the file), text after a field's closing
/// quote (`"ab"c`, `"ab" `).
enum CSVRecords {
  /// The longest record: without a bound, a quoted field never closed would be gathered
  /// until memory runs out before its end could say so.
  static let maxRecordLength = 256 << 20
  /// The most fields a record may have (a spreadsheet has at most 16,384 columns): each
  /// costs memory though it holds no byte.
  static let maxFields = 1 << 16

  /// Calls `body` with each record that is not a blank line: the line it starts on (from
  /// 1) and its fields. A UTF-8 byte order mark at the start is skipped.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `file` and the line: a quoted field
  ///   never closed, text after a closing quote, a field that is not UTF-8, a record longer
  ///   than ``maxRecordLength`` or of more than ``maxFields`` fields, a file in UTF-16;
  ///   what `InputFile.forEachChunk` and `body` throw.
  static func forEach(
    in file: InputFile, delimiter: UInt8, maxRecordLength: Int = maxRecordLength,
    _ body: (_ line: Int, _ fields: [String]) throws -> Void
  ) throws {
    let start = try file.bytes(at: 0, count: min(3, file.size))
    if let problem = TextFile.utf16Problem(start) {
      throw VectorDBError.invalidInput(source: file.source, line: nil, reason: problem)
    }
    var reader = Reader(delimiter: delimiter, source: file.source, maxRecordLength: maxRecordLength)
    var skip = start == TextFile.utf8ByteOrderMark ? start.count : 0
    try file.forEachChunk { chunk in
      let skipped = min(skip, chunk.count)
      skip -= skipped
      try reader.read(chunk[skipped...], body)
    }
    try reader.finish(body)
  }

  /// The state of a record being read.
  private struct Reader {
    enum State { case fieldStart, unquoted, quoted, afterQuote }

    let delimiter: UInt8
    let source: String
    let maxRecordLength: Int
    var state = State.fieldStart
    /// The record's fields so far, unquoted, one after another; `ends` where each ends.
    var bytes: [UInt8] = []
    var ends: [Int] = []
    /// Whether the record has anything: a blank line is no record.
    var started = false
    /// The line the next byte is on, the line the record starts on, and the line its open
    /// quoted field opened on.
    var line = 1
    var recordLine = 1
    var quoteLine = 1
    var previous: UInt8 = 0

    init(delimiter: UInt8, source: String, maxRecordLength: Int) {
      self.delimiter = delimiter
      self.source = source
      self.maxRecordLength = maxRecordLength
    }

    mutating func read(
      _ chunk: Slice<UnsafeRawBufferPointer>, _ body: (Int, [String]) throws -> Void
    ) throws {
      let (quote, lf, cr) = (UInt8(ascii: "\""), UInt8(ascii: "\n"), UInt8(ascii: "\r"))
      for byte in chunk {
        defer { previous = byte }
        // A line ends at LF, CR or CRLF; the LF of a CRLF does not end another.
        let endsLine = byte == cr || (byte == lf && previous != cr)
        switch state {
        case .quoted:
          if byte == quote {
            state = .afterQuote
          } else {
            bytes.append(byte)
            if endsLine { line += 1 }
          }
          continue
        case .afterQuote where byte == quote:  // "" in a quoted field: one quote
          bytes.append(quote)
          state = .quoted
          continue
        case .afterQuote where byte != delimiter && byte != lf && byte != cr:
          throw VectorDBError.invalidInput(
            source: source, line: line,
            reason:
              "text after the closing quote of a field (a quote inside a quoted field is written twice: \"\")"
          )
        default: break
        }
        if byte == delimiter {
          guard ends.count < CSVRecords.maxFields - 1 else {
            throw VectorDBError.invalidInput(
              source: source, line: line,
              reason: "a record of more than \(CSVRecords.maxFields) fields")
          }
          ends.append(bytes.count)
          started = true
          state = .fieldStart
        } else if byte == lf || byte == cr {
          if endsLine {
            try endRecord(body)
            line += 1
            recordLine = line
          }
        } else if state == .fieldStart && byte == quote {
          started = true
          quoteLine = line
          state = .quoted
        } else {
          bytes.append(byte)
          started = true
          state = .unquoted
        }
      }
      guard bytes.count <= maxRecordLength else {
        throw VectorDBError.invalidInput(
          source: source, line: recordLine,
          reason: "a record longer than "
            + (maxRecordLength >= 1 << 20
              ? "\(maxRecordLength >> 20) MiB" : "\(maxRecordLength) bytes")
            + (state == .quoted
              ? " (its quoted field that opens on line \(quoteLine) is open)" : ""))
      }
    }

    /// Passes on the last record, which no line break ends.
    mutating func finish(_ body: (Int, [String]) throws -> Void) throws {
      guard state != .quoted else {
        throw VectorDBError.invalidInput(
          source: source, line: quoteLine,
          reason: "the quoted field that opens on this line is never closed")
      }
      try endRecord(body)
    }

    private mutating func endRecord(_ body: (Int, [String]) throws -> Void) throws {
      defer {
        bytes.removeAll(keepingCapacity: bytes.count < 1 << 20)
        ends.removeAll(keepingCapacity: true)
        started = false
        state = .fieldStart
      }
      guard started else { return }
      ends.append(bytes.count)
      var fields: [String] = []
      fields.reserveCapacity(ends.count)
      var start = 0
      for end in ends {
        guard let field = String(validating: bytes[start..<end], as: UTF8.self) else {
          // The fields before are UTF-8: the first bad byte from the record's start is
          // this field's. Lines are counted by LF, as a text editor shows them.
          let lines = TextFile.firstInvalidUTF8(bytes[..<end]).line
          throw VectorDBError.invalidInput(
            source: source, line: recordLine + lines - 1,
            reason: "invalid UTF-8 in field \(fields.count + 1) of the record")
        }
        fields.append(field)
        start = end
      }
      try body(recordLine, fields)
    }
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
