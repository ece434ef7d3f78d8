import Foundation
import LMDB

/// A document as `vdb export` writes it: one JSON line that `importJSONL` reads back.
public struct ExportedDocument: Codable, Equatable, Sendable {
  /// The document's id (JSON `id`).
  public var id: String
  /// Its text (JSON `text`).
  public var text: String
  /// Its metadata (JSON `metadata`; `{}` when none).
  public var metadata: [String: JSONValue]
  /// The stored vector, when asked for (nil: not asked for, or none yet).
  public var vector: [Float]?

  /// Leaves `vector` out when nil, in any encoder: a line reads back as it was.
  ///
  /// - Throws: what `encoder` throws (`EncodingError` for a value it cannot encode).
  public func encode(to encoder: Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(id, forKey: .id)
    try container.encode(text, forKey: .text)
    try container.encode(metadata, forKey: .metadata)
    if let vector { try container.encode(vector, forKey: .vector) }
  }
}

extension DocumentCollection {
  /// Calls `body` with every document (those matching `filter`, if given) in id
  /// order, from one snapshot — writers go on meanwhile — and returns how many. With
  /// `includeVectors`, each comes with its vector in the active generation.
  ///
  /// - Throws: `VectorDBError.collectionNotFound`; `.notAvailable` when vectors are
  ///   asked of a collection without them; whatever `body` throws (it stops the export).
  @discardableResult
  public func export(
    filter: Filter? = nil, includeVectors: Bool = false,
    _ body: (ExportedDocument) throws -> Void
  ) throws -> Int {
    let plan = includeVectors ? try indexPlan() : nil
    if includeVectors && plan == nil {
      throw VectorDBError.notAvailable(collection: name, reason: "has no vectors to export")
    }
    let path = database.path
    return try read { txn in
      guard try Database.collectionRecord(name, in: txn, schema: schema)?.id == id else {
        throw VectorDBError.collectionNotFound(name)
      }
      var count = 0
      try txn.forEach(in: schema.docs, under: .collection(id)) { key, value in
        let record = try DocumentRecord(bytes: value, path: path)
        let metadata = try record.metadata()
        if let filter, !filter.matches(metadata) { return true }
        let vector = try plan.flatMap { try $0.index.vector(of: record.row, in: txn) }
        try body(
          ExportedDocument(
            id: DocumentKey.id(of: key), text: record.text,
            metadata: metadata, vector: vector))
        count += 1
        return true
      }
      return count
    }
  }
}

extension Database {
  /// Writes a consistent, compacted copy of the database into the directory
  /// `destination` (created; it must not exist, or be empty). Writers go on meanwhile:
  /// the copy is the snapshot of the moment it starts (LMDB's `mdb_env_copy2` with
  /// `MDB_CP_COMPACT`, which also leaves free pages out). The copy is written under a
  /// temporary name and renamed when complete, so a failed backup leaves nothing.
  ///
  /// - Throws: `VectorDBError.invalidInput` when `destination` is empty or holds a database or other
  ///   files; `.storage` for I/O errors (a full disk, permissions).
  public func backup(to destination: String) throws {
    guard !destination.isEmpty else {
      // Foundation reads "" as the current directory.
      throw VectorDBError.invalidInput(
        source: "backup", line: nil, reason: "the destination is an empty path")
    }
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: destination, isDirectory: &isDirectory) {
      let entries = (try? FileManager.default.contentsOfDirectory(atPath: destination)) ?? []
      guard isDirectory.boolValue, entries.isEmpty else {
        throw VectorDBError.invalidInput(
          source: destination, line: nil,
          reason: entries.contains("data.mdb")
            ? "a database is already there: back up to a new directory"
            : "it exists and is not an empty directory")
      }
    }
    let parent = URL(fileURLWithPath: destination).deletingLastPathComponent().path
    guard access(parent, W_OK | X_OK) == 0 else {
      throw VectorDBError.invalidInput(
        source: destination, line: nil,
        reason: "its directory \(parent) does not exist or is not writable")
    }
    let temporary =
      parent + "/." + URL(fileURLWithPath: destination).lastPathComponent
      + ".partial-\(getpid())"
    try? FileManager.default.removeItem(atPath: temporary)
    // System calls, not FileManager: a failure then reads as the system's reason.
    func fail() -> VectorDBError {
      .invalidInput(
        source: destination, line: nil,
        reason: "cannot write the backup (\(TextFile.systemReason))")
    }
    do {
      // Owner only, as a new database is: the copy holds everything the database does.
      guard mkdir(temporary, 0o700) == 0 else { throw fail() }
      try storage { try environment.copy(to: temporary, compact: true) }
      guard chmod(temporary + "/data.mdb", 0o600) == 0 else { throw fail() }
      // The destination is absent or an empty directory here.
      if rmdir(destination) != 0 && errno != ENOENT { throw fail() }
      guard rename(temporary, destination) == 0 else { throw fail() }
    } catch {
      try? FileManager.default.removeItem(atPath: temporary)
      throw error
    }
  }
}
