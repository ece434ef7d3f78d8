import Crypto
import Foundation

/// A document: an id, its text, and a JSON object of metadata.
///
///     let doc = Document(id: "guide-1", text: "LMDB maps the file into memory.",
///                        metadata: ["section": "storage", "year": 2024])
///     try collection.upsert(doc)
///
/// Ids are non-empty UTF-8 strings of at most ``Document/maxIDBytes`` bytes; documents
/// are ordered by the bytes of their id. The text may be empty (a metadata-only
/// document) and has no size limit beyond the disk; the encoder reads its first 256
/// tokens.
public struct Document: Equatable, Sendable, Codable {
  /// The longest id, in UTF-8 bytes (LMDB keys are at most 511 bytes).
  public static let maxIDBytes = 400

  /// The document's id, unique in its collection (JSON `id`).
  public var id: String
  /// The text that is embedded and indexed for keyword search (JSON `text`; may be empty).
  public var text: String
  /// Any JSON object; filters match on its keys (JSON `metadata`; `{}` when none).
  public var metadata: [String: JSONValue]

  /// A document with `id`, `text` and `metadata` (checked when it is written, not here).
  public init(id: String, text: String, metadata: [String: JSONValue] = [:]) {
    self.id = id
    self.text = text
    self.metadata = metadata
  }

  /// SHA-256 of the text: what a vector depends on, so a changed hash means the
  /// document's vector is stale.
  public var contentHash: ContentHash { ContentHash(text: text) }

  /// Throws `VectorDBError.invalidDocument` when the id is empty, too long, or holds a
  /// control character (NUL, escape, newline, …: ids are printed to terminals), or
  /// when the metadata nests deeper than ``JSONValue/maxDepth``.
  func validate() throws {
    if id.isEmpty {
      throw VectorDBError.invalidDocument(id: id, reason: "the id is empty")
    }
    if let scalar = id.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
      throw VectorDBError.invalidDocument(
        id: id.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : String($0) }
          .joined(),
        reason: String(
          format: "the id holds the control character U+%04X; ids cannot hold control characters",
          scalar.value))
    }
    if JSONValue.object(metadata).depth > JSONValue.maxDepth {
      throw VectorDBError.invalidDocument(
        id: id, reason: "the metadata nests deeper than \(JSONValue.maxDepth) levels")
    }
    if id.utf8.count > Document.maxIDBytes {
      throw VectorDBError.invalidDocument(
        id: id.excerpt(40),
        reason: "the id is \(id.utf8.count) bytes long; the limit is \(Document.maxIDBytes)")
    }
  }
}

/// The SHA-256 digest of a document's text.
public struct ContentHash: Hashable, Sendable, CustomStringConvertible {
  /// The 32 bytes of the digest.
  public let bytes: [UInt8]

  /// The digest of `text`'s UTF-8 bytes.
  public init(text: String) {
    bytes = Array(SHA256.hash(data: Data(text.utf8)))
  }

  init(bytes: [UInt8]) {
    self.bytes = bytes
  }

  /// Lower-case hex.
  public var description: String { bytes.map { String(format: "%02x", $0) }.joined() }
}

/// A document as `get` returns it (shell `--json`, HTTP): its fields, plus `vector`
/// when asked for (`null` when it has none).
public struct DocumentRow: Encodable, Sendable {
  /// The document's `id`, `text` and `metadata` (JSON: the same keys, at the top level).
  public var document: Document
  /// nil: not asked for (no `vector` key); `.some(nil)`: asked for, none stored.
  public var vector: [Float]??

  /// A row for `document`, with `vector` as the property describes.
  public init(document: Document, vector: [Float]?? = nil) {
    self.document = document
    self.vector = vector
  }

  /// Encodes the document's keys and, when asked for, `vector` (`null` when none stored).
  ///
  /// - Throws: `EncodingError.invalidValue` from the encoder (a NaN in the vector).
  public func encode(to encoder: Encoder) throws {
    try document.encode(to: encoder)
    if let vector {
      var container = encoder.container(keyedBy: Key.self)
      try container.encode(vector, forKey: .vector)
    }
  }
  enum Key: String, CodingKey { case vector }
}

/// What a delete did: documents deleted and matched (they differ on a dry run), and
/// with a filter the matching ids.
public struct DeleteReport: Codable, Sendable {
  /// Documents deleted (JSON `deleted`; 0 on a dry run).
  public var deleted: Int
  /// Documents that matched the ids or the filter (JSON `matched`).
  public var matched: Int
  /// With a filter: the matching ids (else nil).
  public var ids: [String]?

  /// A report of `deleted` of `matched` documents, with the matching `ids` for a filter.
  public init(deleted: Int, matched: Int, ids: [String]?) {
    self.deleted = deleted
    self.matched = matched
    self.ids = ids
  }
}
