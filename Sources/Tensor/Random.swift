/// SplitMix64 (Steele, Lea & Flood): a tiny seeded generator, and its mixing function
/// as a stateless hash. The index draws node levels with `mix`; tests and benchmarks
/// use the generator for repeatable data; ``Xoshiro256`` seeds itself with it.
public struct SplitMix64: RandomNumberGenerator, Sendable {
  public var state: UInt64

  public init(seed: UInt64) { state = seed }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    return Self.mix(state)
  }

  /// The finaliser: a bijective scramble of `z`.
  @inlinable
  public static func mix(_ z: UInt64) -> UInt64 {
    var z = z
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// A small, fast, seedable random number generator (xoshiro256**, Blackman & Vigna) whose whole
/// state is four words, so a training checkpoint can store it and resume the exact stream.
///
/// ```swift
/// var rng = Xoshiro256(seed: 42)
/// let u = rng.nextUnitFloat()   // in [0, 1)
/// let saved = rng.state         // later: Xoshiro256(state: saved) continues identically
/// ```
public struct Xoshiro256: RandomNumberGenerator, Sendable, Codable, Equatable {
  /// The generator's complete state.
  public var state: [UInt64] {
    get { [s0, s1, s2, s3] }
    set {
      precondition(newValue.count == 4, "Xoshiro256 state has 4 words")
      (s0, s1, s2, s3) = (newValue[0], newValue[1], newValue[2], newValue[3])
    }
  }
  // Internal, not private, so that `next()` can be inlined into other modules' loops.
  @usableFromInline var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

  /// Seeds the four state words from `seed` with SplitMix64, as the xoshiro authors advise.
  public init(seed: UInt64) {
    var seeder = SplitMix64(seed: seed)
    s0 = seeder.next()
    s1 = seeder.next()
    s2 = seeder.next()
    s3 = seeder.next()
  }

  /// Restores a generator from ``state``.
  public init(state: [UInt64]) {
    (s0, s1, s2, s3) = (0, 0, 0, 0)
    self.state = state
  }

  @inlinable @inline(__always)
  public mutating func next() -> UInt64 {
    let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
    let t = s1 << 17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = s3 << 45 | s3 >> 19
    return result
  }

  /// A uniform value in [0, 1) with 24 random bits.
  @inlinable @inline(__always)
  public mutating func nextUnitFloat() -> Float {
    Float(next() >> 40) * 0x1p-24
  }

  /// A new generator whose stream is independent of this one's (seeded from this one's output).
  public mutating func split() -> Xoshiro256 {
    Xoshiro256(seed: next())
  }
}
