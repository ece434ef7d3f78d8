/// Elementwise functions over whole arrays: GELU, its derivative and exp. Float runs them
/// 16 lanes at a time with polynomial approximations accurate to a few units in the last place
/// (the C library's `erff` and `expf` are scalar calls and took a tenth of a training step);
/// Double calls the C library, so the gradient check compares against exact functions.
public protocol VectorMath {
  /// `g[i] = u[i]·Φ(u[i])`, `Φ(u) = ½(1 + erf(u/√2))` (exact GELU).
  static func gelu(_ u: UnsafePointer<Self>, into g: UnsafeMutablePointer<Self>, count: Int)
  /// `d[i] *= Φ(u[i]) + u[i]·exp(−u[i]²/2)/√(2π)` (GELU′).
  static func geluBackward(
    _ u: UnsafePointer<Self>, gradient d: UnsafeMutablePointer<Self>, count: Int)
  /// `x[i] = exp(x[i] − shift)`; returns the sum of the results.
  static func expShifted(_ x: UnsafeMutablePointer<Self>, count: Int, shift: Self) -> Self
}

extension Double: VectorMath {
  public static func gelu(
    _ u: UnsafePointer<Double>, into g: UnsafeMutablePointer<Double>, count: Int
  ) {
    let invSqrt2 = 1 / 2.0.squareRoot()
    for i in 0..<count { g[i] = u[i] * 0.5 * (1 + erf(u[i] * invSqrt2)) }
  }

  public static func geluBackward(
    _ u: UnsafePointer<Double>, gradient d: UnsafeMutablePointer<Double>, count: Int
  ) {
    let invSqrt2 = 1 / 2.0.squareRoot()
    let invSqrt2Pi = 1 / (2 * Double.pi).squareRoot()
    for i in 0..<count {
      let x = u[i]
      d[i] *= 0.5 * (1 + erf(x * invSqrt2)) + x * exp(-0.5 * x * x) * invSqrt2Pi
    }
  }

  public static func expShifted(_ x: UnsafeMutablePointer<Double>, count: Int, shift: Double)
    -> Double
  {
    var sum = 0.0
    for i in 0..<count {
      x[i] = exp(x[i] - shift)
      sum += x[i]
    }
    return sum
  }
}

extension Float: VectorMath {
  // The loops below are plain arithmetic with no calls and no branches, which LLVM's loop
  // vectorizer turns into SIMD code; a call to the C library's erff or expf per element
  // cannot be vectorized and took a tenth of a training step.

  /// exp by Cody–Waite range reduction, `x = n·ln2 + r` with `|r| ≤ ln2/2`, and Cephes'
  /// degree-5 polynomial for `e^r` (relative error ≈ 2e-7); `2ⁿ` is built in the exponent
  /// bits. Inputs below −87.3 give the smallest normal instead of 0.
  @inline(__always)
  static func fastExp(_ v: Float) -> Float {
    let x = Swift.min(Swift.max(v, -87.336), 88)
    // Adding 1.5·2²³ rounds x·log₂e to an integer held in the low mantissa bits.
    let magic: Float = 12_582_912
    let t = x * 1.442_695_04 + magic
    let n = t - magic
    let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4
    var p: Float = 1.987_569_15e-4
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 0.166_666_655
    p = p * r + 0.500_000_01
    let er = p * r * r + r + 1
    let exponent = Int32(bitPattern: t.bitPattern) &- 0x4B40_0000 &+ 127
    return er * Float(bitPattern: UInt32(bitPattern: exponent &<< 23))
  }

  /// erf as a rational function of degree 13/8 on [−4, 4] (erf is ±1 to float precision
  /// beyond); absolute error below 5e-7.
  @inline(__always)
  static func fastErf(_ v: Float) -> Float {
    let x = Swift.min(Swift.max(v, -4), 4)
    let x2 = x * x
    var p: Float = -2.726_142_3e-10
    p = p * x2 + 2.770_681_4e-8
    p = p * x2 - 2.101_024e-6
    p = p * x2 - 5.692_506_4e-5
    p = p * x2 - 7.349_906_3e-4
    p = p * x2 - 2.954_599_8e-3
    p = p * x2 - 1.609_603_3e-2
    var q: Float = -1.456_607_2e-5
    q = q * x2 - 2.133_740_6e-4
    q = q * x2 - 1.682_827e-3
    q = q * x2 - 7.373_329_2e-3
    q = q * x2 - 1.426_473_9e-2
    return x * p / q
  }

  public static func gelu(
    _ u: UnsafePointer<Float>, into g: UnsafeMutablePointer<Float>, count: Int
  ) {
    for i in 0..<count {
      let x = u[i]
      g[i] = x * 0.5 * (1 + fastErf(x * 0.707_106_78))
    }
  }

  public static func geluBackward(
    _ u: UnsafePointer<Float>, gradient d: UnsafeMutablePointer<Float>, count: Int
  ) {
    for i in 0..<count {
      let x = u[i]
      let cdf = 0.5 * (1 + fastErf(x * 0.707_106_78))
      let pdf = fastExp(-0.5 * x * x) * 0.398_942_28
      d[i] *= cdf + x * pdf
    }
  }

  public static func expShifted(_ x: UnsafeMutablePointer<Float>, count: Int, shift: Float)
    -> Float
  {
    for i in 0..<count { x[i] = fastExp(x[i] - shift) }
    var sum: Float = 0
    for i in 0..<count { sum += x[i] }
    return sum
  }
}
