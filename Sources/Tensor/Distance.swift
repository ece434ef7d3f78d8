import CKernels
import CPrefetch

#if canImport(Glibc)
  import Glibc  // links libm, which Float.squareRoot() calls in unoptimised builds
#elseif canImport(Darwin)
  import Darwin
#endif

/// Distance kernels over raw float32 memory.
///
/// The vectors may live anywhere: in Swift arrays, or in an LMDB memory map where
/// values are aligned to 2 bytes only, so every load is unaligned. The work is done by
/// `vdb_dot` and `vdb_squared_euclidean` (Sources/CKernels): AVX-512 or AVX2+FMA loops
/// chosen once when the library loads, so a default build (whose Swift SIMD code
/// targets SSE2) still searches at the CPU's full width.
///
/// ```swift
/// let a: [Float] = [1, 2, 3], b: [Float] = [4, 5, 6]
/// a.withUnsafeBytes { a in
///   b.withUnsafeBytes { b in
///     Distance.dot(a.baseAddress!, b.baseAddress!, count: 3)  // 32
///   }
/// }
/// ```
///
/// The plain loops `scalarDot` and `scalarSquaredEuclidean` are the definition the
/// kernels are tested against.
public enum Distance {
  /// The inner product `Σ aᵢ·bᵢ` of two vectors of `count` floats.
  @inlinable @inline(__always)
  public static func dot(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Float {
    vdb_dot(
      a.assumingMemoryBound(to: Float.self), b.assumingMemoryBound(to: Float.self), Int32(count))
  }

  /// The squared Euclidean distance `Σ (aᵢ − bᵢ)²` of two vectors of `count` floats.
  @inlinable @inline(__always)
  public static func squaredEuclidean(
    _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int
  ) -> Float {
    vdb_squared_euclidean(
      a.assumingMemoryBound(to: Float.self), b.assumingMemoryBound(to: Float.self), Int32(count))
  }

  @inlinable
  static func scalarDot(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Float {
    var sum: Float = 0
    var i = 0
    while i < count {
      sum += load1(a, i) * load1(b, i)
      i &+= 1
    }
    return sum
  }

  @inlinable
  static func scalarSquaredEuclidean(
    _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int
  ) -> Float {
    var sum: Float = 0
    var i = 0
    while i < count {
      let d = load1(a, i) - load1(b, i)
      sum += d * d
      i &+= 1
    }
    return sum
  }

  /// Hints the CPU to start loading every cache line of the `bytes` bytes at `start`
  /// (a vector that will be read soon), so that several vectors' memory loads overlap
  /// instead of missing one after another. Never faults.
  @inlinable @inline(__always)
  public static func prefetch(_ start: UnsafeRawPointer, bytes: Int) {
    var offset = 0
    while offset < bytes {
      vdb_prefetch(start + offset)
      offset &+= 64
    }
    // The line of the last byte, which the steps above miss when `start` is not at the
    // start of a line (vectors in LMDB are only 2-byte aligned).
    vdb_prefetch(start + (bytes &- 1))
  }

  /// The inner product of two equally long arrays.
  ///
  /// - Precondition: `a.count == b.count`.
  @inlinable
  public static func dot(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "dot: lengths differ (\(a.count) and \(b.count))")
    return a.withUnsafeBytes { a in
      b.withUnsafeBytes { b in dot(a.baseAddress!, b.baseAddress!, count: a.count / 4) }
    }
  }

  /// The squared Euclidean distance of two equally long arrays.
  ///
  /// - Precondition: `a.count == b.count`.
  @inlinable
  public static func squaredEuclidean(_ a: [Float], _ b: [Float]) -> Float {
    precondition(
      a.count == b.count, "squaredEuclidean: lengths differ (\(a.count) and \(b.count))")
    return a.withUnsafeBytes { a in
      b.withUnsafeBytes { b in
        squaredEuclidean(a.baseAddress!, b.baseAddress!, count: a.count / 4)
      }
    }
  }

  /// Scales `vector` in place to unit Euclidean length and returns the length it had.
  /// A zero vector is left as it is (its length, 0, tells the caller).
  @inlinable
  @discardableResult
  public static func normalize(_ vector: inout [Float]) -> Float {
    let length = dot(vector, vector).squareRoot()
    if length > 0 {
      let scale = 1 / length
      for i in vector.indices { vector[i] *= scale }
    }
    return length
  }

  @inlinable @inline(__always)
  static func load16(_ p: UnsafeRawPointer, _ index: Int) -> SIMD16<Float> {
    p.loadUnaligned(fromByteOffset: index &* 4, as: SIMD16<Float>.self)
  }

  @inlinable @inline(__always)
  static func load1(_ p: UnsafeRawPointer, _ index: Int) -> Float {
    p.loadUnaligned(fromByteOffset: index &* 4, as: Float.self)
  }
}
