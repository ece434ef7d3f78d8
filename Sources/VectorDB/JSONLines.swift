import Foundation

/// Reading JSON Lines: line splitting, UTF-8 and field validation with positions.
enum JSONLines {
  /// Calls `body` with each non-blank line (1-based number, bytes without the line
  /// end; CRLF tolerated). A UTF-8 byte order mark at the start is skipped: Windows
  /// editors write one, and RFC 8259 lets a parser ignore it.
  static func forEach(in data: Data, _ body: (Int, UnsafeRawBufferPointer) throws -> Void) throws {
    try data.withUnsafeBytes { (all: UnsafeRawBufferPointer) in
      var lineNumber = 0
      try forEachLine(in: all, atStart: true, numberedAfter: &lineNumber, body)
    }
  }

  /// The longest line read from a file a chunk at a time (256 MiB). Without a bound, a
  /// file with no line end (a disk image, a sparse file) would be gathered as one line
  /// until memory runs out; a document's text is embedded from its first few hundred
  /// tokens, and a vector of 65,536 floats is a few MiB of JSON.
  static let maxLineLength = 256 << 20

  /// Calls `body` with each non-blank line of `file`, as `forEach(in: Data)` does, reading
  /// a chunk at a time: memory holds a chunk and the line it cuts, not the file.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file and line for a line longer
  ///   than ``maxLineLength``; what `InputFile.forEachChunk` and `body` throw.
  static func forEach(in file: InputFile, _ body: (Int, UnsafeRawBufferPointer) throws -> Void)
    throws
  {
    var pending: [UInt8] = []  // the start of a line a chunk's end cut
    var atStart = true
    var lineNumber = 0
    func passOn(_ lines: UnsafeRawBufferPointer) throws {
      try forEachLine(in: lines, atStart: atStart, numberedAfter: &lineNumber, body)
      atStart = false
    }
    let lineEnd = UInt8(ascii: "\n")
    try file.forEachChunk { chunk in
      guard let lastEnd = chunk.lastIndex(of: lineEnd) else {
        pending.append(contentsOf: chunk)
        guard pending.count <= maxLineLength else {
          throw VectorDBError.invalidInput(
            source: file.source, line: lineNumber + 1,
            reason: "a line longer than \(maxLineLength >> 20) MiB: is this JSON Lines?")
        }
        return
      }
      // The chunk's whole lines are passed on where they lie; only a cut line is copied.
      var whole = 0..<(lastEnd + 1)
      if !pending.isEmpty, let firstEnd = chunk.firstIndex(of: lineEnd) {
        pending.append(contentsOf: chunk[...firstEnd])
        try pending.withUnsafeBytes { try passOn($0) }
        pending.removeAll(keepingCapacity: true)
        whole = (firstEnd + 1)..<(lastEnd + 1)
      }
      try passOn(UnsafeRawBufferPointer(rebasing: chunk[whole]))
      pending.append(contentsOf: chunk[(lastEnd + 1)...])
    }
    try pending.withUnsafeBytes { try passOn($0) }
  }

  /// Calls `body` with each non-blank line of `bytes`, numbering them from `lineNumber` + 1
  /// (and leaving it at the last line's number); a byte order mark is skipped `atStart`.
  private static func forEachLine(
    in bytes: UnsafeRawBufferPointer, atStart: Bool, numberedAfter lineNumber: inout Int,
    _ body: (Int, UnsafeRawBufferPointer) throws -> Void
  ) throws {
    let mark = TextFile.utf8ByteOrderMark
    var lineStart = atStart && bytes.starts(with: mark) ? mark.count : 0
    while lineStart < bytes.count {
      lineNumber += 1
      var lineEnd = lineStart
      while lineEnd < bytes.count && bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
      var contentEnd = lineEnd
      if contentEnd > lineStart && bytes[contentEnd - 1] == UInt8(ascii: "\r") { contentEnd -= 1 }
      let line = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<contentEnd])
      if line.contains(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }) {
        try body(lineNumber, line)
      }
      lineStart = lineEnd + 1
    }
  }

  /// The text of one line, or an error naming it and the character ("invalid UTF-8 at
  /// character 10"; on the first line of a UTF-16 file, saying so).
  static func text(of bytes: UnsafeRawBufferPointer, source: String, line: Int) throws -> String {
    if let text = String(validating: bytes, as: UTF8.self) { return text }
    if line == 1, let utf16 = TextFile.utf16Problem(bytes) {
      throw VectorDBError.invalidInput(
        source: source, line: line, reason: "invalid UTF-8: " + utf16)
    }
    throw VectorDBError.invalidInput(
      source: source, line: line,
      reason: "invalid UTF-8 at character \(TextFile.firstInvalidUTF8(bytes).column)")
  }

  /// Parses one line into a JSON object.
  static func object(from bytes: UnsafeRawBufferPointer, source: String, line: Int) throws
    -> [String: JSONValue]
  {
    let text = try text(of: bytes, source: source, line: line)
    guard case .object(let object) = try JSONValue(parsing: text, source: source, line: line) else {
      throw VectorDBError.invalidInput(source: source, line: line, reason: "expected a JSON object")
    }
    return object
  }

  /// Refuses a field of `object` that is not one of `known`: in a file whose lines have a
  /// fixed set of fields, a misspelt one (`"outcom"`, `"negatives"`) would otherwise be
  /// dropped without a word.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the field, `source` and `line`.
  static func checkFields(
    _ object: [String: JSONValue], known: [String], source: String, line: Int
  ) throws {
    // The smallest unknown key, so the message does not depend on hash order; a line with
    // none (every good line) sorts nothing.
    guard let unknown = object.keys.filter({ !known.contains($0) }).min() else { return }
    throw VectorDBError.invalidInput(
      source: source, line: line,
      reason: "unknown field \"\(unknown)\" (the fields are "
        + known.map { "\"\($0)\"" }.joined(separator: ", ") + ")")
  }

  /// The top-level fields of a documents line that are not metadata.
  static let documentFields: Set<String> = ["_id", "id", "text", "title", "metadata", "vector"]

  /// Parses one line of a documents file (see `DocumentCollection.importJSONL`).
  static func document(from bytes: UnsafeRawBufferPointer, source: String, line: Int) throws
    -> Document
  {
    try documentAndVector(from: bytes, source: source, line: line).document
  }

  /// Parses one line of a documents file and its `vector`, if it has one.
  static func documentAndVector(from bytes: UnsafeRawBufferPointer, source: String, line: Int)
    throws -> (document: Document, vector: [Float]?)
  {
    let object = try object(from: bytes, source: source, line: line)
    func fail(_ reason: String) -> VectorDBError {
      .invalidInput(source: source, line: line, reason: reason)
    }
    var vector: [Float]?
    switch object["vector"] {
    case nil, .null: break
    case .array(let elements):
      vector = try elements.map {
        guard case .number(let number) = $0 else {
          throw fail("field \"vector\" must be an array of numbers")
        }
        return Float(number)
      }
    default: throw fail("field \"vector\" must be an array of numbers")
    }
    if object["_id"] != nil, object["id"] != nil {
      throw fail("fields \"_id\" and \"id\" are both given: the id is one of them")
    }
    let id: String
    switch object["_id"] ?? object["id"] {
    case .string(let string): id = string
    case .number(let number) where number.rounded() == number && abs(number) <= 0x20_0000_0000_0000:
      id = String(Int64(number))
    case nil: throw fail("missing field \"_id\" (or \"id\")")
    default: throw fail("field \"\(object["_id"] != nil ? "_id" : "id")\" must be a string")
    }
    // A line with its vector may leave the text out (as `import --vectors` and the
    // server do); without one, the text is what gets embedded.
    let body: String
    switch object["text"] {
    case .string(let string): body = string
    case nil where vector != nil, .null where vector != nil: body = ""
    case nil: throw fail("missing field \"text\"")
    default: throw fail("field \"text\" must be a string")
    }
    var title = ""
    switch object["title"] {
    case nil, .null: break
    case .string(let string): title = string.trimmingCharacters(in: .whitespacesAndNewlines)
    default: throw fail("field \"title\" must be a string")
    }
    var metadata: [String: JSONValue] = [:]
    switch object["metadata"] {
    case nil, .null: break
    case .object(let object): metadata = object
    default: throw fail("field \"metadata\" must be a JSON object")
    }
    // Other top-level fields are metadata too (never dropped); one that is also in
    // "metadata" is ambiguous.
    for (key, value) in object where !JSONLines.documentFields.contains(key) {
      guard metadata[key] == nil else {
        throw fail("field \"\(key)\" is both a top-level field and in \"metadata\"")
      }
      metadata[key] = value
    }
    // The text is kept as given (an export imports back byte for byte); only a title
    // is trimmed, to join it to the text with one space.
    let text = body
    let document = Document(
      id: id, text: title.isEmpty ? text : title + " " + text, metadata: metadata)
    do {
      try document.validate()
    } catch let error as VectorDBError {
      if case .invalidDocument(_, let reason) = error { throw fail(reason) }
      throw error
    }
    return (document, vector)
  }
}
