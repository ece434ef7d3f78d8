import Foundation

/// Whole input files read as UTF-8 text (queries, CSV), with an error that says where
/// they are not.
public enum TextFile {
  /// `data` as a String; a leading byte order mark is kept.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `source` and the line of the first byte
  ///   that is not UTF-8, or saying that the file is UTF-16 (a byte order mark of UTF-16).
  public static func utf8(_ data: Data, source: String) throws -> String {
    if let text = String(validating: data, as: UTF8.self) { return text }
    if data.starts(with: [0xFF, 0xFE]) || data.starts(with: [0xFE, 0xFF]) {
      throw VectorDBError.invalidInput(
        source: source, line: nil, reason: "the file is UTF-16 text (save it as UTF-8)")
    }
    var bytes = data.makeIterator()
    var parser = Unicode.UTF8.ForwardParser()
    var line = 1
    var column = 1
    while case .valid(let scalar) = parser.parseScalar(from: &bytes) {
      if scalar.count == 1 && scalar.first == UInt8(ascii: "\n") {
        line += 1
        column = 1
      } else {
        column += 1
      }
    }
    throw VectorDBError.invalidInput(
      source: source, line: line, reason: "invalid UTF-8 at character \(column)")
  }
}
