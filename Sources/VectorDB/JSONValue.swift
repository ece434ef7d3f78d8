import JSON

@_exported import enum JSON.JSONValue

extension JSONValue {
  /// Parses JSON text (any value, not only objects), with the checks of
  /// ``JSONValue/init(utf8:maxDepth:)``: nothing deeper than ``JSONValue/maxDepth``, no
  /// repeated key, no number a `Double` would change.
  ///
  /// ```swift
  /// let metadata = try JSONValue(parsing: #"{"year": 2024}"#, source: "--meta")
  /// ```
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `source` and `line`, with the byte
  ///   offset of the problem in `text`.
  public init(parsing text: some StringProtocol, source: String = "JSON", line: Int? = nil) throws {
    try self.init(parsing: text.utf8, source: source, line: line)
  }

  /// Parses JSON from UTF-8 bytes (a request body, a file) without making a `String` of
  /// them first; a string in it that is not UTF-8 is refused, not repaired.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `source` and `line`, as for text.
  public init(parsing bytes: some Collection<UInt8>, source: String = "JSON", line: Int? = nil)
    throws
  {
    do {
      self = try JSONValue(utf8: bytes)
    } catch {
      throw VectorDBError.invalidJSON(error, source: source, line: line)
    }
  }
}

extension VectorDBError {
  /// A JSON text's problem as vdb reports it: `SOURCE:LINE: invalid JSON at byte N: …`.
  package static func invalidJSON(_ error: JSONParseError, source: String, line: Int? = nil)
    -> VectorDBError
  {
    .invalidInput(
      source: source, line: line, reason: "invalid JSON at byte \(error.offset): \(error.problem)")
  }
}
