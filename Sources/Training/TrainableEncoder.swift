import Embedding
import Tensor

/// A BERT sentence encoder that can be trained: forward pass with activation caching, backward
/// pass for every parameter, pooling (mean or `[CLS]`, as the model's ``EncoderParameters/pooling``
/// says) and L2 normalisation: the function ``SentenceEncoder`` computes for the same weights.
///
/// Sequences are packed without padding (see ``TokenBatch``), so each attention block sees only
/// its own sequence's tokens: the attention mask is implicit and no work is spent on padding.
/// Dropout sits where BERT has it: after the embedding LayerNorm, on the attention
/// probabilities, and on the outputs of the attention and feed-forward projections.
///
/// ```swift
/// let encoder = TrainableEncoder(parameters: weights, dropout: 0.1)
/// let seeds = (0..<batch.count).map { UInt64($0) }   // one dropout stream per sequence
/// let pass = encoder.forward(batch, dropoutSeeds: seeds)
/// // … loss and d(loss)/d(embeddings) from pass.embeddings …
/// encoder.backward(pass, embeddingGradient: gradient)   // accumulates into encoder.gradients
/// ```
public final class TrainableEncoder<Scalar: TensorScalar> {
  /// The weights; the optimiser updates them in place.
  public var parameters: EncoderParameters<Scalar>
  /// d(loss)/d(parameters), accumulated by ``backward(_:embeddingGradient:)`` until
  /// ``zeroGradients()``. Same layout as ``parameters``. Rows of the word-embedding table that
  /// no batch touched since the last reset are zero and are listed nowhere: see
  /// ``touchedWordRows``.
  public internal(set) var gradients: [Scalar]
  /// Word-embedding rows with a (possibly) non-zero gradient, in order of first touch.
  public private(set) var touchedWordRows: [Int32] = []
  private var wordRowTouched: [Bool]
  /// Activation memory reused from pass to pass; trimmed after every backward pass.
  let pool = BufferPool()
  /// Drop probability used when a forward pass is given dropout seeds.
  public var dropout: Double
  /// The linear layers' weight matrices whose gradient ``backward(_:embeddingGradient:)``
  /// computes, named as in ``BertConfig/parameterShapes()``; nil (the default): all of them.
  /// A LoRA run reads only its adapted weights' gradients, so it names those: each frozen
  /// layer then skips `dW += dyᵀ·x`, half of its backward products. The gradients of the
  /// skipped weights stay zero.
  public var weightGradientsComputed: Set<String>?
  /// How the linear layers multiply, forward and backward (attention's products and
  /// everything else stay float32).
  public var matmulPrecision = MatmulPrecision.float32

  public var config: BertConfig { parameters.config }
  public var pooling: SentenceEncoder.Pooling { parameters.pooling }
  var layout: ParameterLayout { parameters.layout }

  /// Bytes of activation memory kept for reuse by later passes.
  public var cachedActivationBytes: Int { pool.cachedBytes }

  /// Bytes of activation memory held in all: in use by passes and kept for reuse.
  public var activationMemoryBytes: Int { pool.mappedBytes }

  /// Returns the activation memory kept for reuse to the system.
  public func releaseCachedMemory() { pool.drain() }

  /// A scratch matrix of `count` values from the pool; its contents are undefined.
  func scratch(_ count: Int) -> Buffer<Scalar> { Buffer(uninitializedCount: count, pool: pool) }

  public init(parameters: EncoderParameters<Scalar>, dropout: Double = 0.1) {
    precondition((0..<1).contains(dropout), "dropout must be in [0, 1), got \(dropout)")
    self.parameters = parameters
    self.dropout = dropout
    gradients = [Scalar](repeating: 0, count: parameters.layout.count)
    // One OpenBLAS thread per call and the best kernels for the CPU (see parallelGemm).
    BLAS.prepare()
    wordRowTouched = [Bool](repeating: false, count: parameters.config.vocabularySize)
  }

  /// Resets ``gradients`` to zero, visiting only the word-embedding rows that were touched.
  public func zeroGradients() {
    let h = config.hiddenSize
    let word = layout.wordEmbeddingRange
    gradients.withUnsafeMutableBufferPointer { g in
      (g.baseAddress! + word.upperBound).update(
        repeating: 0, count: layout.count - word.upperBound)
      for row in touchedWordRows {
        (g.baseAddress! + word.lowerBound + Int(row) * h).update(repeating: 0, count: h)
        wordRowTouched[Int(row)] = false
      }
    }
    touchedWordRows.removeAll(keepingCapacity: true)
  }

  /// Calls `body` with each index range of `gradients` that may be non-zero: everything but the
  /// untouched word-embedding rows, so norms and scaling cost O(touched rows), not O(vocabulary).
  private func forEachGradientRange(_ body: (UnsafeMutablePointer<Scalar>, Range<Int>) -> Void) {
    let h = config.hiddenSize
    let word = layout.wordEmbeddingRange
    gradients.withUnsafeMutableBufferPointer { g in
      body(g.baseAddress!, word.upperBound..<layout.count)
      for row in touchedWordRows {
        let start = word.lowerBound + Int(row) * h
        body(g.baseAddress!, start..<(start + h))
      }
    }
  }

  /// `‖gradients‖²`, accumulated in Double.
  public func gradientSquaredNorm() -> Double {
    var total = 0.0
    forEachGradientRange { g, range in
      var sum = 0.0
      for i in range { sum += Double(g[i]) * Double(g[i]) }
      total += sum
    }
    return total
  }

  /// Multiplies every gradient by `factor` (gradient clipping).
  public func scaleGradients(by factor: Scalar) {
    forEachGradientRange { g, range in
      for i in range { g[i] *= factor }
    }
  }

  // MARK: - Forward

  /// Embeds `batch` without keeping activations (inference, or GradCache's first pass):
  /// one L2-normalised vector of ``BertConfig/hiddenSize`` values per sequence, row after row.
  public func embed(_ batch: TokenBatch) -> [Scalar] {
    forward(batch, dropoutSeeds: nil, keepActivations: false).embeddings
  }

  /// Runs the encoder over `batch`.
  ///
  /// - Parameters:
  ///   - dropoutSeeds: nil for no dropout (inference); else one seed per sequence, and
  ///     dropout with probability ``dropout`` whose masks for sequence `i` come from a
  ///     generator seeded with `dropoutSeeds[i]`. A sequence gets the same masks whichever
  ///     batch it is in, so GradCache's second pass reproduces its first exactly.
  ///   - keepActivations: keep what ``backward(_:embeddingGradient:)`` needs; without it,
  ///     each layer's activations are freed as soon as the next layer has used them.
  public func forward(
    _ batch: TokenBatch, dropoutSeeds: [UInt64]?, keepActivations: Bool = true
  ) -> EncoderForwardPass<Scalar> {
    forward(
      batch, dropoutSeeds: dropoutSeeds, keepActivations: keepActivations,
      inputPerturbation: nil)
  }

  /// As the public `forward`, with `inputPerturbation` (tokens × hidden) added to the summed
  /// input embeddings: lets the gradient check differentiate with respect to the input.
  func forward(
    _ batch: TokenBatch, dropoutSeeds: [UInt64]?, keepActivations: Bool,
    inputPerturbation: [Scalar]?
  ) -> EncoderForwardPass<Scalar> {
    precondition(batch.count > 0, "empty batch")
    precondition(
      batch.longest <= config.maxPositions,
      "a sequence of \(batch.longest) tokens exceeds the \(config.maxPositions) positions")
    if let dropoutSeeds {
      precondition(
        dropoutSeeds.count == batch.count,
        "\(dropoutSeeds.count) dropout seeds for \(batch.count) sequences")
    }
    let p = dropoutSeeds == nil ? 0 : dropout
    let pass = EncoderForwardPass<Scalar>(batch: batch, config: config, dropout: p)
    var streams = (dropoutSeeds ?? []).map { Xoshiro256(seed: $0) }
    parameters.values.withUnsafeBufferPointer { w in
      runForward(
        pass, weights: w.baseAddress!, streams: &streams, keep: keepActivations,
        inputPerturbation: inputPerturbation)
    }
    return pass
  }

  private func runForward(
    _ pass: EncoderForwardPass<Scalar>, weights w: UnsafePointer<Scalar>,
    streams: inout [Xoshiro256], keep: Bool, inputPerturbation: [Scalar]?
  ) {
    let batch = pass.batch
    let tokens = batch.tokenCount
    let h = config.hiddenSize
    let inter = config.intermediateSize
    let epsilon = Scalar(config.layerNormEpsilon)
    let p = pass.dropout
    let tokenSegments = (0..<batch.count).map { s in
      (start: batch.offsets[s] * h, count: batch.rows(of: s).count * h)
    }
    /// Dropout on `x` in place; its mask, kept for the backward pass (nil without dropout).
    func dropout(_ x: Buffer<Scalar>) -> Buffer<UInt8>? {
      guard p > 0 else { return nil }
      let mask = Kernels.dropoutMask(
        count: tokens * h, segments: tokenSegments, streams: &streams, probability: p)
      Kernels.applyDropout(x.base, mask: mask.base, count: tokens * h, probability: p)
      return mask
    }
    /// `norm` ← LayerNorm(`x` + `residual`) with the gain and bias at those offsets.
    func layerNorm(
      _ x: Buffer<Scalar>, residual: Buffer<Scalar>?, gain: Int, bias: Int,
      into norm: NormalizedActivation<Scalar>
    ) {
      Kernels.layerNorm(
        x.base, residual: residual?.base, rows: tokens, width: h, gain: w + gain,
        bias: w + bias, epsilon: epsilon, output: norm.output.base,
        normalized: norm.normalized.base, inverseDeviation: norm.inverseDeviation.base)
    }

    // Embeddings: word + position + token type, LayerNorm, dropout.
    let summed = scratch(tokens * h)
    let word = w + layout.wordEmbeddings
    let position = w + layout.positionEmbeddings
    let tokenType = w + layout.tokenTypeEmbeddings
    for s in 0..<batch.count {
      let rows = batch.rows(of: s)
      for t in rows {
        let out = summed.base + t * h
        let wr = word + Int(batch.tokenIDs[t]) * h
        let pr = position + (t - rows.lowerBound) * h
        let tr = tokenType + Int(batch.tokenTypes[t]) * h
        for j in 0..<h { out[j] = wr[j] + pr[j] + tr[j] }
      }
    }
    if let inputPerturbation {
      for i in 0..<(tokens * h) { summed[i] += inputPerturbation[i] }
    }
    let embedded = NormalizedActivation<Scalar>(rows: tokens, width: h, allocate: scratch)
    layerNorm(
      summed, residual: nil, gain: layout.embeddingNormGain, bias: layout.embeddingNormBias,
      into: embedded)
    embedded.dropoutMask = dropout(embedded.output)
    if keep { pass.embeddingLayer = embedded }

    var hidden = embedded.output
    for l in 0..<config.layerCount {
      let offsets = layout.layers[l]
      let cache = LayerActivations<Scalar>(
        input: hidden, tokens: tokens, hidden: h, intermediate: inter, allocate: scratch)

      // Self-attention projections, one matrix product each over all tokens.
      for (weight, bias, out) in [
        (offsets.query, offsets.queryBias, cache.query),
        (offsets.key, offsets.keyBias, cache.key),
        (offsets.value, offsets.valueBias, cache.value),
      ] {
        Kernels.linear(
          hidden.base, rows: tokens, inputs: h, weight: w + weight, bias: w + bias, outputs: h,
          into: out.base, precision: matmulPrecision)
      }
      attentionForward(cache, pass: pass, streams: &streams)

      // Attention output projection, dropout, residual, LayerNorm.
      let attended = scratch(tokens * h)
      Kernels.linear(
        cache.context.base, rows: tokens, inputs: h, weight: w + offsets.attentionOutput,
        bias: w + offsets.attentionOutputBias, outputs: h, into: attended.base,
        precision: matmulPrecision)
      cache.attentionOutputMask = dropout(attended)
      layerNorm(
        attended, residual: hidden, gain: offsets.attentionNormGain,
        bias: offsets.attentionNormBias, into: cache.attentionNorm)

      // Feed-forward: dense, GELU, dense, dropout, residual, LayerNorm.
      let h1 = cache.attentionNorm.output
      Kernels.linear(
        h1.base, rows: tokens, inputs: h, weight: w + offsets.intermediate,
        bias: w + offsets.intermediateBias, outputs: inter, into: cache.preActivation.base,
        precision: matmulPrecision)
      Kernels.gelu(cache.preActivation.base, count: tokens * inter, into: cache.activation.base)
      let ffnOut = attended  // reuse: the attention residual sum is no longer needed
      Kernels.linear(
        cache.activation.base, rows: tokens, inputs: inter, weight: w + offsets.output,
        bias: w + offsets.outputBias, outputs: h, into: ffnOut.base, precision: matmulPrecision)
      cache.outputMask = dropout(ffnOut)
      layerNorm(
        ffnOut, residual: h1, gain: offsets.outputNormGain, bias: offsets.outputNormBias,
        into: cache.outputNorm)
      hidden = cache.outputNorm.output
      if keep { pass.layers.append(cache) }
    }
    pass.finalHidden = hidden
    poolAndNormalize(pass)
  }

  /// Scaled dot-product attention per sequence and head:
  /// `P = softmax(Q_h·K_hᵀ/√d)`, `context_h = dropout(P)·V_h`.
  private func attentionForward(
    _ cache: LayerActivations<Scalar>, pass: EncoderForwardPass<Scalar>,
    streams: inout [Xoshiro256]
  ) {
    let batch = pass.batch
    let h = config.hiddenSize
    let heads = config.headCount
    let d = config.headSize
    let scale = 1 / Scalar(d).squareRoot()
    let p = pass.dropout
    cache.probabilities = scratch(pass.attentionEntries)
    if p > 0 {
      let segments = (0..<batch.count).map { s in
        (
          start: pass.attentionOffsets[s],
          count: heads * batch.rows(of: s).count * batch.rows(of: s).count
        )
      }
      cache.probabilityMask = Kernels.dropoutMask(
        count: pass.attentionEntries, segments: segments, streams: &streams, probability: p)
    }
    forEachSequence(batch) { s in
      let rows = batch.rows(of: s)
      let n = rows.count
      let scratch = Buffer<Scalar>(count: p > 0 ? n * n : 0)
      for head in 0..<heads {
        let column = rows.lowerBound * h + head * d
        let probabilities = cache.probabilities.base + pass.attentionOffsets[s] + head * n * n
        Scalar.gemm(
          transposeA: false, transposeB: true, m: n, n: n, k: d, alpha: scale,
          a: cache.query.base + column, lda: h, b: cache.key.base + column, ldb: h, beta: 0,
          c: probabilities, ldc: n)
        Scalar.softmaxRows(probabilities, rows: n, width: n)
        var used = UnsafePointer(probabilities)
        if let mask = cache.probabilityMask {
          Kernels.dropout(
            probabilities, mask: mask.base + pass.attentionOffsets[s] + head * n * n,
            count: n * n, probability: p, into: scratch.base)
          used = UnsafePointer(scratch.base)
        }
        Scalar.gemm(
          transposeA: false, transposeB: false, m: n, n: d, k: n, alpha: 1, a: used, lda: n,
          b: cache.value.base + column, ldb: h, beta: 0, c: cache.context.base + column, ldc: h)
      }
    }
  }

  /// Runs `body` for every sequence of `batch`, sequences spread over the threads: a
  /// sequence's attention is a dozen products of at most 128×128 matrices, too small to split.
  private func forEachSequence(_ batch: TokenBatch, _ body: (Int) -> Void) {
    Parallel.forEach(batch.count, body)
  }

  /// Each sequence's pooled vector `p` (the mean of its token vectors, or its first token's
  /// for `[CLS]` pooling, as ``SentenceEncoder`` pools), then `e = p / max(‖p‖, 1e-12)`.
  private func poolAndNormalize(_ pass: EncoderForwardPass<Scalar>) {
    let batch = pass.batch
    let h = config.hiddenSize
    let hidden = pass.finalHidden!
    pass.pooledNorms = [Scalar](repeating: 0, count: batch.count)
    pass.embeddings = [Scalar](repeating: 0, count: batch.count * h)
    pass.embeddings.withUnsafeMutableBufferPointer { e in
      for s in 0..<batch.count {
        let rows = pooledRows(batch, s)
        let out = e.baseAddress! + s * h
        for t in rows {
          let x = hidden.base + t * h
          for j in 0..<h { out[j] += x[j] }
        }
        let inverseCount = 1 / Scalar(rows.count)
        var squares: Scalar = 0
        for j in 0..<h {
          out[j] *= inverseCount
          squares += out[j] * out[j]
        }
        let norm = max(squares.squareRoot(), 1e-12)
        pass.pooledNorms[s] = norm
        for j in 0..<h { out[j] /= norm }
      }
    }
  }

  /// The rows of sequence `s` that pooling averages: all of them, or the first for `[CLS]`.
  private func pooledRows(_ batch: TokenBatch, _ s: Int) -> Range<Int> {
    let rows = batch.rows(of: s)
    switch pooling {
    case .mean: return rows
    case .cls: return rows.lowerBound..<(rows.lowerBound + 1)
    }
  }

  // MARK: - Backward

  /// Backpropagates `embeddingGradient` (d(loss)/d(embeddings), sequences × hidden) through a
  /// pass that kept its activations, adding d(loss)/d(parameters) to ``gradients``.
  public func backward(_ pass: EncoderForwardPass<Scalar>, embeddingGradient: [Scalar]) {
    backward(pass, embeddingGradient: embeddingGradient, returningInputGradient: false)
  }

  /// As the public `backward`; when asked, also returns d(loss)/d(summed input embeddings)
  /// (tokens × hidden), the gradient the word, position and token-type rows receive.
  @discardableResult
  func backward(
    _ pass: EncoderForwardPass<Scalar>, embeddingGradient: [Scalar], returningInputGradient: Bool
  ) -> [Scalar] {
    precondition(
      pass.embeddingLayer != nil && pass.layers.count == config.layerCount,
      "backward needs a forward pass run with keepActivations: true")
    precondition(
      embeddingGradient.count == pass.batch.count * config.hiddenSize,
      "embedding gradient has \(embeddingGradient.count) values, expected "
        + "\(pass.batch.count) × \(config.hiddenSize)")
    var inputGradient: [Scalar] = []
    parameters.values.withUnsafeBufferPointer { w in
      gradients.withUnsafeMutableBufferPointer { g in
        let dInput = runBackward(
          pass, embeddingGradient: embeddingGradient, weights: w.baseAddress!,
          gradients: g.baseAddress!)
        if returningInputGradient {
          inputGradient = Array(UnsafeBufferPointer(start: dInput.base, count: dInput.count))
        }
      }
    }
    // A step ends with a backward pass: memory no pass took during it goes back to the
    // system, so a run holds about one step's activations, not one set per batch length.
    pool.trim()
    return inputGradient
  }

  private func runBackward(
    _ pass: EncoderForwardPass<Scalar>, embeddingGradient: [Scalar],
    weights w: UnsafePointer<Scalar>, gradients g: UnsafeMutablePointer<Scalar>
  ) -> Buffer<Scalar> {
    let batch = pass.batch
    let tokens = batch.tokenCount
    let h = config.hiddenSize
    let inter = config.intermediateSize
    let p = pass.dropout
    let ones = Buffer<Scalar>(count: tokens, repeating: 1)
    let computed = weightGradientsComputed.map { names in
      Set(names.map { layout.entry(named: $0)!.offset })
    }
    /// Where the gradient of the weight at `offset` goes; nil when it is not computed.
    func weightGradient(_ offset: Int) -> UnsafeMutablePointer<Scalar>? {
      computed?.contains(offset) == false ? nil : g + offset
    }

    // Normalisation and pooling: dp = (de − e·(e·de)) / ‖p‖; each of the n pooled tokens
    // gets dp / n, the others (all but [CLS] under CLS pooling) nothing.
    var dHidden = scratch(tokens * h)
    dHidden.base.update(repeating: 0, count: tokens * h)
    for s in 0..<batch.count {
      let rows = pooledRows(batch, s)
      var dot: Scalar = 0
      for j in 0..<h { dot += pass.embeddings[s * h + j] * embeddingGradient[s * h + j] }
      let factor = 1 / (pass.pooledNorms[s] * Scalar(rows.count))
      for t in rows {
        for j in 0..<h {
          let e = pass.embeddings[s * h + j]
          dHidden[t * h + j] = (embeddingGradient[s * h + j] - e * dot) * factor
        }
      }
    }

    let dScratch = scratch(tokens * h)
    let dIntermediate = scratch(tokens * inter)
    for l in stride(from: config.layerCount - 1, through: 0, by: -1) {
      let offsets = layout.layers[l]
      let cache = pass.layers[l]

      // Output LayerNorm: dHidden → d(residual sum), in place.
      let outputNorm = cache.outputNorm
      Kernels.layerNormBackward(
        outputGradient: dHidden.base, normalized: outputNorm.normalized.base,
        inverseDeviation: outputNorm.inverseDeviation.base, rows: tokens, width: h,
        gain: w + offsets.outputNormGain, inputGradient: dHidden.base,
        gainGradient: g + offsets.outputNormGain, biasGradient: g + offsets.outputNormBias)
      // The residual passes it to h1 unchanged; the dense branch sees it through dropout.
      let dResidual = dHidden
      let dBranch = dScratch
      dBranch.base.update(from: dResidual.base, count: tokens * h)
      if let mask = cache.outputMask {
        Kernels.applyDropout(dBranch.base, mask: mask.base, count: tokens * h, probability: p)
      }
      Kernels.linearBackward(
        outputGradient: dBranch.base, input: cache.activation.base, rows: tokens, inputs: inter,
        outputs: h, weight: w + offsets.output, ones: ones.base,
        inputGradient: dIntermediate.base, accumulate: false,
        weightGradient: weightGradient(offsets.output),
        biasGradient: g + offsets.outputBias, precision: matmulPrecision)
      Kernels.geluBackward(
        cache.preActivation.base, count: tokens * inter, gradient: dIntermediate.base)
      // dh1 = residual part + intermediate-dense part.
      Kernels.linearBackward(
        outputGradient: dIntermediate.base, input: cache.attentionNorm.output.base,
        rows: tokens, inputs: h, outputs: inter, weight: w + offsets.intermediate,
        ones: ones.base, inputGradient: dResidual.base, accumulate: true,
        weightGradient: weightGradient(offsets.intermediate),
        biasGradient: g + offsets.intermediateBias, precision: matmulPrecision)
      let dH1 = dResidual

      // Attention LayerNorm, residual and output projection.
      let attentionNorm = cache.attentionNorm
      Kernels.layerNormBackward(
        outputGradient: dH1.base, normalized: attentionNorm.normalized.base,
        inverseDeviation: attentionNorm.inverseDeviation.base, rows: tokens, width: h,
        gain: w + offsets.attentionNormGain, inputGradient: dH1.base,
        gainGradient: g + offsets.attentionNormGain,
        biasGradient: g + offsets.attentionNormBias)
      let dAttended = dScratch
      dAttended.base.update(from: dH1.base, count: tokens * h)
      if let mask = cache.attentionOutputMask {
        Kernels.applyDropout(dAttended.base, mask: mask.base, count: tokens * h, probability: p)
      }
      let dContext = scratch(tokens * h)
      Kernels.linearBackward(
        outputGradient: dAttended.base, input: cache.context.base, rows: tokens, inputs: h,
        outputs: h, weight: w + offsets.attentionOutput, ones: ones.base,
        inputGradient: dContext.base, accumulate: false,
        weightGradient: weightGradient(offsets.attentionOutput),
        biasGradient: g + offsets.attentionOutputBias, precision: matmulPrecision)

      // Attention core, then the Q/K/V projections into the layer input's gradient, which
      // already holds the residual part (dH1).
      let dQuery = scratch(tokens * h)
      let dKey = scratch(tokens * h)
      let dValue = dScratch
      attentionBackward(
        cache, pass: pass, contextGradient: dContext, queryGradient: dQuery, keyGradient: dKey,
        valueGradient: dValue)
      for (dProjection, weight, bias) in [
        (dQuery, offsets.query, offsets.queryBias), (dKey, offsets.key, offsets.keyBias),
        (dValue, offsets.value, offsets.valueBias),
      ] {
        Kernels.linearBackward(
          outputGradient: dProjection.base, input: cache.input.base, rows: tokens, inputs: h,
          outputs: h, weight: w + weight, ones: ones.base, inputGradient: dH1.base,
          accumulate: true, weightGradient: weightGradient(weight), biasGradient: g + bias,
          precision: matmulPrecision)
      }
      dHidden = dH1
    }

    // Embedding dropout and LayerNorm, then scatter into the three tables.
    let embedded = pass.embeddingLayer!
    if let mask = embedded.dropoutMask {
      Kernels.applyDropout(dHidden.base, mask: mask.base, count: tokens * h, probability: p)
    }
    Kernels.layerNormBackward(
      outputGradient: dHidden.base, normalized: embedded.normalized.base,
      inverseDeviation: embedded.inverseDeviation.base, rows: tokens, width: h,
      gain: w + layout.embeddingNormGain, inputGradient: dHidden.base,
      gainGradient: g + layout.embeddingNormGain, biasGradient: g + layout.embeddingNormBias)
    for s in 0..<batch.count {
      let rows = batch.rows(of: s)
      for t in rows {
        let id = Int(batch.tokenIDs[t])
        if !wordRowTouched[id] {
          wordRowTouched[id] = true
          touchedWordRows.append(Int32(id))
        }
        let dx = dHidden.base + t * h
        let dWord = g + layout.wordEmbeddings + id * h
        let dPosition = g + layout.positionEmbeddings + (t - rows.lowerBound) * h
        let dType = g + layout.tokenTypeEmbeddings + Int(batch.tokenTypes[t]) * h
        for j in 0..<h {
          dWord[j] += dx[j]
          dPosition[j] += dx[j]
          dType[j] += dx[j]
        }
      }
    }
    return dHidden
  }

  /// Backward of ``attentionForward``, per sequence and head, with `P̃ = dropout(P)`:
  /// `dV_h = P̃ᵀ·dC_h`, `dP = dropout(dC_h·V_hᵀ)`, `dS = softmax′(dP)`,
  /// `dQ_h = dS·K_h/√d`, `dK_h = dSᵀ·Q_h/√d`.
  private func attentionBackward(
    _ cache: LayerActivations<Scalar>, pass: EncoderForwardPass<Scalar>,
    contextGradient dContext: Buffer<Scalar>, queryGradient dQuery: Buffer<Scalar>,
    keyGradient dKey: Buffer<Scalar>, valueGradient dValue: Buffer<Scalar>
  ) {
    let batch = pass.batch
    let h = config.hiddenSize
    let d = config.headSize
    let scale = 1 / Scalar(d).squareRoot()
    let p = pass.dropout
    forEachSequence(batch) { s in
      let rows = batch.rows(of: s)
      let n = rows.count
      let dropped = Buffer<Scalar>(count: cache.probabilityMask == nil ? 0 : n * n)
      let dScores = Buffer<Scalar>(count: n * n)
      for head in 0..<config.headCount {
        let column = rows.lowerBound * h + head * d
        let entry = pass.attentionOffsets[s] + head * n * n
        let probabilities = UnsafePointer(cache.probabilities.base + entry)
        var used = probabilities
        if let mask = cache.probabilityMask {
          Kernels.dropout(
            probabilities, mask: mask.base + entry, count: n * n, probability: p,
            into: dropped.base)
          used = UnsafePointer(dropped.base)
        }
        Scalar.gemm(
          transposeA: true, transposeB: false, m: n, n: d, k: n, alpha: 1, a: used, lda: n,
          b: dContext.base + column, ldb: h, beta: 0, c: dValue.base + column, ldc: h)
        Scalar.gemm(
          transposeA: false, transposeB: true, m: n, n: n, k: d, alpha: 1,
          a: dContext.base + column, lda: h, b: cache.value.base + column, ldb: h, beta: 0,
          c: dScores.base, ldc: n)
        if let mask = cache.probabilityMask {
          Kernels.dropout(
            dScores.base, mask: mask.base + entry, count: n * n, probability: p,
            into: dScores.base)
        }
        Kernels.softmaxRowsBackward(
          probabilities: probabilities, gradient: dScores.base, rows: n, width: n)
        Scalar.gemm(
          transposeA: false, transposeB: false, m: n, n: d, k: n, alpha: scale,
          a: dScores.base, lda: n, b: cache.key.base + column, ldb: h, beta: 0,
          c: dQuery.base + column, ldc: h)
        Scalar.gemm(
          transposeA: true, transposeB: false, m: n, n: d, k: n, alpha: scale,
          a: dScores.base, lda: n, b: cache.query.base + column, ldb: h, beta: 0,
          c: dKey.base + column, ldc: h)
      }
    }
  }
}

/// A LayerNorm's output with what its backward pass needs (x̂ and 1/σ per row), and the
/// dropout mask applied to the output, if any (the embedding block only).
final class NormalizedActivation<Scalar: TensorScalar> {
  let output: Buffer<Scalar>
  let normalized: Buffer<Scalar>
  let inverseDeviation: Buffer<Scalar>
  var dropoutMask: Buffer<UInt8>?

  init(rows: Int, width: Int, allocate: (Int) -> Buffer<Scalar>) {
    output = allocate(rows * width)
    normalized = allocate(rows * width)
    inverseDeviation = allocate(rows)
  }

  var byteCount: Int {
    output.byteCount + normalized.byteCount + inverseDeviation.byteCount
      + (dropoutMask?.byteCount ?? 0)
  }
}

/// What one transformer layer keeps from its forward pass for the backward pass.
final class LayerActivations<Scalar: TensorScalar> {
  /// The layer's input (the previous layer's output; shared, not copied).
  let input: Buffer<Scalar>
  let query: Buffer<Scalar>, key: Buffer<Scalar>, value: Buffer<Scalar>
  /// Softmax probabilities of every sequence and head (before dropout).
  var probabilities: Buffer<Scalar>
  var probabilityMask: Buffer<UInt8>?
  /// Attention output before the output projection.
  let context: Buffer<Scalar>
  var attentionOutputMask: Buffer<UInt8>?
  let attentionNorm: NormalizedActivation<Scalar>
  /// Feed-forward pre-activation `u` and activation `GELU(u)`.
  let preActivation: Buffer<Scalar>, activation: Buffer<Scalar>
  var outputMask: Buffer<UInt8>?
  let outputNorm: NormalizedActivation<Scalar>

  init(
    input: Buffer<Scalar>, tokens: Int, hidden: Int, intermediate: Int,
    allocate: (Int) -> Buffer<Scalar>
  ) {
    self.input = input
    query = allocate(tokens * hidden)
    key = allocate(tokens * hidden)
    value = allocate(tokens * hidden)
    context = allocate(tokens * hidden)
    probabilities = allocate(0)
    attentionNorm = NormalizedActivation(rows: tokens, width: hidden, allocate: allocate)
    preActivation = allocate(tokens * intermediate)
    activation = allocate(tokens * intermediate)
    outputNorm = NormalizedActivation(rows: tokens, width: hidden, allocate: allocate)
  }

  /// Bytes held, not counting ``input`` (counted as the previous layer's output).
  var byteCount: Int {
    [query, key, value, context, probabilities, preActivation, activation]
      .reduce(0) { $0 + $1.byteCount }
      + [probabilityMask, attentionOutputMask, outputMask].reduce(0) { $0 + ($1?.byteCount ?? 0) }
      + attentionNorm.byteCount + outputNorm.byteCount
  }
}

/// The result of ``TrainableEncoder/forward(_:training:random:keepActivations:)``: the
/// sentence embeddings and, when kept, the activations the backward pass needs.
public final class EncoderForwardPass<Scalar: TensorScalar> {
  /// The batch that was encoded.
  public let batch: TokenBatch
  /// The drop probability that was applied (0 when not training).
  public let dropout: Double
  /// L2-normalised sentence embeddings, one row of `hidden` values per sequence.
  public internal(set) var embeddings: [Scalar] = []
  /// ‖mean-pooled vector‖ per sequence, before normalisation.
  var pooledNorms: [Scalar] = []
  var embeddingLayer: NormalizedActivation<Scalar>?
  var layers: [LayerActivations<Scalar>] = []
  var finalHidden: Buffer<Scalar>?
  /// Where each sequence's attention matrices (heads × n × n) start in a layer's buffer.
  let attentionOffsets: [Int]
  /// Attention matrix entries per layer over all sequences and heads.
  let attentionEntries: Int

  init(batch: TokenBatch, config: BertConfig, dropout: Double) {
    self.batch = batch
    self.dropout = dropout
    var offsets: [Int] = []
    var total = 0
    for s in 0..<batch.count {
      offsets.append(total)
      total += config.headCount * batch.rows(of: s).count * batch.rows(of: s).count
    }
    attentionOffsets = offsets
    attentionEntries = total
  }

  /// Bytes of activations this pass keeps for the backward pass (zero-ish when it kept none).
  public var activationBytes: Int {
    (embeddingLayer?.byteCount ?? 0) + layers.reduce(0) { $0 + $1.byteCount }
  }
}
