import Foundation
import JSON

/// libFuzzer entry: one JSON Lines documents file (`Collection.importJSONL`'s parser).
/// Each line is also read piece by piece, as the server reads an upsert (`JSONReader`'s
/// `members`, `elements` and `floats`, every `vector` array of numbers as floats): it
/// must fail with the same error as the whole-value reader, or give the same values.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  try? JSONLines.forEach(in: Data(bytes: data, count: size)) { line, bytes in
    _ = try? JSONLines.document(from: bytes, source: "fuzz", line: line)
    let whole = Result { () throws(JSONParseError) in try JSONValue(utf8: bytes) }
    let pieces = Result { () throws(JSONParseError) in
      try JSONReader.read(utf8: bytes) { (reader) throws(JSONParseError) in
        try piecewise(&reader)
      }
    }
    switch (whole, pieces) {
    case (.success(let value), .success(let read)):
      precondition(floatVectors(value) == read, "read piece by piece, the values differ")
    case (.failure(let error), .failure(let failure)):
      precondition(error == failure, "read piece by piece, \(failure) instead of \(error)")
    default:
      preconditionFailure("one reading failed and the other did not")
    }
  }
  return 0
}

/// The next value, objects and arrays piece by piece, a `vector` member's array of
/// numbers as floats (returned as the doubles of those floats).
private func piecewise(_ reader: inout JSONReader) throws(JSONParseError) -> JSONValue {
  var members: [String: JSONValue] = [:]
  if try reader.members({ (reader, key) throws(JSONParseError) in
    if key == "vector", let floats = try reader.floats() {
      members[key] = .array(floats.map { .number(Double($0)) })
    } else {
      members[key] = try piecewise(&reader)
    }
  }) {
    return .object(members)
  }
  var elements: [JSONValue] = []
  if try reader.elements({ (reader) throws(JSONParseError) in
    elements.append(try piecewise(&reader))
  }) {
    return .array(elements)
  }
  return try reader.value()
}

/// `value` with each `vector` member's array of numbers rounded to floats.
private func floatVectors(_ value: JSONValue) -> JSONValue {
  switch value {
  case .object(let members):
    var rounded: [String: JSONValue] = [:]
    for (key, member) in members {
      if key == "vector", case .array(let elements) = member, let numbers = numbers(elements) {
        rounded[key] = .array(numbers.map { .number(Double(Float($0))) })
      } else {
        rounded[key] = floatVectors(member)
      }
    }
    return .object(rounded)
  case .array(let elements): return .array(elements.map(floatVectors))
  default: return value
  }
}

private func numbers(_ elements: [JSONValue]) -> [Double]? {
  var numbers: [Double] = []
  for element in elements {
    guard case .number(let number) = element else { return nil }
    numbers.append(number)
  }
  return numbers
}
