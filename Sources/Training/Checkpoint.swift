import Foundation
import Tensor

/// The bytes of a training checkpoint: a small JSON header and named float arrays.
///
///     "VDBTRAIN"                      8 bytes, magic
///     UInt32 little-endian            format version (1)
///     UInt32 little-endian            header length H
///     H bytes                         JSON header (the trainer's state and array sizes)
///     Float32 little-endian arrays    in the header's order
///
/// Floats are stored bit for bit, so resuming from a checkpoint continues the run exactly.
struct CheckpointFile<Header: Codable> {
  static var magic: [UInt8] { Array("VDBTRAIN".utf8) }
  static var version: UInt32 { 1 }

  struct Envelope: Codable {
    var header: Header
    /// Names and value counts of the arrays that follow, in order.
    var arrays: [ArrayEntry]
  }

  struct ArrayEntry: Codable {
    var name: String
    var count: Int
  }

  var header: Header
  var arrays: [(name: String, values: [Float])]

  func encoded() throws -> Data {
    let envelope = Envelope(
      header: header, arrays: arrays.map { ArrayEntry(name: $0.name, count: $0.values.count) })
    let json = try JSONEncoder().encode(envelope)
    var data = Data(Self.magic)
    // Sized once: growing by doubling would hold up to twice the weights and moments.
    data.reserveCapacity(16 + json.count + arrays.reduce(0) { $0 + $1.values.count * 4 })
    withUnsafeBytes(of: Self.version.littleEndian) { data.append(contentsOf: $0) }
    withUnsafeBytes(of: UInt32(json.count).littleEndian) { data.append(contentsOf: $0) }
    data.append(json)
    for (_, values) in arrays {
      // Float32 is little-endian on every platform Swift runs vdb on (x86-64, arm64).
      values.withUnsafeBytes { data.append(contentsOf: $0) }
    }
    return data
  }

  /// Just enough of the header to tell an encoder checkpoint from an adapter one.
  private struct KindProbe: Decodable {
    struct Header: Decodable { var kind: String }
    var header: Header
  }

  /// Reads a checkpoint written by `encoded()` whose header says `kind`.
  static func decode(_ data: Data, kind: String) throws(TrainingError) -> CheckpointFile {
    let bytes = [UInt8](data)
    guard bytes.count >= 16, Array(bytes[0..<8]) == magic else {
      throw .badCheckpoint("not a vdb training checkpoint (magic bytes differ)")
    }
    func word(at offset: Int) -> UInt32 {
      UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
        | UInt32(bytes[offset + 3]) << 24
    }
    let version = word(at: 8)
    guard version == Self.version else {
      throw .badCheckpoint("format version \(version); this build reads version \(Self.version)")
    }
    let headerLength = Int(word(at: 12))
    guard 16 + headerLength <= bytes.count else {
      throw .badCheckpoint("truncated: header of \(headerLength) bytes, file of \(bytes.count)")
    }
    let json = Data(bytes[16..<(16 + headerLength)])
    if let probe = try? JSONDecoder().decode(KindProbe.self, from: json), probe.header.kind != kind
    {
      throw .badCheckpoint("a \(probe.header.kind) checkpoint, not an \(kind) one")
    }
    let envelope: Envelope
    do {
      envelope = try JSONDecoder().decode(Envelope.self, from: json)
    } catch {
      throw .badCheckpoint("header is not valid: \(error)")
    }
    var offset = 16 + headerLength
    var arrays: [(name: String, values: [Float])] = []
    for entry in envelope.arrays {
      let length = entry.count * 4
      guard entry.count >= 0, offset + length <= bytes.count else {
        throw .badCheckpoint(
          "truncated in array \(entry.name): needs \(length) bytes at \(offset), file has \(bytes.count)"
        )
      }
      let values = bytes[offset..<(offset + length)].withUnsafeBytes { raw in
        (0..<entry.count).map {
          Float(
            bitPattern: UInt32(
              littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
        }
      }
      arrays.append((entry.name, values))
      offset += length
    }
    guard offset == bytes.count else {
      throw .badCheckpoint("\(bytes.count - offset) unexpected bytes after the last array")
    }
    return CheckpointFile(header: envelope.header, arrays: arrays)
  }

  /// The array called `name` with exactly `count` values.
  func array(_ name: String, count: Int) throws(TrainingError) -> [Float] {
    guard let found = arrays.first(where: { $0.name == name }) else {
      throw .badCheckpoint("array \(name) is missing")
    }
    guard found.values.count == count else {
      throw .badCheckpoint("array \(name) has \(found.values.count) values, expected \(count)")
    }
    return found.values
  }
}

/// A fingerprint of training data (FNV-1a): a checkpoint remembers the data it was trained
/// on, and resuming with other data is refused.
struct Fingerprint {
  private var hash = FNV1a()
  var value: UInt64 { hash.value }

  mutating func mix(_ word: UInt64) { hash.mix(word) }

  mutating func mix(_ string: String) {
    mix(UInt64(string.utf8.count))
    for byte in string.utf8 { mix(UInt64(byte)) }
  }

  mutating func mix<T: BinaryInteger>(_ sequence: [T]) {
    mix(UInt64(sequence.count))
    for x in sequence { mix(UInt64(truncatingIfNeeded: x)) }
  }

  mutating func mix(_ vector: [Float]) { mix(vector.map(\.bitPattern)) }
}

func fingerprint(of examples: [TrainingExample]) -> UInt64 {
  var f = Fingerprint()
  for example in examples {
    for sequence in [example.query, example.positive] + example.negatives { f.mix(sequence) }
    for key in example.keys { f.mix(key) }
  }
  return f.value
}
