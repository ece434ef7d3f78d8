import Crypto
import Embedding
import Foundation
import LMDB
import Tensor
import Training

/// A query or a document: which of a model's prompts goes before a text (docs/encoder.md,
/// "Prompts").
public typealias TextRole = SentenceEncoder.Role

extension SentenceEncoder {
  /// Texts in, one vector per text out: each text as given, or after the prompt of `role`.
  fileprivate func embedder(as role: TextRole?) -> ([String]) -> [[Float]] {
    { texts in self.embed(role.map { self.prompted(texts, as: $0) } ?? texts) }
  }
}

/// A version of the encoder stored in the database, with where it came from.
///
/// `vdb init` imports the default model as version 1; fine-tuning adds versions whose
/// `parent` is the model they started from. A database directory therefore holds
/// every model that produced its vectors.
public struct ModelInfo: Codable, Equatable, Sendable {
  /// Whether documents or only queries go through the version (JSON `kind`).
  public enum Kind: String, Codable, Sendable {
    /// A full encoder: documents must be embedded with it (a new generation).
    case encoder
    /// A query-side adapter over its parent encoder: document vectors stay.
    case adapter
  }
  /// Whether collections may use the version (JSON `state`).
  public enum State: String, Codable, Sendable {
    /// Imported or promoted: usable by collections.
    case ready
    /// Trained but not promoted by the gate (kept for inspection, `--force` to use).
    case rejected
  }

  /// The version number, from 1, never reused (JSON `version`).
  public var version: Int
  /// Where the model came from: a directory path, or "fine-tune of v1".
  public var name: String
  /// Encoder or query adapter (JSON `kind`).
  public var kind: Kind
  /// Ready or rejected (JSON `state`).
  public var state: State
  /// The version it was trained or converted from (JSON `parent`; nil: imported).
  public var parent: Int?
  /// When it was stored (JSON `created`, ISO 8601).
  public var created: Date
  /// Length of its output vectors (JSON `dimension`).
  public var dimension: Int
  /// Inputs are cut to this many tokens, `[CLS]` and `[SEP]` included (JSON
  /// `max_sequence_length`).
  public var maxSequenceLength: Int
  /// SHA-256 of the stored weights (hex): identifies the weights (an import of the
  /// same model finds its version).
  public var weightsHash: String
  /// CRC-32C of the stored weights, checked at every load (a damaged byte is refused,
  /// never silently changes scores). Absent in versions stored before it existed: those
  /// are checked against `weightsHash` instead.
  public var weightsChecksum: UInt32?
  /// Bytes of the stored weights.
  public var weightsBytes: Int
  /// CRC-32C of the stored settings and then the vocabulary (encoders), checked at every
  /// load like the weights: a changed byte there changes every vector just as surely.
  /// Absent in versions stored before it existed (not checked).
  public var partsChecksum: UInt32? = nil
  /// Free-form record of how it was made (training run, data, metrics).
  public var lineage: [String: JSONValue]
  /// The number format an encoder version computes in (`nil` for query adapters, and
  /// for versions stored before precision existed, which are float32). A generation's
  /// vectors come from one version, so they are never mixed across precisions.
  public var precision: Precision?

  /// Whether the weights are stored (a rejected candidate keeps only its lineage unless
  /// trained with `keepRejected`; `Database.pruneModels` drops them too).
  public var hasWeights: Bool { weightsBytes > 0 }
}

/// The `models` table (version UInt32 BE → JSON `ModelInfo`) and `modelblobs`
/// (version UInt32 BE ++ part name → bytes: "settings" JSON, "vocab" one token per
/// line, "weights" safetensors, "adapter" safetensors).
struct ModelStore {
  let models: Table
  let blobs: Table

  init(environment: Environment) throws {
    models = try environment.table("models")
    blobs = try environment.table("modelblobs")
  }

  func info(_ version: Int, in txn: Transaction) throws -> ModelInfo? {
    // A version no UInt32 can hold (negative, huge) names no model; it must not trap.
    guard let key = UInt32(exactly: version), let bytes = try txn.get(models, key: key) else {
      return nil
    }
    return try QueryLogStore.decoder.decode(ModelInfo.self, from: Data(bytes))
  }

  /// The record of encoder `version`.
  ///
  /// - Throws: `VectorDBError.modelNotFound`; `.modelUnsuitable` for a query adapter.
  func encoderInfo(_ version: Int, in txn: Transaction) throws -> ModelInfo {
    guard let info = try info(version, in: txn) else { throw VectorDBError.modelNotFound(version) }
    guard info.kind == .encoder else {
      throw VectorDBError.modelUnsuitable(
        version: version,
        reason: "is a query adapter over version \(info.parent ?? 0), not an encoder")
    }
    return info
  }

  func all(in txn: Transaction) throws -> [ModelInfo] {
    var result: [ModelInfo] = []
    try txn.forEach(in: models) { _, value in
      result.append(try QueryLogStore.decoder.decode(ModelInfo.self, from: Data(value)))
      return true
    }
    return result
  }

  func blob(_ version: Int, _ part: ModelBlobKey.Part, in txn: Transaction) throws
    -> UnsafeRawBufferPointer?
  {
    guard let version = UInt32(exactly: version) else { return nil }
    return try txn.get(blobs, key: ModelBlobKey(version: version, part: part))
  }

  /// Records the query texts (`DocumentCollection.queryHash`) version `version` was fitted
  /// on, as its `trained_queries` part.
  func setTrainedQueries(_ hashes: Set<UInt64>, version: Int, in txn: WriteTransaction) throws {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(hashes.count * 8)
    for hash in hashes.sorted() { withUnsafeBytes(of: hash.littleEndian) { bytes += $0 } }
    try txn.put(
      blobs, key: ModelBlobKey(version: UInt32(version), part: .trainedQueries), value: bytes)
  }

  /// The query texts `versions` and their ancestors were fitted on: the union of their
  /// `trained_queries` parts (a version without one, such as an imported model, adds none).
  ///
  /// - Throws: `VectorDBError.damaged` naming the version when a part is not whole hashes.
  func trainedQueries(lineageOf versions: [Int], path: String, in txn: Transaction) throws
    -> Set<UInt64>
  {
    var hashes = Set<UInt64>()
    var visited = Set<Int>()
    var pending = versions
    while let version = pending.popLast() {
      guard visited.insert(version).inserted else { continue }
      if let bytes = try blob(version, .trainedQueries, in: txn) {
        guard bytes.count % 8 == 0 else {
          throw VectorDBError.damaged(
            path: path,
            detail: "the trained_queries part of model version \(version) is \(bytes.count)"
              + " bytes, not whole 8-byte hashes")
        }
        for offset in stride(from: 0, to: bytes.count, by: 8) {
          hashes.insert(
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
        }
      }
      if let parent = try info(version, in: txn)?.parent { pending.append(parent) }
    }
    return hashes
  }

  /// Stores a new encoder version (numbered after the last) and returns its info. With
  /// `lora`, `encoder` is `parent` with those adapters merged, and only the adapters are
  /// stored ("lora": safetensors with the configuration in its metadata).
  func add(
    encoder: SentenceEncoder, lora: LoRAAdapters<Float>? = nil, name: String,
    state: ModelInfo.State, parent: Int?, lineage: [String: JSONValue], in txn: WriteTransaction
  ) throws -> ModelInfo {
    let weights = try lora.map(Self.loraBytes) ?? SafeTensors.serialize(encoder.weights)
    var info = try newVersion(
      name: name, kind: .encoder, state: state, parent: parent, dimension: encoder.dimension,
      maxSequenceLength: encoder.maxSequenceLength, weights: weights, lineage: lineage,
      precision: Precision(encoder.precision), in: txn)
    let version = UInt32(info.version)
    func key(_ part: ModelBlobKey.Part) -> ModelBlobKey {
      ModelBlobKey(version: version, part: part)
    }
    let settings = [UInt8](try JSONEncoder().encode(encoder.settings))
    let vocabulary =
      lora == nil ? Array(encoder.tokenizer.vocabulary.joined(separator: "\n").utf8) : []
    info.partsChecksum = Self.partsChecksum(settings, vocabulary)
    try update(info, in: txn)
    try txn.put(blobs, key: key(.settings), value: settings)
    if lora != nil {
      try txn.put(blobs, key: key(.lora), value: weights)
      return info
    }
    try txn.put(blobs, key: key(.vocab), value: vocabulary)
    try txn.reserve(blobs, key: key(.weights), count: weights.count) { buffer in
      weights.withUnsafeBytes { buffer.copyMemory(from: $0) }
    }
    return info
  }

  /// The settings of an encoder version as stored (its "settings" part).
  static func settings(_ bytes: UnsafeRawBufferPointer) throws -> SentenceEncoder.Settings {
    try JSONDecoder().decode(SentenceEncoder.Settings.self, from: Data(bytes))
  }

  /// `ModelInfo.partsChecksum` of the stored settings and vocabulary (empty for LoRA).
  static func partsChecksum(
    _ settings: some ContiguousBytes, _ vocabulary: some ContiguousBytes
  ) -> UInt32 {
    let crc = settings.withUnsafeBytes { CRC32C.checksum($0) }
    return vocabulary.withUnsafeBytes { CRC32C.checksum($0, continuing: crc) }
  }

  /// Checks the stored settings and vocabulary of the encoder version `info` describes
  /// against `partsChecksum`, when it has one.
  ///
  /// - Throws: `VectorDBError.damaged` naming the version when they differ.
  func checkParts(_ info: ModelInfo, path: String, in txn: Transaction) throws {
    guard let checksum = info.partsChecksum, info.kind == .encoder else { return }
    let settings =
      try blob(info.version, .settings, in: txn) ?? UnsafeRawBufferPointer(start: nil, count: 0)
    let vocabulary =
      try blob(info.version, .vocab, in: txn) ?? UnsafeRawBufferPointer(start: nil, count: 0)
    guard Self.partsChecksum(settings, vocabulary) == checksum else {
      throw VectorDBError.damaged(
        path: path,
        detail: "the settings or vocabulary of model version \(info.version) fail their checksum")
    }
  }

  /// Stores a query adapter over encoder version `parent` as a new version: only its
  /// `d×d` matrix (safetensors, "adapter.weight"); the encoder is the parent's.
  func add(
    adapter: QueryAdapter<Float>, name: String, state: ModelInfo.State, parent: ModelInfo,
    lineage: [String: JSONValue], in txn: WriteTransaction
  ) throws -> ModelInfo {
    let d = adapter.dimension
    let weights = SafeTensors.serialize([
      Self.adapterTensor: Tensor(shape: [d, d], values: adapter.matrix)
    ])
    let info = try newVersion(
      name: name, kind: .adapter, state: state, parent: parent.version, dimension: d,
      maxSequenceLength: parent.maxSequenceLength, weights: weights, lineage: lineage, in: txn)
    try txn.put(
      blobs, key: ModelBlobKey(version: UInt32(info.version), part: .adapter), value: weights)
    return info
  }

  private static let adapterTensor = "adapter.weight"

  /// The stored form of LoRA adapters: their tensors, the configuration as JSON metadata.
  static func loraBytes(_ lora: LoRAAdapters<Float>) throws -> [UInt8] {
    let configuration = try JSONEncoder().encode(lora.configuration)
    return SafeTensors.serialize(
      lora.tensors(), metadata: ["lora": String(decoding: configuration, as: UTF8.self)])
  }

  /// Reads adapters written by `loraBytes` for an encoder of `config`.
  ///
  /// - Throws: `VectorDBError.damaged` naming `source` when the bytes are not such adapters.
  static func loraAdapters(
    _ bytes: UnsafeRawBufferPointer, config: BertConfig, source: String, path: String
  ) throws -> LoRAAdapters<Float> {
    do {
      let (metadata, tensors) = try SafeTensors.withBytes(bytes, source: source) {
        ($0.metadata, try $0.floatTensors())
      }
      let configuration = try JSONDecoder().decode(
        LoRAConfiguration.self, from: Data((metadata["lora"] ?? "").utf8))
      return try LoRAAdapters(config: config, configuration: configuration, tensors: tensors)
    } catch {
      throw VectorDBError.damaged(path: path, detail: "\(source): \(error)")
    }
  }

  /// A LoRA version's encoder: its parent's, with the stored adapters merged into the weights.
  private func loraEncoder(
    _ version: Int, bytes: UnsafeRawBufferPointer, path: String, images: ModelImages?,
    in txn: Transaction
  ) throws -> SentenceEncoder {
    guard let parent = try info(version, in: txn)?.parent else {
      throw VectorDBError.damaged(
        path: path, detail: "LoRA model version \(version) lacks its parent")
    }
    let base = try encoder(parent, path: path, images: images, in: txn)
    let adapters = try Self.loraAdapters(
      bytes, config: base.config, source: "model version \(version) in \(path)", path: path)
    return try SentenceEncoder(
      trained: adapters.merged(into: try EncoderParameters(base)), like: base)
  }

  func newVersion(
    name: String, kind: ModelInfo.Kind, state: ModelInfo.State, parent: Int?, dimension: Int,
    maxSequenceLength: Int, weights: [UInt8], lineage: [String: JSONValue],
    precision: Precision? = nil, in txn: WriteTransaction
  ) throws -> ModelInfo {
    let last =
      try txn.withCursor(models) { try $0.last().flatMap { ModelKey(keyBytes: $0.key) } } ?? 0
    let info = ModelInfo(
      version: Int(last) + 1, name: name, kind: kind, state: state, parent: parent,
      created: Date(), dimension: dimension, maxSequenceLength: maxSequenceLength,
      weightsHash: SHA256.hash(data: weights).map { String(format: "%02x", $0) }.joined(),
      weightsChecksum: weights.withUnsafeBytes { CRC32C.checksum($0) }, weightsBytes: weights.count,
      lineage: lineage,
      precision: precision)
    try update(info, in: txn)
    return info
  }

  func update(_ info: ModelInfo, in txn: WriteTransaction) throws {
    try txn.put(models, key: UInt32(info.version), value: try QueryLogStore.encoder.encode(info))
  }

  /// Rebuilds the encoder of `version` from its stored parts.
  ///
  /// The weights are read in place from the map, inside the read transaction, and
  /// copied once into the encoder, which keeps no pointer into the map: the map moves
  /// when it grows (a write in any process can make this one remap), and the pages of a
  /// deleted version (`models delete`, `prune`) are reused once no reader holds them.
  /// As they are checked and copied, the map's pages of the weights leave this process's
  /// resident memory (they stay in the page cache), so a model costs its size about once,
  /// not twice, even while it loads.
  ///
  /// With `images`, the weights are mapped from the model's image instead when it has a
  /// sound one, and an image is written after a load without one.
  func encoder(_ version: Int, path: String, images: ModelImages?, in txn: Transaction) throws
    -> SentenceEncoder
  {
    if let lora = try blob(version, .lora, in: txn) {
      return try loraEncoder(version, bytes: lora, path: path, images: images, in: txn)
    }
    guard let settingsBytes = try blob(version, .settings, in: txn),
      let vocabBytes = try blob(version, .vocab, in: txn),
      let weightBytes = try blob(version, .weights, in: txn)
    else {
      throw VectorDBError.damaged(path: path, detail: "model version \(version) is missing parts")
    }
    let stored = try info(version, in: txn)
    if let stored { try checkParts(stored, path: path, in: txn) }
    let settings = try Self.settings(settingsBytes)
    let vocabulary = String(decoding: vocabBytes, as: UTF8.self)
      .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let source = "model version \(version) in \(path)"
    let image = stored.flatMap { images?.image(forWeightsHash: $0.weightsHash) }
    if let image,
      let encoder = try? SentenceEncoder(
        settings: settings, vocabulary: vocabulary, image: image.path, identity: image.identity,
        source: source)
    {
      return encoder
    }
    // The checksum and then each tensor's copy drop the map's pages they have read, so
    // the weights are resident about once, not twice, even while they load.
    if let stored { try checkWeights(stored, weightBytes, path: path) }
    // Then the whole value once more: what was read beside the tensors (the header, the
    // pages read ahead around each tensor) leaves too.
    defer { MappedPages.release(weightBytes) }
    let encoder = try SafeTensors.withBytes(weightBytes, source: source, releasingPages: true) {
      try SentenceEncoder(settings: settings, vocabulary: vocabulary, weights: $0, source: source)
    }
    if let image { images?.write(encoder, as: image) }
    return encoder
  }

  /// Checks the stored weights of the version `info` describes against the checksum
  /// recorded with them.
  /// Reads them in chunks, each mapped in with one call and dropped from this process
  /// once checked, so a large model is never resident twice (map and copy).
  ///
  /// - Throws: `VectorDBError.damaged` naming the version when they differ.
  func checkWeights(_ info: ModelInfo, _ bytes: UnsafeRawBufferPointer, path: String) throws {
    let sound: Bool
    if let checksum = info.weightsChecksum {
      var crc: UInt32 = 0
      let chunk = 8 << 20
      for start in stride(from: 0, to: bytes.count, by: chunk) {
        let piece = UnsafeRawBufferPointer(rebasing: bytes[start..<min(start + chunk, bytes.count)])
        MappedPages.populate(piece)
        crc = CRC32C.checksum(piece, continuing: crc)
        MappedPages.release(piece)
      }
      sound = crc == checksum
    } else {
      sound =
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() == info.weightsHash
    }
    guard sound, bytes.count == info.weightsBytes else {
      throw VectorDBError.damaged(
        path: path,
        detail:
          "the weights of model version \(info.version) fail their checksum (\(bytes.count) bytes)"
      )
    }
  }

  /// Rebuilds the query adapter of `version` from its stored matrix.
  func adapter(_ version: Int, path: String, in txn: Transaction) throws -> QueryAdapter<Float> {
    let source = "model version \(version) in \(path)"
    guard let bytes = try blob(version, .adapter, in: txn) else {
      throw VectorDBError.damaged(
        path: path, detail: "model version \(version) has no adapter matrix")
    }
    if let stored = try info(version, in: txn) { try checkWeights(stored, bytes, path: path) }
    guard
      let tensor = try SafeTensors.withBytes(bytes, source: source, { try $0.floatTensors() })[
        Self.adapterTensor],
      tensor.shape.count == 2, tensor.shape[0] == tensor.shape[1]
    else {
      throw VectorDBError.damaged(
        path: path, detail: "model version \(version) has no adapter matrix")
    }
    return try QueryAdapter(dimension: tensor.shape[0], matrix: tensor.values)
  }
}

extension Database {
  /// Imports a sentence-transformers model directory as a new model version computing
  /// at `precision` (or returns the version that already holds the same weights at that
  /// precision).
  ///
  /// - Throws: `VectorDBError.invalidModel` naming the file and the problem (missing
  ///   file, wrong shape, unknown activation, truncated weights); nothing is written.
  @discardableResult
  public func importModel(directory: String, precision: Precision = .float32) throws -> ModelInfo {
    let encoder: SentenceEncoder
    do {
      encoder = try SentenceEncoder(
        directory: URL(fileURLWithPath: directory), precision: precision.encoderPrecision)
    } catch {
      throw VectorDBError.invalidModel(directory: directory, reason: "\(error)")
    }
    let store = models
    let weights = SafeTensors.serialize(encoder.weights)
    let hash = SHA256.hash(data: weights).map { String(format: "%02x", $0) }.joined()
    return try storage {
      try environment.write { txn in
        // The same model is the same weights and settings: the same weights with other
        // prompts, pooling or sequence length make other vectors.
        if let existing = try store.all(in: txn).first(where: {
          guard $0.weightsHash == hash, $0.kind == .encoder,
            ($0.precision ?? .float32) == precision,
            let stored = try store.blob($0.version, .settings, in: txn)
          else { return false }
          return try ModelStore.settings(stored) == encoder.settings
        }) {
          return existing
        }
        let info = try store.add(
          encoder: encoder, name: directory, state: .ready, parent: nil,
          lineage: ["precision": .string(precision.rawValue)], in: txn)
        if try txn.get(schema.meta, key: MetaKey.defaultModel) == nil {
          try txn.put(
            schema.meta, key: MetaKey.defaultModel,
            value: withUnsafeBytes(of: UInt32(info.version).littleEndian) { Array($0) })
        }
        return info
      }
    }
  }

  /// Writes encoder `version` (a fine-tuned one with its LoRA adapters merged) as a
  /// sentence-transformers model directory at `directory`, which ``importModel(directory:)``,
  /// `SentenceEncoder(directory:)` and Python's `SentenceTransformer` load back. Returns
  /// the files written, by relative path.
  ///
  /// The files are written into a directory beside `directory` and renamed into place
  /// when all are complete: a failed export leaves nothing behind.
  ///
  /// - Throws: `VectorDBError.modelNotFound`, `.modelWithoutWeights`; `.modelUnsuitable` for
  ///   a query adapter (it maps queries only; its parent is the encoder);
  ///   `.invalidInput` naming `directory` when it exists and is not an empty directory,
  ///   or a file that cannot be written (permissions, disk full).
  @discardableResult
  public func exportModel(version: Int, to directory: String) throws -> [String] {
    let info = try model(version: version)
    guard info.kind == .encoder else {
      throw VectorDBError.modelUnsuitable(
        version: version,
        reason: "is a query adapter: it maps queries only, so it has no model directory;"
          + " export its encoder, version \(info.parent ?? 0)")
    }
    let files: [String: [UInt8]]
    do {
      files = try encoder(version: version).modelDirectoryFiles()
    } catch let error as EmbeddingError {
      throw VectorDBError.modelUnsuitable(version: version, reason: "cannot be exported: \(error)")
    }
    let manager = FileManager.default
    let target = URL(fileURLWithPath: directory)
    var isDirectory: ObjCBool = false
    if manager.fileExists(atPath: directory, isDirectory: &isDirectory) {
      guard isDirectory.boolValue, try manager.contentsOfDirectory(atPath: directory).isEmpty
      else {
        throw VectorDBError.invalidInput(
          source: directory, line: nil, reason: "exists and is not an empty directory")
      }
    }
    let staging = target.deletingLastPathComponent().appendingPathComponent(
      ".\(target.lastPathComponent).partial-\(getpid())")
    do {
      try? manager.removeItem(at: staging)
      for (name, bytes) in files {
        let url = staging.appendingPathComponent(name)
        try manager.createDirectory(
          at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
      }
      // The target is absent or empty here; rmdir, unlike removeItem, never deletes
      // what another process may have put there meanwhile.
      if manager.fileExists(atPath: directory), rmdir(directory) != 0 {
        throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: directory])
      }
      try manager.moveItem(at: staging, to: target)
    } catch {
      try? manager.removeItem(at: staging)
      throw VectorDBError(wrapping: error, path: directory)
        ?? .invalidInput(source: directory, line: nil, reason: "cannot write it: \(error)")
    }
    return files.keys.sorted()
  }

  /// Adds encoder `version` at another `precision` as a new version (its parent), with
  /// the same stored weights, or returns the version that already is that conversion.
  /// Collections move to it like to any new version: `reembed` builds a new generation,
  /// so no generation ever mixes vectors of two precisions.
  ///
  /// - Throws: `VectorDBError.modelNotFound`; `.modelUnsuitable` for a query adapter or when
  ///   `version` already computes at `precision`; `.modelWithoutWeights`, `.damaged` as
  ///   ``encoder(version:)``.
  @discardableResult
  public func convertModel(version: Int, precision: Precision) throws -> ModelInfo {
    let source = try encoder(version: version)
    guard Precision(source.precision) != precision else {
      throw VectorDBError.modelUnsuitable(
        version: version, reason: "already computes in \(precision.rawValue)")
    }
    let store = models
    func conversion(in txn: Transaction) throws -> ModelInfo? {
      try store.all(in: txn).first {
        $0.parent == version && $0.kind == .encoder && $0.precision == precision
          && $0.lineage["converted_from"] == .number(Double(version))
      }
    }
    // Converted before: return it without packing the weights again.
    if let existing = try storage({ try environment.read(conversion) }) { return existing }
    var settings = source.settings
    settings.precision = precision.encoderPrecision
    let converted = try SentenceEncoder(
      settings: settings, vocabulary: source.tokenizer.vocabulary, weights: source.weights,
      source: "model version \(version) in \(path)")
    return try storage {
      try environment.write { txn in
        // Another process may have converted it meanwhile.
        if let existing = try conversion(in: txn) { return existing }
        return try store.add(
          encoder: converted, name: "v\(version) in \(precision.rawValue)", state: .ready,
          parent: version,
          lineage: [
            "converted_from": .number(Double(version)), "precision": .string(precision.rawValue),
          ], in: txn)
      }
    }
  }

  /// Every model version, oldest first.
  ///
  /// - Throws: `VectorDBError.storage`; `.damaged` for an unreadable record.
  public func modelVersions() throws -> [ModelInfo] {
    let store = models
    return try storage { try environment.read { try store.all(in: $0) } }
  }

  /// The record of model `version`.
  ///
  /// - Throws: `VectorDBError.modelNotFound`.
  public func model(version: Int) throws -> ModelInfo {
    let store = models
    return try storage {
      try environment.read { txn in
        guard let info = try store.info(version, in: txn) else {
          throw VectorDBError.modelNotFound(version)
        }
        return info
      }
    }
  }

  /// The model version new text collections use (the first imported), if any.
  ///
  /// - Throws: `VectorDBError.storage`.
  public func defaultModelVersion() throws -> Int? {
    let meta = schema.meta
    return try storage {
      try environment.read { txn in
        try txn.get(meta, key: MetaKey.defaultModel).map {
          Int($0.loadUnaligned(as: UInt32.self).littleEndian)
        }
      }
    }
  }

  /// The embedding function of model `version`: texts in, one vector per text out; with
  /// `role`, each text after the model's prompt for that role, as the retriever embeds it
  /// (see `SentenceEncoder.prompted(_:as:)`).
  ///
  /// - Throws: as `encoder(version:)`.
  public func embedder(version: Int, as role: TextRole? = nil) throws -> ([String]) -> [[Float]] {
    try encoder(version: version).embedder(as: role)
  }

  /// What encoder `version` was stored with beside its weights: configuration, tokenizer
  /// options, pooling, prompts, similarity, precision. Its weights are not read.
  ///
  /// - Throws: `VectorDBError.modelNotFound`; `.modelUnsuitable` for a query adapter;
  ///   `.damaged` when the settings are.
  public func modelSettings(version: Int) throws -> SentenceEncoder.Settings {
    let store = models
    let path = self.path
    return try storage {
      try environment.read { txn in
        var current = version
        // A LoRA version keeps only its adapters: its settings are its parent's.
        while true {
          let info = try store.encoderInfo(current, in: txn)
          if let bytes = try store.blob(current, .settings, in: txn) {
            do {
              return try ModelStore.settings(bytes)
            } catch {
              throw VectorDBError.damaged(
                path: path, detail: "model version \(current): settings: \(error)")
            }
          }
          guard let parent = info.parent else {
            throw VectorDBError.damaged(
              path: path, detail: "model version \(current) is missing its settings")
          }
          current = parent
        }
      }
    }
  }

  /// The encoder of model `version`, loaded from the database once and cached.
  ///
  /// - Throws: `VectorDBError.modelNotFound`; `.modelWithoutWeights` for a rejected
  ///   candidate whose weights were not kept; `.damaged` when its stored parts are.
  package func encoder(version: Int) throws -> SentenceEncoder {
    if let cached = encoderCache.value(version) { return cached }
    let store = models
    let path = self.path
    let images = modelImages
    let encoder = try storage {
      try environment.read { txn -> SentenceEncoder in
        let info = try store.encoderInfo(version, in: txn)
        guard info.hasWeights else { throw VectorDBError.modelWithoutWeights(version) }
        do {
          return try store.encoder(version, path: path, images: images, in: txn)
        } catch let error as VectorDBError {
          throw error
        } catch {
          throw VectorDBError.damaged(path: path, detail: "model version \(version): \(error)")
        }
      }
    }
    encoderCache.set(version, encoder)
    return encoder
  }

  /// The query adapter of model `version`, loaded once and cached.
  ///
  /// - Throws: `VectorDBError.modelNotFound`; `.modelUnsuitable` when it is an encoder.
  func queryAdapter(version: Int) throws -> QueryAdapter<Float> {
    if let cached = adapterCache.value(version) { return cached }
    let store = models
    let path = self.path
    let adapter = try storage {
      try environment.read { txn -> QueryAdapter<Float> in
        guard let info = try store.info(version, in: txn) else {
          throw VectorDBError.modelNotFound(version)
        }
        guard info.kind == .adapter else {
          throw VectorDBError.modelUnsuitable(
            version: version, reason: "is an encoder, not an adapter")
        }
        return try store.adapter(version, path: path, in: txn)
      }
    }
    adapterCache.set(version, adapter)
    return adapter
  }
}

/// A small thread-safe map from model version to something loaded from it.
final class VersionCache<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var values: [Int: Value] = [:]

  func value(_ version: Int) -> Value? { lock.withLock { values[version] } }
  func remove(_ version: Int) { _ = lock.withLock { values.removeValue(forKey: version) } }
  func set(_ version: Int, _ value: Value) {
    lock.withLock { values[version] = value }
  }
}

/// Where `tools/fetch-model.sh` puts the default model, all-MiniLM-L6-v2:
/// `$VDB_MODEL_DIR`, else `~/.cache/vdb/models/all-MiniLM-L6-v2`.
public enum DefaultModel {
  /// The default model's directory (`$VDB_MODEL_DIR`, else the cache path above).
  public static var directory: String { SentenceEncoder.defaultModelDirectory.path }

  /// Loads the model in `directory` (no database needed: `vdb embed --model DIR`) and
  /// returns its embedding function: texts in, one vector per text out.
  ///
  /// - Throws: `VectorDBError.invalidModel` naming `directory` when it cannot be loaded.
  public static func embedder(directory: String, as role: TextRole? = nil) throws
    -> ([String]) -> [[Float]]
  {
    do {
      return try SentenceEncoder(directory: URL(fileURLWithPath: directory)).embedder(as: role)
    } catch {
      throw VectorDBError.invalidModel(directory: directory, reason: "\(error)")
    }
  }

  /// Whether the model files are there.
  public static var isFetched: Bool {
    FileManager.default.fileExists(atPath: directory + "/model.safetensors")
  }
}
