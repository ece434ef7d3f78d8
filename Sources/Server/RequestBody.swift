import Foundation
import Hummingbird
import JSON
import NIOCore
import VectorDB

/// A request's JSON object body, read field by field: each accessor checks the type and
/// names the field in its error, and `check` refuses fields the endpoint does not know
/// (a misspelt `fitler` would otherwise be silently ignored).
struct RequestBody {
  let fields: [String: JSONValue]

  /// Reads the body (at most `limit` bytes) and parses it as a JSON object; an empty
  /// body is an empty object.
  ///
  /// - Throws: `APIError` 413 over the limit, 400 for a body the HTTP framing cannot
  ///   deliver (shorter than its Content-Length, bad chunks) or text that is not a JSON
  ///   object.
  static func read(_ request: Request, limit: Int) async throws -> RequestBody {
    try await parse(request, limit: limit, empty: ()) { (reader) throws(JSONParseError) in
      (try reader.value(), ())
    }.body
  }

  /// An upsert's body, `{"documents": [{"id": …, "vector": [numbers], …}, …]}`, read as
  /// `read` does except that each document's `vector`, when it is an array of numbers, is
  /// read straight into `Float`s: a number costs 4 bytes instead of a 24-byte
  /// `JSONValue` (the body's 12,000 vectors of 384 numbers: 18 MB, not 110). Anything else
  /// is read as a `JSONValue`, so the checks on the fields and their errors are `read`'s.
  ///
  /// - Returns: the body, without the vectors read into floats, and those vectors by the
  ///   index of their document.
  static func readDocuments(_ request: Request, limit: Int) async throws -> (
    RequestBody, [Int: [Float]]
  ) {
    try await parse(request, limit: limit, empty: [:], readDocuments)
  }

  /// `readDocuments`'s reading of a body.
  @Sendable private static func readDocuments(_ reader: inout JSONReader) throws(JSONParseError)
    -> (JSONValue, [Int: [Float]])
  {
    var vectors: [Int: [Float]] = [:]
    var documents: [JSONValue] = []
    func document(_ reader: inout JSONReader) throws(JSONParseError) {
      var fields: [String: JSONValue] = [:]
      let isObject = try reader.members { (reader, key) throws(JSONParseError) in
        if key == "vector", let vector = try reader.floats() {
          vectors[documents.count] = vector
        } else {
          fields[key] = try reader.value()
        }
      }
      documents.append(isObject ? .object(fields) : try reader.value())
    }
    var fields: [String: JSONValue] = [:]
    let isObject = try reader.members { (reader, key) throws(JSONParseError) in
      if key == "documents", try reader.elements(document) {
        fields[key] = .array(documents)
      } else {
        fields[key] = try reader.value()
      }
    }
    return (isObject ? .object(fields) : try reader.value(), vectors)
  }

  /// The body's bytes, at most `limit`, parsed by `parse` on the thread pool, which
  /// returns the body's value (it must be a JSON object) and what else it read; an empty
  /// body is an empty object, and `empty` the rest.
  private static func parse<Extra: Sendable>(
    _ request: Request, limit: Int, empty: Extra,
    _ parse: @escaping @Sendable (inout JSONReader) throws(JSONParseError) -> (JSONValue, Extra)
  ) async throws -> (body: RequestBody, extra: Extra) {
    let buffer: ByteBuffer
    do {
      buffer = try await request.body.collect(upTo: limit)
    } catch let error where error is NIOTooManyBytesError || error is CancellationError {
      throw error
    } catch {
      // Anything else comes from NIO's HTTP parser reading the body: the client's
      // framing, not the server, is at fault.
      throw APIError.badRequest(
        "the request body is malformed: it ends before its Content-Length, or its chunked"
          + " encoding or Transfer-Encoding is invalid",
        code: "invalid_request")
    }
    guard buffer.readableBytes > 0 else { return (RequestBody(fields: [:]), empty) }
    // Parsed from the bytes (no String copy of a large body) on the thread pool: a body
    // of many megabytes takes a while. Strings that are not UTF-8 are refused, not repaired.
    let (value, extra) = try await blocking { () throws -> (JSONValue, Extra) in
      do throws(JSONParseError) {
        return try JSONReader.read(utf8: buffer.readableBytesView, parse)
      } catch {
        throw APIError.badRequest(
          VectorDBError.invalidJSON(error, source: "request body").description,
          code: "invalid_json")
      }
    }
    guard case .object(let fields) = value else {
      throw APIError.badRequest("the request body must be a JSON object", code: "invalid_json")
    }
    return (RequestBody(fields: fields), extra)
  }

  /// - Throws: 400 naming the first field not in `known`.
  func check(_ known: Set<String>) throws {
    if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
      let fields = known.isEmpty ? "none" : known.sorted().joined(separator: ", ")
      throw APIError.badRequest("request body: unknown field \"\(unknown)\" (known: \(fields))")
    }
  }

  private func wrong(_ key: String, _ expected: String) -> APIError {
    .badRequest("request body: field \"\(key)\" must be \(expected)")
  }

  /// The field, absent and `null` alike giving nil.
  func value(_ key: String) -> JSONValue? {
    guard let value = fields[key], value != .null else { return nil }
    return value
  }

  func required<T>(_ key: String, _ read: (String) throws -> T?) throws -> T {
    guard let value = try read(key) else {
      throw APIError.badRequest("request body: field \"\(key)\" is required")
    }
    return value
  }

  func string(_ key: String) throws -> String? {
    guard let value = value(key) else { return nil }
    guard case .string(let string) = value else { throw wrong(key, "a string") }
    return string
  }

  /// The training field `matmul_precision`: "float32" or "bfloat16".
  func matmulPrecision() throws -> MatmulPrecision? {
    guard let name = try string("matmul_precision") else { return nil }
    guard let precision = MatmulPrecision(rawValue: name) else {
      throw wrong("matmul_precision", "\"float32\" or \"bfloat16\"")
    }
    return precision
  }

  func int(_ key: String) throws -> Int? {
    guard let number = try integer(key) else { return nil }
    guard abs(number) < 1e15 else { throw wrong(key, "within ±10^15 (got \(number))") }
    return Int(number)
  }

  /// The field as a whole number, not yet range-checked (`1e300` is one).
  private func integer(_ key: String) throws -> Double? {
    guard let value = value(key) else { return nil }
    guard case .number(let number) = value, number.rounded() == number, number.isFinite else {
      throw wrong(key, "an integer")
    }
    return number
  }

  func double(_ key: String) throws -> Double? {
    guard let value = value(key) else { return nil }
    guard case .number(let number) = value else { throw wrong(key, "a number") }
    return number
  }

  func bool(_ key: String) throws -> Bool? {
    guard let value = value(key) else { return nil }
    guard case .bool(let bool) = value else { throw wrong(key, "true or false") }
    return bool
  }

  func object(_ key: String) throws -> [String: JSONValue]? {
    guard let value = value(key) else { return nil }
    guard case .object(let object) = value else { throw wrong(key, "a JSON object") }
    return object
  }

  func strings(_ key: String) throws -> [String]? {
    guard let value = value(key) else { return nil }
    guard case .array(let array) = value else { throw wrong(key, "an array of strings") }
    return try array.map {
      guard case .string(let string) = $0 else { throw wrong(key, "an array of strings") }
      return string
    }
  }

  func vector(_ key: String) throws -> [Float]? {
    guard let value = value(key) else { return nil }
    return try RequestBody.vector(value) ?? { throw wrong(key, "an array of numbers") }()
  }

  static func vector(_ value: JSONValue) -> [Float]? {
    guard case .array(let array) = value else { return nil }
    var vector: [Float] = []
    vector.reserveCapacity(array.count)
    for element in array {
      guard case .number(let number) = element else { return nil }
      vector.append(Float(number))
    }
    return vector
  }

  /// A metadata filter (docs/search.md), given as a JSON object.
  func filter(_ key: String = "filter") throws -> Filter? {
    guard let value = value(key) else { return nil }
    return try Filter(value: value)
  }

  /// `mode`, `fusion` and `alpha`: how a text query searches (as the shell's options).
  /// `mode`, `fusion`, `alpha`; a nil fusion is the collection's serving one (the alpha
  /// `vdb train --tier fusion` fitted, else convex 0.5), as in the shell.
  func searchMode() throws -> (mode: SearchMode?, fusion: Fusion?) {
    let mode = try string("mode").map { name in
      try SearchMode(rawValue: name)
        ?? { throw wrong("mode", "\"dense\", \"keyword\" or \"hybrid\"") }()
    }
    let alpha = try double("alpha")
    switch try string("fusion") ?? "convex" {
    case "convex":
      if let alpha, !(0...1).contains(alpha) { throw wrong("alpha", "within [0, 1]") }
      return (mode, alpha.map { .convex(alpha: $0) })
    case "rrf":
      if alpha != nil {
        throw APIError.badRequest(
          "request body: \"alpha\" goes with fusion \"convex\", not \"rrf\"")
      }
      return (mode, .reciprocalRank)
    default: throw wrong("fusion", "\"convex\" or \"rrf\"")
    }
  }

  /// A count (k, ef, epochs, …) within the range `CountLimits` gives the shell's
  /// option of the same name (`k` is `-k`, `batch_size` is `--batch-size`), or gives
  /// `option` for a field named otherwise.
  func count(_ key: String, command: String? = nil, option: String? = nil) throws -> Int? {
    let option =
      option ?? (key.count == 1 ? "-" + key : "--" + key.replacingOccurrences(of: "_", with: "-"))
    guard let range = CountLimits.range(option, command: command) else {
      // A field without a range is this server's mistake: a 500 for the request, never a
      // trap of the server.
      throw APIError(
        status: .internalServerError, code: "internal", message: "no range for \(option)")
    }
    guard let number = try integer(key) else { return nil }
    // Compared as a Double: a number past Int's range is out of range, not a trap.
    guard Double(range.lowerBound) <= number, number <= Double(range.upperBound) else {
      let given = Int(exactly: number).map(String.init) ?? "\(number)"
      throw APIError.badRequest(
        "request body: field \"\(key)\" must be within \(range.lowerBound)...\(range.upperBound) (got \(given))"
      )
    }
    return Int(number)
  }
}

extension Request {
  /// The URI's query parameter `key`, when given.
  func parameter(_ key: String) -> String? {
    uri.queryParameters.get(key)
  }

  /// A boolean query parameter: `true`/`1` or `false`/`0`.
  func flag(_ key: String) throws -> Bool {
    switch parameter(key) {
    case nil, "false", "0": return false
    case "true", "1", "": return true
    case let other?:
      throw APIError.badRequest("query parameter \"\(key)\" must be true or false (got \(other))")
    }
  }
}
