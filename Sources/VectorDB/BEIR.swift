import Foundation

/// Relevance judgements and queries in BEIR's formats.
public enum BEIR {
  /// Reads `queries.jsonl`: `{"_id": "…", "text": "…"}` per line → id → text.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file and line (a missing field,
  ///   a query text that is empty or only white space).
  public static func queries(path: String) throws -> [String: String] {
    let data = try TextFile.contents(path)
    var queries: [String: String] = [:]
    try JSONLines.forEach(in: data) { line, bytes in
      let object = try JSONLines.object(from: bytes, source: path, line: line)
      let id: String
      switch object["_id"] ?? object["id"] {
      case .string(let string): id = string
      case .number(let number)
      where number.rounded() == number && abs(number) <= 0x20_0000_0000_0000:
        id = String(Int64(number))
      default:
        throw VectorDBError.invalidInput(source: path, line: line, reason: "missing field \"_id\"")
      }
      guard case .string(let text) = object["text"] else {
        throw VectorDBError.invalidInput(source: path, line: line, reason: "missing field \"text\"")
      }
      // Refused here, where the line is known: a search would refuse it (as `vdb query`
      // does) without saying which line of which file.
      guard !text.isBlank else {
        throw VectorDBError.invalidInput(
          source: path, line: line, reason: "the query text is empty")
      }
      queries[id] = text
    }
    return queries
  }

  /// Reads a qrels TSV (`query-id`, `corpus-id`, `score`; a header line is optional;
  /// CRLF tolerated) → query id → document id → grade.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file and line of a malformed row.
  public static func qrels(path: String) throws -> [String: [String: Int]] {
    try qrels(TextFile.contents(path), source: path)
  }

  /// Parses the bytes of a qrels TSV; `source` names it in errors.
  static func qrels(_ data: Data, source path: String) throws -> [String: [String: Int]] {
    var qrels: [String: [String: Int]] = [:]
    try forEachRow(of: data, source: path) { _, query, document, grade in
      qrels[query, default: [:]][document] = grade
    }
    return qrels
  }

  /// Calls `body` with each judgement row of a qrels TSV and its line; `source` names
  /// the file in errors.
  static func forEachRow(
    of data: Data, source path: String,
    _ body: (_ line: Int, _ query: String, _ document: String, _ grade: Int) throws -> Void
  ) throws {
    try JSONLines.forEach(in: data) { line, bytes in
      let text = try JSONLines.text(of: bytes, source: path, line: line)
      let fields = text.split(separator: "\t", omittingEmptySubsequences: false).map {
        $0.trimmingCharacters(in: .whitespaces)
      }
      guard fields.count == 3 else {
        throw VectorDBError.invalidInput(
          source: path, line: line,
          reason:
            "expected 3 tab-separated fields (query-id, corpus-id, score), found \(fields.count)")
      }
      for (index, name) in [(0, "query-id"), (1, "corpus-id")] where fields[index].isEmpty {
        throw VectorDBError.invalidInput(source: path, line: line, reason: "the \(name) is empty")
      }
      guard let grade = Int(fields[2]) else {
        if line == 1 { return }  // the header
        throw VectorDBError.invalidInput(
          source: path, line: line, reason: "score \"\(fields[2])\" is not an integer")
      }
      try body(line, fields[0], fields[1], grade)
    }
  }
}
