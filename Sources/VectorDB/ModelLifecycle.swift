import Foundation
import LMDB

extension ModelStore {
  /// Records a rejected encoder candidate without weights: its lineage and metrics only.
  func addLineage(
    name: String, parent: ModelInfo, lineage: [String: JSONValue], in txn: WriteTransaction
  ) throws -> ModelInfo {
    try newVersion(
      name: name, kind: .encoder, state: .rejected, parent: parent.version,
      dimension: parent.dimension, maxSequenceLength: parent.maxSequenceLength, weights: [],
      lineage: lineage, in: txn)
  }

  /// Removes every stored part of `version` (settings, vocabulary, weights, adapter).
  func removeParts(_ version: Int, in txn: WriteTransaction) throws {
    guard let version = UInt32(exactly: version) else { return }
    try txn.deleteRange(blobs, ModelBlobKey.version(version))
  }
}

/// A model version and, per collection, the generations that embed with it or map
/// their queries through it: a row of `vdb models --json` and `GET /models`.
public struct ModelListing: Encodable, Sendable {
  /// The model version (its fields at the top level of the JSON row).
  public var model: ModelInfo
  /// Collection name → the generations that embed with the version or map queries through it
  /// (JSON `collections`; `{}`: unused, so `pruneModels` may delete it).
  public var collections: [String: [GenerationInfo]]
}

extension Database {
  /// Every model version, oldest first, with the generations that use it.
  ///
  /// - Throws: `.storage` when LMDB fails; `.damaged` for an unreadable record.
  public func modelListing() throws -> [ModelListing] {
    var uses: [Int: [String: [GenerationInfo]]] = [:]
    for name in try collectionNames() {
      for generation in try collection(name, create: false).generations() {
        for model in [generation.model, generation.adapter].compactMap({ $0 }) {
          uses[model, default: [:]][name, default: []].append(generation)
        }
      }
    }
    return try modelVersions().map {
      ModelListing(model: $0, collections: uses[$0.version] ?? [:])
    }
  }

  /// The versions something still needs, each with who needs it: the default model (new
  /// collections embed with it), every generation's model and query adapters (active,
  /// retained for rollback, or building), a training run's base model, and the ancestors
  /// (parents, their parents, …) of all of these.
  ///
  /// - Throws: `.storage` when LMDB fails.
  public func modelUsers() throws -> [Int: String] {
    try storage {
      try environment.read { txn in
        var users: [Int: String] = [:]
        if let bytes = try txn.get(schema.meta, key: MetaKey.defaultModel) {
          users[Int(bytes.loadUnaligned(as: UInt32.self).littleEndian)] = "the default model"
        }
        var names: [UInt32: String] = [:]
        try txn.forEach(in: schema.collections) { key, value in
          let record = try JSONDecoder().decode(CollectionRecord.self, from: Data(value))
          names[record.id] = String(decoding: key, as: UTF8.self)
          return true
        }
        try txn.forEach(in: schema.generations) { key, value in
          let generation = try JSONDecoder().decode(GenerationRecord.self, from: Data(value))
          guard generation.state != .dropped else { return true }
          let collection = names[key.loadUnaligned(as: UInt32.self).bigEndian] ?? "?"
          let user =
            "generation \(generation.id) (\(generation.state.rawValue)) of \"\(collection)\""
          if let model = generation.model { users[model] = users[model] ?? user }
          for adapter in generation.adapters ?? [] where adapter != 0 {
            users[adapter] = users[adapter] ?? user
          }
          return true
        }
        try txn.forEach(in: schema.meta) { key, value in
          let name = String(decoding: key, as: UTF8.self)
          if name.hasSuffix(".train.run"),
            let base = (try? JSONSerialization.jsonObject(with: Data(value)) as? [String: Any])?[
              "baseModel"] as? Int
          {
            users[base] = users[base] ?? "an unfinished training run"
          }
          return true
        }
        // The ancestors of what is kept: a kept adapter needs its parent encoder, and a
        // kept fine-tune's lineage names its parent.
        let parents = Dictionary(
          uniqueKeysWithValues: try schema.models.all(in: txn).map { ($0.version, $0.parent) })
        var pending = Array(users.keys)
        while let version = pending.popLast() {
          if let parent = parents[version] ?? nil, users[parent] == nil {
            users[parent] = "the parent of v\(version)"
            pending.append(parent)
          }
        }
        return users
      }
    }
  }

  /// Deletes model version `version` and all its parts (its model image too, unless
  /// another version has the same weights).
  ///
  /// ```swift
  /// try db.deleteModel(version: 4)     // a rejected candidate nobody uses
  /// ```
  ///
  /// - Throws: `VectorDBError.modelNotFound`; `.modelInUse` naming what needs it (see
  ///   `modelUsers`); `.storage` when LMDB fails. Nothing is changed then.
  public func deleteModel(version: Int) throws {
    if let user = try modelUsers()[version] {
      throw VectorDBError.modelInUse(version: version, by: user)
    }
    let store = models
    let vectors = schema.routing.vectors
    try storage {
      try environment.write { txn in
        guard try store.info(version, in: txn) != nil else {
          throw VectorDBError.modelNotFound(version)
        }
        try txn.delete(store.models, key: UInt32(version))
        try store.removeParts(version, in: txn)
        try vectors.forget(model: version, in: txn)
      }
    }
    encoderCache.remove(version)
    try sweepModelImages()
  }

  /// Deletes every model version nothing needs (see `modelUsers`), in one transaction,
  /// and the model images no remaining version has, and returns the versions deleted.
  /// With `dryRun`, deletes nothing.
  ///
  /// - Throws: `.storage` when LMDB fails (nothing is deleted then).
  @discardableResult
  public func pruneModels(dryRun: Bool = false) throws -> [Int] {
    let users = try modelUsers()
    let store = models
    let vectors = schema.routing.vectors
    let unused = try modelVersions().map(\.version).filter { users[$0] == nil }
    guard !dryRun else { return unused }
    if !unused.isEmpty {
      try storage {
        try environment.write { txn in
          for version in unused {
            try txn.delete(store.models, key: UInt32(version))
            try store.removeParts(version, in: txn)
            try vectors.forget(model: version, in: txn)
          }
        }
      }
    }
    for version in unused { encoderCache.remove(version) }
    try sweepModelImages()
    return unused
  }

  /// Removes the model images (see `ModelImages`) of weights no stored version has.
  private func sweepModelImages() throws {
    modelImages.sweep(keeping: Set(try modelVersions().map(\.weightsHash)))
  }
}
