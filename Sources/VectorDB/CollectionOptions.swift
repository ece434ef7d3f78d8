import Embedding
import Foundation
import HNSW
import LMDB

/// How a new collection turns documents into vectors.
///
///     CollectionOptions()                                          // the default model
///     CollectionOptions(vectors: .model(version: 3))               // a given model version
///     CollectionOptions.vectors(dimension: 128, metric: .l2)       // vectors given by you
///     CollectionOptions(vectors: .none)                            // documents only
public struct CollectionOptions: Sendable {
  /// Where a collection's vectors come from.
  public enum Vectors: Sendable {
    /// Text is embedded by this model version (nil: the database's default model;
    /// documents only when the database has no model).
    case model(version: Int?)
    /// The caller gives a vector with every document (`upsert(_:vectors:)`).
    case given(dimension: Int, metric: Metric)
    /// No vectors, no index: a document store.
    case none
  }

  /// Where the vectors come from (default: the database's default model).
  public var vectors: Vectors
  /// How text embeddings are compared; nil: as the model says (its `similarity_fn_name`;
  /// cosine for all-MiniLM-L6-v2 and any model that names none). Given vectors carry
  /// their own metric in ``Vectors/given(dimension:metric:)``.
  public var metric: Metric?
  /// HNSW construction parameters (M, efConstruction; see docs/index.md).
  public var index: HNSWParameters
  /// Keep a full-text index for keyword search (docs/search.md). Collections of given
  /// vectors never have one.
  public var textIndex = true

  /// Options for a new collection; the defaults embed text with the database's default model,
  /// compare as the model says (cosine unless it names another), and keep a full-text index.
  public init(
    vectors: Vectors = .model(version: nil), metric: Metric? = nil,
    index: HNSWParameters = HNSWParameters(), textIndex: Bool = true
  ) {
    self.vectors = vectors
    self.metric = metric
    self.index = index
    self.textIndex = textIndex
  }

  /// A collection of vectors given by the caller.
  public static func vectors(
    dimension: Int, metric: Metric, index: HNSWParameters = HNSWParameters()
  ) -> Self {
    CollectionOptions(
      vectors: .given(dimension: dimension, metric: metric), metric: metric, index: index)
  }
}

/// The distance of a collection's vectors (from the index module).
public typealias Metric = HNSW.Metric

extension Metric {
  /// The metric that ranks as a model's similarity does (Euclidean distance by its
  /// square).
  public init(_ similarity: SentenceEncoder.Similarity) {
    switch similarity {
    case .cosine: self = .cosine
    case .dot: self = .dot
    case .euclidean: self = .l2
    }
  }
}
/// HNSW construction parameters: `m` links per node and `efConstruction`, the search width
/// while inserting (from the index module; docs/index.md).
public typealias HNSWParameters = HNSW.HNSWParameters

/// Open `VectorIndex` handles by table name (they keep reader caches worth keeping).
final class IndexCache: @unchecked Sendable {
  private let lock = NSLock()
  private var indexes: [String: VectorIndex] = [:]

  /// Opens index `name`; when it does not exist, creates it with `create` settings
  /// (or fails when `create` is nil). Must run outside any write transaction.
  func open(_ name: String, environment: Environment, create settings: VectorSettings?) throws
    -> VectorIndex
  {
    if let index = lock.withLock({ indexes[name] }) { return index }
    let index: VectorIndex
    do {
      index = try VectorIndex.open(name, in: environment)
    } catch VectorIndexError.notFound where settings != nil {
      do {
        index = try VectorIndex.create(
          name, in: environment, dimension: settings!.dimension, metric: settings!.metric,
          parameters: settings!.index)
      } catch VectorIndexError.alreadyExists {
        index = try VectorIndex.open(name, in: environment)
      }
    }
    // Two threads that opened the index at once keep the first handle, so that every
    // caller shares one.
    return lock.withLock {
      if let first = indexes[name] { return first }
      indexes[name] = index
      return index
    }
  }

  func forget(_ name: String) {
    _ = lock.withLock { indexes.removeValue(forKey: name) }
  }
}
