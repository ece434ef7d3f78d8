import Foundation
import LMDB
import Tensor

/// The `routervectors` table: each router input's sentence vector as the frozen encoder of
/// one model version made it, so that retraining a router embeds only the inputs it has not
/// embedded before (on a log of 10,000 inputs, the embedding was over half of a retrain).
///
/// Key: `RouterVectorKey` (model version ++ router id ++ SHA-256 of the input). Value: the
/// vector, Float32 LE, then the CRC-32C of those bytes (UInt32 LE). A value of the wrong
/// length or checksum is read as absent and made again: damage costs an embedding, never a
/// different vector. A model version's number can be given again after the newest version
/// is deleted, so deleting a version deletes its vectors (`forget(model:in:)`).
///
/// Each `Router.train` leaves exactly its labelled inputs' vectors under the model it
/// trained with (`keep`): the table holds at most one vector per labelled input of each
/// router, whatever the log's history.
///
/// The table came after format 1's first databases: an older database gains it at its first
/// writable open, and one that opens read-only without it has no stored vectors (`table` is
/// nil) and needs none, since training writes.
struct RouterVectorCache {
  let table: Table?

  static let tableName = "routervectors"

  /// The stored vectors of `inputs` (nil where none is stored, or the stored one is
  /// damaged), as `model` embedded them for router `router`.
  func vectors(
    of inputs: [ContentHash], model: Int, router: UInt32, dimension: Int, in txn: Transaction
  ) throws -> [[Float]?] {
    guard let table else { return inputs.map { _ in nil } }
    return try inputs.map { input in
      try txn.get(table, key: key(model: model, router: router, input: input)).flatMap {
        Self.vector($0, dimension: dimension)
      }
    }
  }

  /// Stores `vectors` (by input) and deletes the router's other vectors: those of inputs
  /// not in `inputs`, and those of other model versions.
  func keep(
    _ inputs: Set<ContentHash>, adding vectors: [ContentHash: [Float]], model: Int,
    router: UInt32, in txn: WriteTransaction
  ) throws {
    guard let table else { return }  // read-only: the write has failed before this
    for key in try keys(of: router, in: txn)
    where key.model != UInt32(truncatingIfNeeded: model) || !inputs.contains(key.input) {
      _ = try txn.delete(table, key: key)
    }
    for (input, vector) in vectors {
      try txn.put(
        table, key: key(model: model, router: router, input: input), value: Self.value(vector))
    }
  }

  /// Deletes every vector of router `router`.
  func forget(router: UInt32, in txn: WriteTransaction) throws {
    guard let table else { return }
    for key in try keys(of: router, in: txn) { _ = try txn.delete(table, key: key) }
  }

  /// The keys of router `router`'s vectors under every model version: one seek per model
  /// version, not a read of other routers' vectors. (A key of another shape is verify's to
  /// report; it is no router's.)
  private func keys(of router: UInt32, in txn: Transaction) throws -> [RouterVectorKey] {
    guard let table else { return [] }
    var keys: [RouterVectorKey] = []
    try txn.withCursor(table) { cursor in
      var entry = try cursor.first()
      while let (bytes, _) = entry {
        guard let key = RouterVectorKey.decode(bytes) else {
          entry = try cursor.next()
          continue
        }
        if key.router == router {
          keys.append(key)
          entry = try cursor.next()
        } else if key.router < router {
          entry = try cursor.seek(atLeast: KeyBuilder().uint32(key.model).uint32(router))
        } else if key.model < .max {
          entry = try cursor.seek(atLeast: KeyBuilder().uint32(key.model + 1))
        } else {
          entry = nil
        }
      }
    }
    return keys
  }

  /// Deletes every vector model version `model` made.
  func forget(model: Int, in txn: WriteTransaction) throws {
    guard let table else { return }
    try txn.deleteRange(table, RouterVectorKey.model(UInt32(truncatingIfNeeded: model)))
  }

  private func key(model: Int, router: UInt32, input: ContentHash) -> RouterVectorKey {
    RouterVectorKey(model: UInt32(truncatingIfNeeded: model), router: router, input: input)
  }

  /// A vector as stored: its Float32 LE values, then their CRC-32C.
  static func value(_ vector: [Float]) -> [UInt8] {
    var bytes = RouterStore.bytes(vector)
    let crc = bytes.withUnsafeBytes { CRC32C.checksum($0) }
    withUnsafeBytes(of: crc.littleEndian) { bytes.append(contentsOf: $0) }
    return bytes
  }

  /// The vector of a stored value, or nil unless it holds `dimension` finite values and
  /// their checksum.
  static func vector(_ bytes: UnsafeRawBufferPointer, dimension: Int) -> [Float]? {
    let count = dimension * 4
    guard bytes.count == count + 4 else { return nil }
    let values = UnsafeRawBufferPointer(rebasing: bytes[..<count])
    let crc = bytes.loadUnaligned(fromByteOffset: count, as: UInt32.self).littleEndian
    guard CRC32C.checksum(values) == crc else { return nil }
    let vector = RouterStore.floats(values)
    return vector.allSatisfy(\.isFinite) ? vector : nil
  }
}
