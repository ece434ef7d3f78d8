import CKernels
import Tensor

/// How the index measures the distance between two vectors. Smaller is closer.
///
/// - `cosine`: `1 − a·b` on unit-length vectors. The index normalises vectors and queries
///   to unit length itself, so cosine similarity becomes a plain dot product.
/// - `dot`: `1 − a·b` on the vectors as given (maximum inner product search). Not a
///   metric, but HNSW works well with it in practice (hnswlib's `ip` space).
/// - `l2`: the squared Euclidean distance `Σ (aᵢ − bᵢ)²`.
///
/// ```swift
/// Metric.cosine.similarity(fromDistance: 0.25)  // 0.75
/// ```
public enum Metric: String, Codable, Sendable, CaseIterable {
  case cosine
  case dot
  case l2

  /// The distance between two vectors of `dimension` floats (any alignment).
  @inlinable @inline(__always)
  public func distance(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, dimension: Int) -> Float {
    switch self {
    case .cosine, .dot: return 1 - Distance.dot(a, b, count: dimension)
    case .l2: return Distance.squaredEuclidean(a, b, count: dimension)
    }
  }

  /// The distance between two bfloat16 vectors of `dimension` components (the copies a
  /// search walks with, see ``HNSWStorage/walkVector(of:)``), summed in float32.
  @inlinable @inline(__always)
  public func walkDistance(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, dimension: Int) -> Float {
    let a = a.assumingMemoryBound(to: UInt16.self)
    let b = b.assumingMemoryBound(to: UInt16.self)
    switch self {
    case .cosine, .dot: return 1 - vdb_bf16_dot(a, b, Int32(dimension))
    case .l2: return vdb_bf16_squared_euclidean(a, b, Int32(dimension))
    }
  }

  /// The similarity a user expects from a distance of this metric: the cosine for
  /// `cosine`, the inner product for `dot`, and the negated Euclidean distance for `l2`
  /// (so that for every metric a larger value means closer).
  @inlinable
  public func similarity(fromDistance distance: Float) -> Float {
    switch self {
    case .cosine, .dot: return 1 - distance
    case .l2: return -distance.squareRoot()
    }
  }
}

extension Metric {
  /// The largest length a dot or l2 vector may have: with two such vectors a dot
  /// product (at most the product of the lengths) and a squared l2 distance (at most
  /// twice the sum of the squared lengths) stay finite in Float.
  public static let maxNorm = (Double(Float.greatestFiniteMagnitude) / 4).squareRoot()

  /// The Euclidean length of `vector`, summed in Double (no overflow, no underflow).
  public static func length(of vector: [Float]) -> Double {
    vector.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
  }
}
