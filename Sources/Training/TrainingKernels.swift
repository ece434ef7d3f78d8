import Tensor

/// The building blocks of the trainable encoder's forward and backward passes, generic over
/// Float and Double, over row-major matrices given as raw pointers. Each forward kernel sits
/// next to its derivative; the Float forward math is the inference kernels' (LayerNorm, GELU,
/// softmax), so training and serving compute one function.
///
/// They live in Training, not Tensor, because they are generic: called from another module a
/// generic function runs unspecialised, every operation a witness-table call (in Tensor they
/// took over half of a training step); here they are compiled for Float with their caller.
extension Kernels {
  // MARK: Linear layer  y = x·Wᵀ + b   (W stored [out, in], as PyTorch does)

  /// `y[rows×out] = x[rows×in] · Wᵀ + b`, the product at `precision` (Float only; Double
  /// multiplies in Double).
  package static func linear<S: TensorScalar>(
    _ x: UnsafePointer<S>, rows: Int, inputs: Int, weight: UnsafePointer<S>,
    bias: UnsafePointer<S>, outputs: Int, into y: UnsafeMutablePointer<S>,
    precision: MatmulPrecision = .float32
  ) {
    if precision == .bfloat16, S.self == Float.self {
      let packed = PackedWeights(
        float(weight), outFeatures: outputs, inFeatures: inputs, format: .bfloat16)
      Parallel.forEachChunk(rows, minimumPerChunk: 64) { range in
        let r = range.lowerBound
        packed.linear(
          rows: range.count, input: float(x) + r * inputs, bias: float(bias),
          output: float(y) + r * outputs, columns: 0..<outputs)
      }
      return
    }
    Parallel.forEachChunk(rows, minimumPerChunk: 64) { range in
      for r in range { (y + r * outputs).update(from: bias, count: outputs) }
    }
    BLAS.parallelGemm(
      transposeA: false, transposeB: true, m: rows, n: outputs, k: inputs, alpha: 1,
      a: x, lda: inputs, b: weight, ldb: inputs, beta: 1, c: y, ldc: outputs)
  }

  /// Backward of ``linear``: `dx = dy·W` (added to `dx` when `accumulate`), `dW += dyᵀ·x`
  /// (unless `dW` is nil: a frozen weight), `db += Σ_rows dy`. `ones` holds at least `rows`
  /// ones (the bias sum is a matrix product). The products of `dx` and `dW` at `precision`
  /// (Float only).
  package static func linearBackward<S: TensorScalar>(
    outputGradient dy: UnsafePointer<S>, input x: UnsafePointer<S>, rows: Int, inputs: Int,
    outputs: Int, weight: UnsafePointer<S>, ones: UnsafePointer<S>,
    inputGradient dx: UnsafeMutablePointer<S>?, accumulate: Bool,
    weightGradient dW: UnsafeMutablePointer<S>?, biasGradient db: UnsafeMutablePointer<S>,
    precision: MatmulPrecision = .float32
  ) {
    if precision == .bfloat16, S.self == Float.self {
      bfloat16Backward(
        dy: float(dy), x: float(x), rows: rows, inputs: inputs, outputs: outputs,
        weight: float(weight), dx: dx.map(float), accumulate: accumulate, dW: dW.map(float))
    } else {
      float32Backward(
        dy: dy, x: x, rows: rows, inputs: inputs, outputs: outputs, weight: weight, dx: dx,
        accumulate: accumulate, dW: dW)
    }
    BLAS.parallelGemm(
      transposeA: true, transposeB: false, m: outputs, n: 1, k: rows, alpha: 1,
      a: dy, lda: outputs, b: ones, ldb: 1, beta: 1, c: db, ldc: 1)
  }

  private static func float32Backward<S: TensorScalar>(
    dy: UnsafePointer<S>, x: UnsafePointer<S>, rows: Int, inputs: Int, outputs: Int,
    weight: UnsafePointer<S>, dx: UnsafeMutablePointer<S>?, accumulate: Bool,
    dW: UnsafeMutablePointer<S>?
  ) {
    if let dx {
      BLAS.parallelGemm(
        transposeA: false, transposeB: false, m: rows, n: inputs, k: outputs, alpha: 1,
        a: dy, lda: outputs, b: weight, ldb: inputs, beta: accumulate ? 1 : 0, c: dx, ldc: inputs)
    }
    if let dW {
      BLAS.parallelGemm(
        transposeA: true, transposeB: false, m: outputs, n: inputs, k: rows, alpha: 1,
        a: dy, lda: outputs, b: x, ldb: inputs, beta: 1, c: dW, ldc: inputs)
    }
  }

  /// The backward products through the bfloat16 kernel: `dx = dy · W` with W packed from its
  /// transpose, and `dW += dyᵀ · x` as "dyᵀ through the weights xᵀ": x packed from its
  /// transpose, dy read down its columns. Threads split the rows of each product.
  private static func bfloat16Backward(
    dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, inputs: Int, outputs: Int,
    weight: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, accumulate: Bool,
    dW: UnsafeMutablePointer<Float>?
  ) {
    if let dx {
      let packed = PackedWeights(
        bfloat16Transposed: weight, outFeatures: inputs, inFeatures: outputs, rowStride: inputs)
      Parallel.forEachChunk(rows, minimumPerChunk: 64) { range in
        let r = range.lowerBound
        let product = accumulate ? Buffer<Float>(uninitializedCount: range.count * inputs) : nil
        packed.linear(
          rows: range.count, input: dy + r * outputs, bias: nil,
          output: product?.base ?? dx + r * inputs, columns: 0..<inputs)
        if let product { (dx + r * inputs).add(product.base, count: range.count * inputs) }
      }
    }
    if let dW {
      let packed = PackedWeights(
        bfloat16Transposed: x, outFeatures: inputs, inFeatures: rows, rowStride: inputs)
      Parallel.forEachChunk(outputs, minimumPerChunk: 16) { range in
        let o = range.lowerBound
        let product = Buffer<Float>(uninitializedCount: range.count * inputs)
        packed.linear(
          rows: range.count, input: dy + o, rowStride: 1, inputStride: outputs, bias: nil,
          output: product.base, columns: 0..<inputs)
        (dW + o * inputs).add(product.base, count: range.count * inputs)
      }
    }
  }

  /// The same memory seen as Float, where S is Float.
  fileprivate static func float<S>(_ p: UnsafePointer<S>) -> UnsafePointer<Float> {
    UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
  }

  fileprivate static func float<S>(_ p: UnsafeMutablePointer<S>) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
  }

  // MARK: LayerNorm  y = γ·x̂ + β,  x̂ = (x − μ)·r,  r = 1/√(σ² + ε)

  /// `y = LayerNorm(x + residual)·γ + β` row by row (`residual` may be nil; `y` may alias
  /// `x`, not `residual`), keeping `x̂` and `r` for the backward pass. Float runs
  /// ``addLayerNorm(rows:width:_:residual:gamma:beta:epsilon:output:normalized:inverseDeviation:)``,
  /// the inference kernel; Double the same arithmetic in plain loops, for gradient checks.
  package static func layerNorm<S: TensorScalar>(
    _ x: UnsafePointer<S>, residual: UnsafePointer<S>?, rows: Int, width: Int,
    gain: UnsafePointer<S>, bias: UnsafePointer<S>, epsilon: S, output y: UnsafeMutablePointer<S>,
    normalized xHat: UnsafeMutablePointer<S>, inverseDeviation r: UnsafeMutablePointer<S>
  ) {
    Parallel.forEachChunk(rows, minimumPerChunk: 16) { range in
      let o = range.lowerBound * width
      if S.self == Float.self {
        addLayerNorm(
          rows: range.count, width: width, float(x + o), residual: residual.map { float($0 + o) },
          gamma: float(gain), beta: float(bias), epsilon: Float(epsilon), output: float(y + o),
          normalized: float(xHat + o), inverseDeviation: float(r + range.lowerBound))
        return
      }
      let n = S(width)
      for row in range {
        let yi = y + row * width
        let xi = x + row * width
        for j in 0..<width { yi[j] = xi[j] + (residual?[row * width + j] ?? 0) }
        var mean: S = 0
        for j in 0..<width { mean += yi[j] }
        mean /= n
        var variance: S = 0
        for j in 0..<width {
          let d = yi[j] - mean
          variance += d * d
        }
        let inverse = 1 / (variance / n + epsilon).squareRoot()
        r[row] = inverse
        let hi = xHat + row * width
        for j in 0..<width {
          let h = (yi[j] - mean) * inverse
          hi[j] = h
          yi[j] = gain[j] * h + bias[j]
        }
      }
    }
  }

  /// Backward of ``layerNorm``:
  /// `dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂⊙x̂))` with `dx̂ = dy⊙γ`; `dγ += Σ dy⊙x̂`, `dβ += Σ dy`.
  /// `dx` may alias `dy`.
  package static func layerNormBackward<S: TensorScalar>(
    outputGradient dy: UnsafePointer<S>, normalized xHat: UnsafePointer<S>,
    inverseDeviation r: UnsafePointer<S>, rows: Int, width: Int, gain: UnsafePointer<S>,
    inputGradient dx: UnsafeMutablePointer<S>, gainGradient dGain: UnsafeMutablePointer<S>,
    biasGradient dBias: UnsafeMutablePointer<S>
  ) {
    let chunks = Parallel.chunkCount(rows, minimumPerChunk: 16)
    // Per-chunk partial sums of dγ and dβ, added up at the end: no sharing between threads.
    let partial = Buffer<S>(count: chunks * 2 * width)
    let n = S(width)
    Parallel.forEachChunk(rows, chunks: chunks) { chunk, range in
      let pGain = partial.base + chunk * 2 * width
      let pBias = pGain + width
      for row in range {
        let dyi = dy + row * width
        let hi = xHat + row * width
        var meanD: S = 0
        var meanDH: S = 0
        for j in 0..<width {
          let g = dyi[j]
          pGain[j] += g * hi[j]
          pBias[j] += g
          let d = g * gain[j]
          meanD += d
          meanDH += d * hi[j]
        }
        meanD /= n
        meanDH /= n
        let dxi = dx + row * width
        let ri = r[row]
        for j in 0..<width {
          dxi[j] = ri * (dyi[j] * gain[j] - meanD - hi[j] * meanDH)
        }
      }
    }
    for chunk in 0..<chunks {
      let pGain = partial.base + chunk * 2 * width
      for j in 0..<width {
        dGain[j] += pGain[j]
        dBias[j] += pGain[width + j]
      }
    }
  }

  // MARK: GELU (exact)  g(u) = u·Φ(u),  g'(u) = Φ(u) + u·φ(u)

  /// `g = u·Φ(u)` with `Φ(u) = ½(1 + erf(u/√2))`.
  package static func gelu<S: TensorScalar>(
    _ u: UnsafePointer<S>, count: Int, into g: UnsafeMutablePointer<S>
  ) {
    Parallel.forEachChunk(count, minimumPerChunk: 4096) { range in
      S.gelu(u + range.lowerBound, into: g + range.lowerBound, count: range.count)
    }
  }

  /// In place `d ← d · g'(u)` with `g'(u) = Φ(u) + u·exp(−u²/2)/√(2π)`.
  package static func geluBackward<S: TensorScalar>(
    _ u: UnsafePointer<S>, count: Int, gradient d: UnsafeMutablePointer<S>
  ) {
    Parallel.forEachChunk(count, minimumPerChunk: 4096) { range in
      S.geluBackward(u + range.lowerBound, gradient: d + range.lowerBound, count: range.count)
    }
  }

  // MARK: Softmax over rows (forward: TensorScalar.softmaxRows)

  /// Backward of a row softmax: `ds_j = p_j·(dp_j − Σ_k dp_k·p_k)`, in place over `dp`.
  @inline(__always)
  package static func softmaxRowsBackward<S: TensorScalar>(
    probabilities p: UnsafePointer<S>, gradient dp: UnsafeMutablePointer<S>, rows: Int,
    width: Int
  ) {
    for row in 0..<rows {
      let pi = p + row * width
      let di = dp + row * width
      var dot: S = 0
      for j in 0..<width { dot += pi[j] * di[j] }
      for j in 0..<width { di[j] = pi[j] * (di[j] - dot) }
    }
  }

  // MARK: Dropout  y = x·m/(1 − p),  m ~ Bernoulli(1 − p)

  /// Draws a keep-mask (1 keep, 0 drop) with drop probability `p`, made of `segments`
  /// (start, count), which cover `0..<count`; segment `i` is drawn from `streams[i]`. One
  /// stream per sequence makes the masks a sequence gets independent of how sequences are
  /// grouped into batches.
  package static func dropoutMask(
    count: Int, segments: [(start: Int, count: Int)], streams: inout [Xoshiro256],
    probability p: Double
  ) -> Buffer<UInt8> {
    precondition(segments.reduce(0) { $0 + $1.count } == count, "segments must cover the mask")
    let mask = Buffer<UInt8>(uninitializedCount: count)
    // Each 64-bit draw decides four entries: 16 random bits against p·2¹⁶ (p = 0.1 becomes
    // 0.100006), a quarter of the generator calls of one draw per entry. Every entry is
    // written, without a branch: drops are random, so a branch would be mispredicted.
    let threshold = UInt64((p * 65_536).rounded())
    streams.withUnsafeMutableBufferPointer { streams in
      Parallel.forEachChunk(segments.count, minimumPerChunk: 4) { range in
        for i in range {
          let (start, length) = segments[i]
          var j = start
          let end = start + length
          while j < end {
            let bits = streams[i].next()
            let n = min(4, end - j)
            for k in 0..<n { mask[j + k] = (bits >> UInt64(16 * k)) & 0xffff < threshold ? 0 : 1 }
            j += n
          }
        }
      }
    }
    return mask
  }

  /// `y ← x · m / (1 − p)` on one thread (`y` may be `x`). Multiplying by the mask rather
  /// than choosing by it lets the loop run on vectors; a dropped entry becomes ±0.
  package static func dropout<S: TensorScalar>(
    _ x: UnsafePointer<S>, mask: UnsafePointer<UInt8>, count: Int, probability p: Double,
    into y: UnsafeMutablePointer<S>
  ) {
    let keepScale = 1 / S(1 - p)
    for i in 0..<count { y[i] = x[i] * (S(mask[i]) * keepScale) }
  }

  /// `x ← x · m / (1 − p)` on every core; also the backward, since the map is linear and
  /// diagonal.
  package static func applyDropout<S: TensorScalar>(
    _ x: UnsafeMutablePointer<S>, mask: UnsafePointer<UInt8>, count: Int, probability p: Double
  ) {
    Parallel.forEachChunk(count, minimumPerChunk: 4096) { range in
      dropout(
        x + range.lowerBound, mask: mask + range.lowerBound, count: range.count, probability: p,
        into: x + range.lowerBound)
    }
  }

  // MARK: Elementwise helpers

  /// `y += x`.
  package static func add<S: TensorScalar>(
    _ x: UnsafePointer<S>, into y: UnsafeMutablePointer<S>, count: Int
  ) {
    Parallel.forEachChunk(count, minimumPerChunk: 8192) { range in
      for i in range { y[i] += x[i] }
    }
  }
}

extension UnsafeMutablePointer<Float> {
  /// `self[i] += x[i]` for i < `count`, on the calling thread.
  fileprivate func add(_ x: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { self[i] += x[i] }
  }
}

/// How a training pass multiplies its linear layers' matrices: forward, `dx` and `dW`.
public enum MatmulPrecision: String, Sendable, Codable, CaseIterable {
  /// float32 operands and sums (OpenBLAS sgemm): a `TrainableEncoder`'s default (the
  /// database's default is ``automatic``).
  case float32
  /// Operands rounded to bfloat16 and products summed in float32 (the encoder's bfloat16
  /// kernel), as PyTorch's bfloat16 autocast multiplies: the weights, their gradients and
  /// the optimiser stay float32, and so do attention's products. Fast where the CPU has AMX
  /// or AVX-512 BF16; elsewhere the values are widened in registers and it is no faster.
  case bfloat16

  /// bfloat16 where the CPU multiplies it natively (AMX or AVX-512 BF16), else float32.
  public static var automatic: MatmulPrecision {
    let level = PackedWeights.KernelLevel.current(.bfloat16)
    return level.rawValue >= PackedWeights.KernelLevel.avx512.rawValue ? .bfloat16 : .float32
  }
}
