import CKernels

/// Fused element-wise kernels over row-major float buffers.
///
/// Each kernel makes as few passes over memory as it can and allocates nothing. They
/// work on raw pointers so callers can run them on slices of preallocated workspaces;
/// `rows × width` elements must be readable (and writable for outputs) at each pointer.
/// Inputs and outputs may be the same buffer unless a parameter says otherwise.
///
/// ```swift
/// // x ← LayerNorm(x + residual) · γ + β over rows of 384
/// Kernels.addLayerNorm(rows: n, width: 384, x, residual: r, gamma: g, beta: b, epsilon: 1e-12, output: x)
/// ```
public enum Kernels {
  /// y = LayerNorm(x + residual) · γ + β, row by row.
  ///
  /// LayerNorm(v) = (v − mean(v)) / √(var(v) + ε) with the biased variance, as in
  /// PyTorch. `residual` may be nil. `output` may alias `x` (not `residual`).
  /// Training passes `normalized` (rows × width) and `inverseDeviation` (rows) to keep
  /// x̂ = (v − mean) / σ and 1/σ for the backward pass.
  public static func addLayerNorm(
    rows: Int, width: Int,
    _ x: UnsafePointer<Float>, residual: UnsafePointer<Float>?,
    gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, epsilon: Float,
    output: UnsafeMutablePointer<Float>,
    normalized: UnsafeMutablePointer<Float>? = nil,
    inverseDeviation saved: UnsafeMutablePointer<Float>? = nil
  ) {
    let vectorEnd = width & ~7
    for row in 0..<rows {
      let y = output + row * width
      let a = x + row * width
      // Pass 1: y = x + residual, and its sum.
      var sum8 = SIMD8<Float>()
      var sum: Float = 0
      if let residual {
        let r = residual + row * width
        var i = 0
        while i < vectorEnd {
          let v = load8(a + i) + load8(r + i)
          store8(v, y + i)
          sum8 += v
          i += 8
        }
        for j in vectorEnd..<width {
          y[j] = a[j] + r[j]
          sum += y[j]
        }
      } else {
        var i = 0
        while i < vectorEnd {
          let v = load8(a + i)
          store8(v, y + i)
          sum8 += v
          i += 8
        }
        for j in vectorEnd..<width {
          y[j] = a[j]
          sum += y[j]
        }
      }
      let mean = (sum + sum8.sum()) / Float(width)
      // Pass 2: the variance around the mean (two passes: stable for large means).
      var squares8 = SIMD8<Float>()
      var squares: Float = 0
      var i = 0
      while i < vectorEnd {
        let d = load8(y + i) - mean
        squares8 += d * d
        i += 8
      }
      for j in vectorEnd..<width {
        squares += (y[j] - mean) * (y[j] - mean)
      }
      let inverseDeviation =
        1 / (((squares + squares8.sum()) / Float(width)) + epsilon).squareRoot()
      // Pass 3: normalise, scale, shift.
      saved?[row] = inverseDeviation
      if let normalized {
        let n = normalized + row * width
        for j in 0..<width {
          n[j] = (y[j] - mean) * inverseDeviation
          y[j] = n[j] * gamma[j] + beta[j]
        }
        continue
      }
      i = 0
      while i < vectorEnd {
        store8((load8(y + i) - mean) * inverseDeviation * load8(gamma + i) + load8(beta + i), y + i)
        i += 8
      }
      for j in vectorEnd..<width {
        y[j] = (y[j] - mean) * inverseDeviation * gamma[j] + beta[j]
      }
    }
  }

  /// x ← GELU(x) in place, with the exact (erf) form used by BERT:
  /// GELU(x) = x · ½ · (1 + erf(x / √2)).
  public static func gelu(count: Int, _ x: UnsafeMutablePointer<Float>) {
    gelu(count: count, x, into: x)
  }

  /// y = GELU(x) (`y` may be `x`), on the widest vectors the CPU has (`vdb_gelu` in
  /// Sources/CKernels/activation.c; erf within 10⁻⁶).
  public static func gelu(
    count: Int, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>
  ) {
    vdb_gelu(Int32(count), x, y)
  }

  /// d ← d · GELU′(u), GELU′(u) = Φ(u) + u · e^(−u²/2) / √(2π): the backward of
  /// ``gelu(count:_:into:)``, on the same vectors (`vdb_gelu_backward`).
  public static func geluBackward(
    count: Int, _ u: UnsafePointer<Float>, gradient d: UnsafeMutablePointer<Float>
  ) {
    vdb_gelu_backward(Int32(count), u, d)
  }

  /// Softmax of each row over its first `validWidth` entries; the rest of the row
  /// (masked positions, such as padding) is set to 0. Rows are `stride` apart.
  ///
  /// softmax(x)ᵢ = exp(xᵢ − max x) / Σⱼ exp(xⱼ − max x), on the widest vectors the CPU
  /// has (`vdb_softmax_rows` in Sources/CKernels/activation.c; exp within 2·10⁻⁷).
  public static func softmax(
    rows: Int, width: Int, validWidth: Int? = nil, stride: Int? = nil,
    _ x: UnsafeMutablePointer<Float>
  ) {
    let valid = validWidth ?? width
    let stride = stride ?? width
    precondition(valid >= 1 && valid <= width && stride >= width, "softmax: bad widths")
    vdb_softmax_rows(Int32(rows), Int32(width), Int32(valid), Int32(stride), x)
  }

  /// One head of scaled dot-product attention over one sequence, in float32: context =
  /// softmax(q·kᵀ/√d)·v, where q, k and v are `length × headSize` with rows `stride`
  /// floats apart and context's rows are `contextStride` apart. Fused per block of query
  /// rows on the widest vectors the CPU has (`vdb_attention` in
  /// Sources/CKernels/attention.c); `scratch` holds
  /// ``attentionScratchCount(length:headSize:)`` floats.
  public static func attention(
    length: Int, headSize: Int, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
    v: UnsafePointer<Float>, stride: Int, context: UnsafeMutablePointer<Float>,
    contextStride: Int, scratch: UnsafeMutablePointer<Float>
  ) {
    vdb_attention(
      Int32(length), Int32(headSize), q, k, v, Int32(stride), context, Int32(contextStride),
      scratch)
  }

  /// Floats of scratch ``attention(length:headSize:q:k:v:stride:context:contextStride:scratch:)``
  /// needs: the packed keys and values and one block of rows' scores.
  public static func attentionScratchCount(length: Int, headSize: Int) -> Int {
    vdb_attention_scratch(Int32(length), Int32(headSize))
  }

  /// Runs `body` once at each instruction set ``gelu(count:_:into:)``,
  /// ``softmax(rows:width:validWidth:stride:_:)`` and
  /// ``attention(length:headSize:q:k:v:stride:context:contextStride:scratch:)`` can use on
  /// this CPU, narrowest first, with that set in use and its name passed in; then returns
  /// to the widest. For tests.
  package static func forEachVectorLevel(_ body: (String) throws -> Void) rethrows {
    defer { vdb_vector_set_level(-1) }
    for (level, name) in vectorLevels where vdb_vector_set_level(level) == level {
      try body(name)
    }
  }

  /// The instruction set those functions use now: the widest the CPU has, unless
  /// `VDB_VECTOR_KERNEL` (`avx2`, `plain`) asks for a fallback.
  package static var vectorLevel: String {
    let level = vdb_vector_level()
    return vectorLevels.first { $0.level == level }?.name ?? "level \(level)"
  }

  /// The vector family's levels (CKernels' shared numbering), narrowest first.
  private static let vectorLevels: [(level: Int32, name: String)] = [
    (Int32(VDB_VECTOR_PLAIN), "plain C"), (Int32(VDB_VECTOR_AVX2), "AVX2+FMA"),
    (Int32(VDB_VECTOR_AVX512), "AVX-512"),
  ]

  /// Scales each row to unit Euclidean length; an all-zero row stays zero.
  public static func l2Normalize(rows: Int, width: Int, _ x: UnsafeMutablePointer<Float>) {
    for row in 0..<rows {
      let p = x + row * width
      var squares: Float = 0
      for j in 0..<width { squares += p[j] * p[j] }
      guard squares > 0 else { continue }
      let inverse = 1 / squares.squareRoot()
      for j in 0..<width { p[j] *= inverse }
    }
  }

  /// y ← y + a · x over `count` elements.
  public static func addScaled(
    count: Int, _ a: Float, _ x: UnsafePointer<Float>, to y: UnsafeMutablePointer<Float>
  ) {
    let vectorEnd = count & ~7
    var i = 0
    while i < vectorEnd {
      store8(load8(y + i) + a * load8(x + i), y + i)
      i += 8
    }
    for j in vectorEnd..<count { y[j] += a * x[j] }
  }
}

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
  UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
