import CPrefetch

#if canImport(Glibc)
  import Glibc  // links libm, which Float.squareRoot() calls in unoptimised builds
#elseif canImport(Darwin)
  import Darwin
#endif

/// SIMD distance kernels over raw float32 memory.
///
/// The vectors may live anywhere: in Swift arrays, or in an LMDB memory map where
/// values are aligned to 2 bytes only. So every load here is unaligned; on x86-64 and
/// arm64 an unaligned vector load costs the same as an aligned one.
///
/// The loops step by 32 floats with two independent `SIMD16<Float>` accumulators (so
/// consecutive multiply-adds do not wait on each other), then by 16, then finish with
/// scalars. `SIMD16<Float>` is one AVX-512 register, two AVX registers, or four
/// SSE/NEON registers, whichever the build targets.
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
/// Unoptimised (debug) builds run a plain scalar loop instead: there every SIMD lane
/// operation is a function call, which makes the SIMD loop about 300 times slower than
/// in a release build and 5 times slower than the scalar one. Both loops are tested
/// against each other in every build.
public enum Distance {
  /// The inner product `Σ aᵢ·bᵢ` of two vectors of `count` floats.
  @inlinable @inline(__always)
  public static func dot(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Float {
    #if DEBUG
      return scalarDot(a, b, count: count)
    #else
      return simdDot(a, b, count: count)
    #endif
  }

  /// The squared Euclidean distance `Σ (aᵢ − bᵢ)²` of two vectors of `count` floats.
  @inlinable @inline(__always)
  public static func squaredEuclidean(
    _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int
  ) -> Float {
    #if DEBUG
      return scalarSquaredEuclidean(a, b, count: count)
    #else
      return simdSquaredEuclidean(a, b, count: count)
    #endif
  }

  @inlinable
  static func simdDot(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Float {
    var sum0 = SIMD16<Float>()
    var sum1 = SIMD16<Float>()
    var i = 0
    while i &+ 32 <= count {
      sum0 += load16(a, i) * load16(b, i)
      sum1 += load16(a, i &+ 16) * load16(b, i &+ 16)
      i &+= 32
    }
    if i &+ 16 <= count {
      sum0 += load16(a, i) * load16(b, i)
      i &+= 16
    }
    var sum = horizontalSum(sum0 + sum1)
    while i < count {
      sum += load1(a, i) * load1(b, i)
      i &+= 1
    }
    return sum
  }

  @inlinable
  static func simdSquaredEuclidean(
    _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int
  ) -> Float {
    var sum0 = SIMD16<Float>()
    var sum1 = SIMD16<Float>()
    var i = 0
    while i &+ 32 <= count {
      let d0 = load16(a, i) - load16(b, i)
      let d1 = load16(a, i &+ 16) - load16(b, i &+ 16)
      sum0 += d0 * d0
      sum1 += d1 * d1
      i &+= 32
    }
    if i &+ 16 <= count {
      let d = load16(a, i) - load16(b, i)
      sum0 += d * d
      i &+= 16
    }
    var sum = horizontalSum(sum0 + sum1)
    while i < count {
      let d = load1(a, i) - load1(b, i)
      sum += d * d
      i &+= 1
    }
    return sum
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

  /// Hints the CPU to start loading the first cache lines of a vector that will be read
  /// soon, so that several vectors' memory loads overlap. Never faults.
  @inlinable @inline(__always)
  public static func prefetch(_ vector: UnsafeRawPointer) {
    vdb_prefetch(vector)
    vdb_prefetch(vector + 64)
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

  /// Adds the 16 lanes pairwise (4 dependent adds instead of the 15 of a left-to-right
  /// `sum()`).
  @inlinable @inline(__always)
  static func horizontalSum(_ v: SIMD16<Float>) -> Float {
    let v8 = v.lowHalf + v.highHalf
    let v4 = v8.lowHalf + v8.highHalf
    let v2 = v4.lowHalf + v4.highHalf
    return v2.x + v2.y
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
