import Foundation
import HNSW
import LMDB

/// The tables of a vdb database and the layout of their keys and values; each table's
/// key type is in `Keys.swift`. docs/storage-format.md describes the same thing for
/// people (`StorageFormatDocTests` checks that it lists exactly these tables).
struct Schema {
  /// The format this code writes. Bump it on any incompatible layout change.
  static let formatVersion: UInt32 = 1
  /// Written once at creation, checked at every open: tells our files from others'.
  static let magic = "vdb database"

  /// `MetaKey` (a UTF-8 name) → the value it names: the format record, counters, settings,
  /// and per-collection records (training runs, fusion versions).
  let meta: Table
  /// Collection name (UTF-8) → JSON `CollectionRecord`.
  let collections: Table
  /// `DocumentKey` → `DocumentRecord` bytes.
  let docs: Table
  /// `RowKey` → document id (UTF-8).
  let rows: Table

  /// The query log and its feedback.
  let log: QueryLogStore

  /// Model versions and their parts.
  let models: ModelStore
  /// `GenerationKey` → JSON `GenerationRecord`.
  let generations: Table
  /// `MetadataIndexKey` → empty: the metadata index that makes selective filters cheap (see `MetadataIndex`).
  let metadataIndex: Table
  /// `SourceKey` → the SHA-256 of the text
  /// the row's vector in that generation was made from: how a generation tells which
  /// of its vectors are stale (text changed) or orphaned (document deleted).
  let sources: Table
  /// Routers, their versions and their logs (see `RouterStore`).
  let routing: RouterStore
  /// The full-text index: collection id ++ kind ++ term ++ (block) → counts or postings
  /// (see `TextKey`).
  let text: Table

  /// Every fixed table name of this format; index tables are named `index.*`.
  static let tableNames = Set<String>([
    "meta", "collections", "docs", "rows", "querylog", "feedback", "models", "modelblobs",
    "generations",
    "metaindex", "sources", "text",
  ]).union(RouterStore.tableNames)

  /// Each fixed table's key (its type is in `Keys.swift`), in docs/storage-format.md's
  /// words: a test holds the document to them. Not here: `meta` (`MetaKey`,
  /// `CollectionMetaKey`), `text` (the text index's own) and `index.*` (`GraphLayout`).
  static let keyLayouts: [String: String] = [
    "collections": "collection name (UTF-8)",
    "docs": "collection id (UInt32 BE) ++ document id (UTF-8)",
    "rows": "collection id (UInt32 BE) ++ row id (UInt32 BE)",
    "metaindex":
      "collection id ++ field path (UInt16 BE length ++ UTF-8) ++ encoded value ++ row id",
    "querylog": "log id (UInt64 BE)",
    "feedback": "log id (UInt64 BE) ++ document id (UTF-8)",
    "models": "model version (UInt32 BE)",
    "modelblobs": "model version (UInt32 BE) ++ part (UTF-8)",
    "generations": "collection id (UInt32 BE) ++ generation id (UInt32 BE)",
    "sources": "collection id ++ generation id ++ row id (UInt32 BE each)",
    "routers": "router name (UTF-8)",
    "routerversions": "router id (UInt32 BE) ++ version (UInt32 BE)",
    "routerweights": "router id (UInt32 BE) ++ version (UInt32 BE) (++ \"lora\": adapters)",
    "routelog": "router id (UInt32 BE) ++ log id (UInt64 BE)",
    "routervectors": "model version (UInt32 BE) ++ router id (UInt32 BE) ++ SHA-256 of the input",
  ]

  /// Whether `name` is one of ours (a database holding others is not ours).
  static func isOurs(_ name: String) -> Bool {
    tableNames.contains(name) || name.hasPrefix("index.")
  }

  init(environment: Environment) throws {
    meta = try environment.table("meta")
    collections = try environment.table("collections")
    docs = try environment.table("docs")
    rows = try environment.table("rows")
    log = try QueryLogStore(environment: environment, meta: meta)
    models = try ModelStore(environment: environment)
    generations = try environment.table("generations")
    metadataIndex = try environment.table("metaindex")
    sources = try environment.table("sources")
    routing = try RouterStore(environment: environment, meta: meta)
    text = try environment.table("text")
  }
}

/// A collection's record in the `collections` table.
struct CollectionRecord: Codable, Equatable {
  /// Dense id used as the key prefix of the collection's documents.
  var id: UInt32
  var name: String
  var created: Date
  /// Row ids are handed out from here and never reused, so a row id names one
  /// document for the life of the collection.
  var nextRow: UInt32
  /// Number of documents (kept so `count` needs no scan).
  var count: Int
  /// How documents become vectors; nil for a collection of documents only.
  var vectors: VectorSettings?
  /// The generation queries read (nil without vectors).
  var active: UInt32?
  /// The generation a re-embed job is building, if any.
  var building: UInt32?
  /// How many previous generations to keep for rollback.
  var retain: Int?
  var nextGeneration: UInt32 = 1
  /// The full-text index's analyzer, BM25 parameters and counts; nil before it is
  /// built and for a collection of given vectors.
  var text: TextIndexRecord?
  /// False when the collection was created without a text index (nil: with one).
  var textIndex: Bool?
}

/// A collection's vector space: dimension, metric, index parameters, and the model
/// that embeds text (nil when the caller gives vectors).
public struct VectorSettings: Codable, Equatable, Sendable {
  /// Length of every vector (JSON `dimension`).
  public var dimension: Int
  /// How vectors are compared: `cosine`, `dot` or `l2` (JSON `metric`).
  public var metric: Metric
  /// The model version that embeds text (JSON `model`; nil: the caller gives vectors).
  public var model: Int?
  /// The HNSW graph's construction parameters (JSON `index`).
  public var index: HNSWParameters

  /// Why `vector` cannot be stored in or searched with these settings, or nil: a wrong
  /// length, NaN or infinity (they poison every distance), under cosine similarity all
  /// zeros (no direction), under dot or l2 a length past `Metric.maxNorm` (scores would
  /// overflow). The index checks the same when it stores the vector; checking here
  /// first is what lets an import refuse a file before it writes any of it.
  func problem(with vector: [Float]) -> String? {
    if vector.count != dimension {
      return "a vector of \(vector.count) floats; the collection holds \(dimension)"
    }
    if let position = vector.firstIndex(where: { !$0.isFinite }) {
      let value = vector[position]
      return "the vector holds \(value.isNaN ? "NaN" : "\(value)") at position \(position)"
    }
    if metric == .cosine && vector.allSatisfy({ $0 == 0 }) {
      return "the vector is all zeros, which has no cosine similarity"
    }
    if metric != .cosine, case let length = Metric.length(of: vector), length > Metric.maxNorm {
      return HNSWError.normTooLarge(length).description
    }
    return nil
  }
}

/// A generation: one model's vectors and graph for one collection.
struct GenerationRecord: Codable, Equatable {
  enum State: String, Codable {
    case building, active, retained, dropped
  }
  var id: UInt32
  var model: Int?
  var state: State
  var created: Date
  var completed: Date?
  var count: Int
  /// The last document id embedded by a building generation's job.
  var cursor: String?
  /// The query adapter the generation started with, then each one activated on it,
  /// oldest first (0: none); the last maps the queries. `rollback` removes the last
  /// while more than one is left. Nil means `[0]`.
  var adapters: [Int]?

  /// The query adapter in use, if any.
  var adapter: Int? { adapters?.last.flatMap { $0 == 0 ? nil : $0 } }
  /// The model versions that answer its queries: its encoder and its query adapter, if any.
  var serving: [Int] { [model, adapter].compactMap { $0 } }

  static func indexName(collection: UInt32, generation: UInt32) -> String {
    "index.\(collection).\(generation)"
  }
}

/// A document as stored in `docs`: the row id, the content hash, the text and the
/// metadata. Layout (little-endian):
///
///     row id   UInt32
///     hash     32 bytes (SHA-256 of the text)
///     text     UInt32 byte count, then UTF-8 bytes
///     metadata the rest: compact JSON object, sorted keys ("" means {})
struct DocumentRecord {
  static let headerSize = 4 + 32 + 4

  var row: UInt32
  var hash: ContentHash
  var text: String
  var metadataJSON: Data

  init(row: UInt32, document: Document) throws {
    self.row = row
    hash = document.contentHash
    text = document.text
    metadataJSON =
      document.metadata.isEmpty ? Data() : try JSONEncoder.sorted.encode(document.metadata)
  }

  /// Decodes the bytes of a `docs` value.
  ///
  /// - Throws: `VectorDBError.damaged` when the bytes are too short for their header.
  init(bytes: UnsafeRawBufferPointer, path: String) throws {
    guard bytes.count >= DocumentRecord.headerSize else {
      throw VectorDBError.damaged(path: path, detail: "a document record is \(bytes.count) bytes")
    }
    row = bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian
    hash = ContentHash(bytes: Array(bytes[4..<36]))
    let textCount = Int(bytes.loadUnaligned(fromByteOffset: 36, as: UInt32.self).littleEndian)
    let textEnd = DocumentRecord.headerSize + textCount
    guard textEnd <= bytes.count else {
      throw VectorDBError.damaged(path: path, detail: "a document's text runs past its record")
    }
    text = String(decoding: bytes[DocumentRecord.headerSize..<textEnd], as: UTF8.self)
    metadataJSON = Data(bytes[textEnd...])
  }

  /// Reads only the row id (for deletes and lookups that need nothing else).
  static func row(of bytes: UnsafeRawBufferPointer) -> UInt32 {
    bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian
  }

  func metadata() throws -> [String: JSONValue] {
    metadataJSON.isEmpty
      ? [:] : try JSONDecoder().decode([String: JSONValue].self, from: metadataJSON)
  }

  var byteCount: Int { DocumentRecord.headerSize + text.utf8.count + metadataJSON.count }

  func write(into buffer: UnsafeMutableRawBufferPointer) {
    buffer.storeBytes(of: row.littleEndian, toByteOffset: 0, as: UInt32.self)
    hash.bytes.withUnsafeBytes {
      buffer.baseAddress!.advanced(by: 4).copyMemory(from: $0.baseAddress!, byteCount: 32)
    }
    let utf8 = Array(text.utf8)
    buffer.storeBytes(of: UInt32(utf8.count).littleEndian, toByteOffset: 36, as: UInt32.self)
    utf8.withUnsafeBytes {
      if $0.count > 0 {
        buffer.baseAddress!.advanced(by: DocumentRecord.headerSize).copyMemory(
          from: $0.baseAddress!, byteCount: $0.count)
      }
    }
    metadataJSON.withUnsafeBytes {
      if $0.count > 0 {
        buffer.baseAddress!.advanced(by: DocumentRecord.headerSize + utf8.count)
          .copyMemory(from: $0.baseAddress!, byteCount: $0.count)
      }
    }
  }
}
