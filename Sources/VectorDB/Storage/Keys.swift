import LMDB

// The keys of vdb's tables, one type per table, each encoding and decoding its own bytes
// (the index's keys live in `Index/GraphStorage.swift`, the text index's in `Text/`).
//
// ⚠ These bytes are the on-disk format (docs/storage-format.md). Changing a field's width,
// order or encoding, or a meta key's name, makes databases written before unreadable:
// bump `Schema.formatVersion` and migrate. `StorageKeyTests` pins every layout to bytes.

/// The keys that begin with `prefix`: one collection's part of a table, one log entry's
/// feedback, one generation's sources. As a key it is the prefix: where a scan starts.
struct KeyRange: LMDBKey {
  let prefix: KeyBuilder

  /// Every key of collection `id` in the tables it prefixes (`docs`, `rows`, `generations`,
  /// `metaindex`, `sources`, `text`): a collection is one key range in each.
  static func collection(_ id: UInt32) -> KeyRange { KeyRange(prefix: KeyBuilder().uint32(id)) }

  /// Every key of router `id` in the tables it prefixes (`routerversions`, `routerweights`,
  /// `routelog`).
  static func router(_ id: UInt32) -> KeyRange { KeyRange(prefix: KeyBuilder().uint32(id)) }

  func contains(_ key: UnsafeRawBufferPointer) -> Bool { key.starts(with: prefix.bytes) }

  func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try prefix.withKeyBytes(body)
  }
}

extension Transaction {
  /// Calls `body` with each entry of `range` in key order until it returns false.
  func forEach(
    in table: Table, under range: KeyRange,
    _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
  ) throws {
    try forEach(in: table, from: range) { key, value in
      range.contains(key) ? try body(key, value) : false
    }
  }
}

extension WriteTransaction {
  /// Deletes every entry of `range`.
  func deleteRange(_ table: Table, _ range: KeyRange) throws {
    try withCursor(table) { cursor in
      var entry = try cursor.seek(atLeast: range)
      while let (key, _) = entry, range.contains(key) {
        try cursor.deleteCurrent()
        entry = try cursor.current()
      }
    }
  }
}

/// A key made of fields: `builder` writes them in order, and that is the key.
protocol CompositeKey: LMDBKey {
  var builder: KeyBuilder { get }
}

extension CompositeKey {
  func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try builder.withKeyBytes(body)
  }
}

/// `docs`: a document by id.
struct DocumentKey: CompositeKey {
  /// Collection id, UInt32 BE.
  var collection: UInt32
  /// Document id, UTF-8 as it is: the last part, so documents sort by the bytes of their id.
  var id: String

  var builder: KeyBuilder { KeyBuilder().uint32(collection).string(id) }

  /// The key just after this one: where a scan that resumes after this document starts.
  var successor: [UInt8] { builder.bytes + [0] }

  /// The document id of a `docs` key (the collection is the range scanned).
  static func id(of key: UnsafeRawBufferPointer) -> String {
    var reader = KeyReader(key)
    _ = reader.uint32()
    return reader.rest()
  }
}

/// `rows`: a row id, mapped to its document id.
struct RowKey: CompositeKey {
  /// Collection id, UInt32 BE.
  var collection: UInt32
  /// Row id, UInt32 BE (dense per collection, never reused).
  var row: UInt32

  /// The row id of a `rows` key; nil for a key of another length.
  static func row(of key: UnsafeRawBufferPointer) -> UInt32? {
    var reader = KeyReader(key)
    _ = reader.uint32()
    guard let row = reader.uint32(), reader.isAtEnd else { return nil }
    return row
  }

  var builder: KeyBuilder { KeyBuilder().uint32(collection).uint32(row) }
}

/// `generations`: a generation's record.
struct GenerationKey: CompositeKey {
  /// Collection id, UInt32 BE.
  var collection: UInt32
  /// Generation id, UInt32 BE (dense per collection from `nextGeneration`).
  var generation: UInt32

  var builder: KeyBuilder { KeyBuilder().uint32(collection).uint32(generation) }
}

/// `sources`: the hash of the text a row's vector in a generation was made from.
struct SourceKey: CompositeKey {
  /// Collection id, UInt32 BE.
  var collection: UInt32
  /// Generation id, UInt32 BE.
  var generation: UInt32
  /// Row id, UInt32 BE.
  var row: UInt32

  /// The sources of one generation.
  static func generation(_ generation: UInt32, of collection: UInt32) -> KeyRange {
    KeyRange(prefix: KeyBuilder().uint32(collection).uint32(generation))
  }

  /// The row id of a `sources` key; nil for a key of another length.
  static func row(of key: UnsafeRawBufferPointer) -> UInt32? {
    var reader = KeyReader(key)
    _ = (reader.uint32(), reader.uint32())
    guard let row = reader.uint32(), reader.isAtEnd else { return nil }
    return row
  }

  var builder: KeyBuilder { KeyBuilder().uint32(collection).uint32(generation).uint32(row) }
}

/// `metaindex`: one scalar leaf of one document's metadata; the value is empty.
struct MetadataIndexKey: LMDBKey {
  /// Collection id, UInt32 BE.
  var collection: UInt32
  /// Dotted field path, UInt16 BE length ++ UTF-8 (so the value after it cannot run in).
  var field: String
  /// The order-preserving bytes of the value (`MetadataIndex.encode`).
  var value: [UInt8]
  /// Row id, UInt32 BE: last, so one value's rows are one key range.
  var row: UInt32

  /// The keys of one field, whatever the value.
  static func field(_ field: String, of collection: UInt32) -> KeyRange {
    KeyRange(prefix: KeyBuilder().uint32(collection).lengthPrefixed(field))
  }

  /// The value bytes and row id of a key in `range` (the field's); nil when it is too short.
  static func decode(_ key: UnsafeRawBufferPointer, in range: KeyRange) -> (
    value: UnsafeRawBufferPointer.SubSequence, row: UInt32
  )? {
    let head = range.prefix.bytes.count
    guard key.count >= head + 4 else { return nil }
    var reader = KeyReader(UnsafeRawBufferPointer(rebasing: key[(key.count - 4)...]))
    return (key[head..<(key.count - 4)], reader.uint32()!)
  }

  func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try
      (Self.field(field, of: collection).prefix.bytes + value
      + KeyBuilder().uint32(row).bytes).withKeyBytes(body)
  }
}

/// `querylog`: a log entry by log id (UInt64 BE); decoded with `UInt64(keyBytes:)`.
typealias LogKey = UInt64

/// `feedback`: one judgement of one document for one logged query.
struct FeedbackKey: CompositeKey {
  /// Log id, UInt64 BE.
  var log: UInt64
  /// Document id, UTF-8 as it is (last).
  var document: String

  /// The feedback on one log entry.
  static func entry(_ log: UInt64) -> KeyRange { KeyRange(prefix: KeyBuilder().uint64(log)) }

  var builder: KeyBuilder { KeyBuilder().uint64(log).string(document) }

  /// The parts of a `feedback` key; nil for one shorter than a log id.
  static func decode(_ key: UnsafeRawBufferPointer) -> Self? {
    var reader = KeyReader(key)
    guard let log = reader.uint64() else { return nil }
    return Self(log: log, document: reader.rest())
  }
}

/// `models`: a model version's record by version (UInt32 BE); decoded with
/// `UInt32(keyBytes:)`.
typealias ModelKey = UInt32

/// `modelblobs`: one stored part of a model version.
struct ModelBlobKey: CompositeKey {
  /// The parts a version can have; the raw value is the key's UTF-8 name.
  enum Part: String, CaseIterable {
    /// JSON `EncoderSettings`.
    case settings
    /// The WordPiece vocabulary, one token per line.
    case vocab
    /// The encoder's weights, safetensors.
    case weights
    /// LoRA adapters, safetensors with the configuration in its metadata.
    case lora
    /// A query adapter's matrix, safetensors.
    case adapter
    /// The query texts a fine-tune trained on, as `DocumentCollection.queryHash` values:
    /// UInt64 LE, ascending. The gate of a later run lets none of them vote (the version
    /// would be scored in-sample). Changing the hash makes stored sets name other texts.
    case trainedQueries = "trained_queries"
  }

  /// Model version, UInt32 BE.
  var version: UInt32
  /// The part's name, UTF-8 (last).
  var part: Part

  /// Every part of one version.
  static func version(_ version: UInt32) -> KeyRange {
    KeyRange(prefix: KeyBuilder().uint32(version))
  }

  var builder: KeyBuilder { KeyBuilder().uint32(version).string(part.rawValue) }
}

/// `routerversions` and `routerweights`: one version of one router.
struct RouterVersionKey: CompositeKey {
  /// Router id, UInt32 BE.
  var router: UInt32
  /// Version, UInt32 BE (dense from 1 per router).
  var version: UInt32

  var builder: KeyBuilder { KeyBuilder().uint32(router).uint32(version) }

  /// The parts of a `routerversions` key, or of a `routerweights` key with or without
  /// its `"lora"` suffix (`isAdapters`); nil for any other bytes.
  static func decode(_ key: UnsafeRawBufferPointer) -> (key: Self, isAdapters: Bool)? {
    var reader = KeyReader(key)
    guard let router = reader.uint32(), let version = reader.uint32() else { return nil }
    let rest = reader.rest()
    guard rest.isEmpty || rest == "lora" else { return nil }
    return (Self(router: router, version: version), !rest.isEmpty)
  }
}

/// `routerweights`: the LoRA adapters of a LoRA-tier router version, beside the head's
/// parameters under the version's own key.
struct RouterAdapterKey: CompositeKey {
  /// Router id, UInt32 BE.
  var router: UInt32
  /// Version, UInt32 BE.
  var version: UInt32

  /// The version's key ++ `"lora"` (UTF-8): a key no head ever has (those are 8 bytes).
  var builder: KeyBuilder { KeyBuilder().uint32(router).uint32(version).string("lora") }
}

/// `routelog`: one entry of one router's log.
struct RouteLogKey: CompositeKey {
  /// Router id, UInt32 BE.
  var router: UInt32
  /// Route log id, UInt64 BE (from `meta.nextRouteLogID`, shared by all routers).
  var log: UInt64

  var builder: KeyBuilder { KeyBuilder().uint32(router).uint64(log) }

  /// The parts of a `routelog` key; nil for one of another length.
  static func decode(_ key: UnsafeRawBufferPointer) -> Self? {
    var reader = KeyReader(key)
    guard let router = reader.uint32(), let log = reader.uint64(), reader.isAtEnd else {
      return nil
    }
    return Self(router: router, log: log)
  }
}

/// `routervectors`: one router input's sentence vector as one model version embedded it
/// (see `RouterVectorCache`).
struct RouterVectorKey: CompositeKey, Hashable {
  /// Model version, UInt32 BE: first, so that deleting a version deletes one range.
  var model: UInt32
  /// Router id, UInt32 BE.
  var router: UInt32
  /// SHA-256 of the input's UTF-8 text, 32 bytes.
  var input: ContentHash

  static let byteCount = 4 + 4 + 32

  /// The vectors one model version made, of every router.
  static func model(_ model: UInt32) -> KeyRange { KeyRange(prefix: KeyBuilder().uint32(model)) }

  var builder: KeyBuilder { KeyBuilder().uint32(model).uint32(router).raw(input.bytes) }

  /// The parts of a `routervectors` key; nil for one of another length.
  static func decode(_ key: UnsafeRawBufferPointer) -> Self? {
    var reader = KeyReader(key)
    guard let model = reader.uint32(), let router = reader.uint32(),
      let input = reader.bytes(32), reader.isAtEnd
    else { return nil }
    return Self(model: model, router: router, input: ContentHash(bytes: Array(input)))
  }
}

/// The database-wide keys of the `meta` table: UTF-8 names (a collection's are
/// `CollectionMetaKey`s).
enum MetaKey: String, CaseIterable, LMDBKey {
  /// `"vdb database"`, UTF-8: tells our files from others'.
  case magic
  /// The format version, UInt32 LE.
  case format
  /// When the database was made, ISO 8601 UTF-8.
  case created
  /// The next collection id, UInt32 LE.
  case nextCollection
  /// The model version new collections embed with, UInt32 LE.
  case defaultModel
  /// The next query log id, UInt64 LE.
  case nextLogID
  /// JSON `LogRetention`.
  case logRetention
  /// The next router id, UInt32 LE.
  case nextRouter
  /// The next route log id, UInt64 LE.
  case nextRouteLogID
  /// How many entries the routers' log held after its last prune, UInt64 LE (the next
  /// prune waits for it to grow; see `RouterStore.upkeep`).
  case routeLogSizeAfterPrune

  func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try rawValue.withKeyBytes(body)
  }
}

/// A record of one collection in the `meta` table: `collection.ID.` ++ the record's name,
/// UTF-8 (so dropping the collection deletes one key range).
struct CollectionMetaKey: CompositeKey {
  /// The records a collection keeps in `meta`.
  enum Record: String, CaseIterable {
    /// JSON `TrainingRun`: mined pairs, folds, finished scores (deleted when the run ends).
    case trainRun = "train.run"
    /// The trainer's checkpoint bytes.
    case trainCheckpoint = "train.checkpoint"
    /// The fit the checkpoint belongs to (its index, UTF-8 decimal).
    case trainFit = "train.fit"
    /// `PID:START` of the process training.
    case trainOwner = "train.owner"
    /// JSON `FusionHistory`.
    case fusion
  }

  /// Collection id, in decimal.
  var collection: UInt32
  var record: Record

  /// Every record of collection `id`.
  static func collection(_ id: UInt32) -> KeyRange {
    KeyRange(prefix: KeyBuilder().string(prefix(of: id)))
  }

  private static func prefix(of id: UInt32) -> String { "collection.\(id)." }

  var builder: KeyBuilder { KeyBuilder().string(Self.prefix(of: collection) + record.rawValue) }
}
