/// SplitMix64 (Steele, Lea & Flood): a tiny seeded generator, and its mixing function
/// as a stateless hash. The index draws node levels with `mix`; tests and benchmarks
/// use the generator for repeatable data.
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
