import Foundation

/// vdb's one JSON convention (the shell's `--json`, `vdb serve`) as an `Encoder`: any `Encodable` becomes a `JSONValue` with
/// keys in snake_case (the keys of dictionaries, such as metadata, stay as they are),
/// dates in ISO 8601, and an absent optional written as `null` — where `JSONEncoder`
/// leaves the key out, so that every documented key is always there.
///
/// A type that leaves a key out on purpose (a field not asked for) does not encode it.
public enum JSONOutput {
  /// `value` as JSON text in the convention: keys sorted; one line unless `pretty`.
  ///
  /// - Throws: `EncodingError.invalidValue` for a NaN or infinite number.
  public static func data(_ value: some Encodable, pretty: Bool = false) throws -> Data {
    let encoder = JSONEncoder.sorted
    if pretty { encoder.outputFormatting.insert(.prettyPrinted) }
    return try encoder.encode(tree(value))
  }

  /// `value` as the JSON tree `--json` prints.
  ///
  /// - Throws: `EncodingError.invalidValue` for a NaN or infinite number.
  public static func tree(_ value: some Encodable) throws -> JSONValue {
    let node = Node()
    try node.set(value, codingPath: [])
    return node.json
  }

  /// `key` in snake_case: a `_` before each word's capital (`logID` → `log_id`,
  /// `heldoutBefore` → `heldout_before`, `URLPath` → `url_path`), all lowercased.
  static func snakeCase(_ key: String) -> String {
    let characters = Array(key)
    var result = ""
    for (index, character) in characters.enumerated() {
      if character.isUppercase && index > 0 {
        let previous = characters[index - 1]
        let next = index + 1 < characters.count ? characters[index + 1] : nil
        if previous.isLowercase || previous.isNumber
          || (previous.isUppercase && next?.isLowercase == true)
        {
          result.append("_")
        }
      }
      result += character.lowercased()
    }
    return result
  }
}

/// A value being built: a scalar, or an array or object whose members are built in
/// turn (containers hand out child nodes and fill them later).
private final class Node {
  private enum Kind {
    case scalar, array, object
  }
  // Kept apart, not as an enum's payloads: a payload taken out to be changed is a second
  // reference, so each new member copied the whole object (quadratic in its keys).
  private var kind = Kind.scalar
  private var scalar = JSONValue.null
  private var elements: [Node] = []
  private var members: [String: Node] = [:]

  var json: JSONValue {
    switch kind {
    case .scalar: return scalar
    case .array: return .array(elements.map(\.json))
    case .object: return .object(members.mapValues(\.json))
    }
  }

  func setScalar(_ value: JSONValue) {
    (kind, scalar, elements, members) = (.scalar, value, [], [:])
  }

  /// The child at `key`, created (with this node made an object) when missing.
  func child(_ key: String) -> Node {
    makeObject()
    if let node = members[key] { return node }
    let node = Node()
    members[key] = node
    return node
  }

  /// A new last element (this node made an array when it is not one).
  func append() -> Node {
    makeArray()
    let node = Node()
    elements.append(node)
    return node
  }

  var count: Int { kind == .array ? elements.count : 0 }

  func makeObject() {
    if kind != .object { (kind, scalar, elements, members) = (.object, .null, [], [:]) }
  }
  func makeArray() {
    if kind != .array { (kind, scalar, elements, members) = (.array, .null, [], [:]) }
  }

  /// Encodes `value` here: the types `JSONEncoder` treats specially first.
  func set(_ value: any Encodable, codingPath: [CodingKey]) throws {
    // The common leaves first: casts to protocols (BinaryInteger, dictionaries of
    // Encodable) are the slow ones.
    switch value {
    case let float as Float:
      try setScalar(Node.number(float, codingPath))
    case let floats as [Float]:
      // A vector: one node, not one per component.
      setScalar(.array(try floats.map { try Node.number($0, codingPath) }))
    case let string as String:
      setScalar(.string(string))
    case let double as Double:
      try setScalar(Node.number(double, codingPath))
    case let bool as Bool:
      setScalar(.bool(bool))
    case let json as JSONValue:
      setScalar(json)
    case let date as Date:
      setScalar(.string(Node.dateFormatter.string(from: date)))
    case let integer as any BinaryInteger:
      setScalar(.number(Double(integer)))
    case let dictionary as [String: any Encodable]:
      makeObject()
      for (key, member) in dictionary {
        try child(key).set(member, codingPath: codingPath + [AnyKey(key)])
      }
    default:
      try value.encode(to: TreeEncoder(node: self, codingPath: codingPath))
    }
  }

  private static let dateFormatter = ISO8601DateFormatter()

  /// A finite number as JSON; a Float through its shortest decimal, so 0.1 prints
  /// as 0.1, not as the Double 0.100000001….
  private static func number<F: BinaryFloatingPoint & LosslessStringConvertible>(
    _ value: F, _ codingPath: [CodingKey]
  ) throws -> JSONValue {
    guard value.isFinite else {
      throw EncodingError.invalidValue(
        value, .init(codingPath: codingPath, debugDescription: "\(value) is not a JSON number"))
    }
    return .number(
      F.self == Double.self ? Double(value) : Double(value.description) ?? Double(value))
  }

}

private struct AnyKey: CodingKey {
  var stringValue: String
  var intValue: Int?
  init(_ string: String) { stringValue = string }
  init?(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) {
    stringValue = String(intValue)
    self.intValue = intValue
  }
}

private struct TreeEncoder: Encoder {
  let node: Node
  let codingPath: [CodingKey]
  var userInfo: [CodingUserInfoKey: Any] { [:] }

  func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
    node.makeObject()
    return KeyedEncodingContainer(Keyed<Key>(node: node, codingPath: codingPath))
  }

  func unkeyedContainer() -> UnkeyedEncodingContainer {
    node.makeArray()
    return Unkeyed(node: node, codingPath: codingPath)
  }

  func singleValueContainer() -> SingleValueEncodingContainer {
    Single(node: node, codingPath: codingPath)
  }
}

private struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
  let node: Node
  let codingPath: [CodingKey]

  private func child(_ key: Key) -> Node { node.child(JSONOutput.snakeCase(key.stringValue)) }

  mutating func encodeNil(forKey key: Key) throws { child(key).setScalar(.null) }
  mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
    try child(key).set(value, codingPath: codingPath + [key])
  }
  // The point of this encoder: an absent optional is `null`, not a missing key.
  mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
    if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
  }
  mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { try put(value, key) }
  mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { try put(value, key) }
  mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { try put(value, key) }
  mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { try put(value, key) }
  mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { try put(value, key) }
  mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { try put(value, key) }
  mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { try put(value, key) }
  mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { try put(value, key) }
  mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { try put(value, key) }
  mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { try put(value, key) }
  mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { try put(value, key) }
  mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { try put(value, key) }
  mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { try put(value, key) }
  mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { try put(value, key) }
  private mutating func put<T: Encodable>(_ value: T?, _ key: Key) throws {
    try encodeIfPresent(value, forKey: key)
  }

  mutating func nestedContainer<NestedKey: CodingKey>(
    keyedBy keyType: NestedKey.Type, forKey key: Key
  ) -> KeyedEncodingContainer<NestedKey> {
    let child = child(key)
    child.makeObject()
    return KeyedEncodingContainer(Keyed<NestedKey>(node: child, codingPath: codingPath + [key]))
  }
  mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
    let child = child(key)
    child.makeArray()
    return Unkeyed(node: child, codingPath: codingPath + [key])
  }
  mutating func superEncoder() -> Encoder {
    TreeEncoder(node: node.child("super"), codingPath: codingPath)
  }
  mutating func superEncoder(forKey key: Key) -> Encoder {
    TreeEncoder(node: child(key), codingPath: codingPath + [key])
  }
}

private struct Unkeyed: UnkeyedEncodingContainer {
  let node: Node
  let codingPath: [CodingKey]
  var count: Int { node.count }

  mutating func encodeNil() throws { node.append().setScalar(.null) }
  mutating func encode<T: Encodable>(_ value: T) throws {
    let index = count
    try node.append().set(value, codingPath: codingPath + [AnyKey(intValue: index)!])
  }
  mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
    -> KeyedEncodingContainer<NestedKey>
  {
    let child = node.append()
    child.makeObject()
    return KeyedEncodingContainer(Keyed<NestedKey>(node: child, codingPath: codingPath))
  }
  mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer {
    let child = node.append()
    child.makeArray()
    return Unkeyed(node: child, codingPath: codingPath)
  }
  mutating func superEncoder() -> Encoder {
    TreeEncoder(node: node.append(), codingPath: codingPath)
  }
}

private struct Single: SingleValueEncodingContainer {
  let node: Node
  let codingPath: [CodingKey]

  mutating func encodeNil() throws { node.setScalar(.null) }
  mutating func encode(_ value: Bool) throws { node.setScalar(.bool(value)) }
  mutating func encode(_ value: String) throws { node.setScalar(.string(value)) }
  mutating func encode<T: Encodable>(_ value: T) throws {
    try node.set(value, codingPath: codingPath)
  }
}
