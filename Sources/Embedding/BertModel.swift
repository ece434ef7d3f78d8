import Tensor

extension BertConfig {
  /// The name and shape of every weight a BERT model with this configuration needs,
  /// as named in sentence-transformers' `model.safetensors` (no `bert.` prefix).
  ///
  /// ```swift
  /// config.parameterShapes().first!   // ("embeddings.word_embeddings.weight", [30522, 384])
  /// ```
  public func parameterShapes() -> [(name: String, shape: [Int])] {
    let h = hiddenSize
    var shapes: [(name: String, shape: [Int])] = [
      ("embeddings.word_embeddings.weight", [vocabularySize, h]),
      ("embeddings.position_embeddings.weight", [maxPositions, h]),
      ("embeddings.token_type_embeddings.weight", [typeVocabularySize, h]),
      ("embeddings.LayerNorm.weight", [h]),
      ("embeddings.LayerNorm.bias", [h]),
    ]
    for layer in 0..<layerCount {
      let prefix = "encoder.layer.\(layer)."
      for projection in ["query", "key", "value"] {
        shapes.append((prefix + "attention.self.\(projection).weight", [h, h]))
        shapes.append((prefix + "attention.self.\(projection).bias", [h]))
      }
      shapes += [
        (prefix + "attention.output.dense.weight", [h, h]),
        (prefix + "attention.output.dense.bias", [h]),
        (prefix + "attention.output.LayerNorm.weight", [h]),
        (prefix + "attention.output.LayerNorm.bias", [h]),
        (prefix + "intermediate.dense.weight", [intermediateSize, h]),
        (prefix + "intermediate.dense.bias", [intermediateSize]),
        (prefix + "output.dense.weight", [h, intermediateSize]),
        (prefix + "output.dense.bias", [h]),
        (prefix + "output.LayerNorm.weight", [h]),
        (prefix + "output.LayerNorm.bias", [h]),
      ]
    }
    return shapes
  }
}

/// A float array at a fixed address, for the forward pass's hot loops.
final class FloatBuffer: @unchecked Sendable {
  let pointer: UnsafeMutablePointer<Float>
  let count: Int

  init(count: Int) {
    self.count = count
    pointer = .allocate(capacity: max(count, 1))
    pointer.initialize(repeating: 0, count: count)
  }

  convenience init(_ values: [Float]) {
    self.init(count: values.count)
    values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
  }

  /// `parts` concatenated.
  convenience init(concatenating parts: [[Float]]) {
    self.init(parts.flatMap { $0 })
  }

  var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

  deinit { pointer.deallocate() }
}

/// A BERT encoder's weights in the layout the forward pass uses, and the pass itself.
///
/// Query, key and value projections are stored stacked as one `[3H, H]` matrix so each
/// layer starts with a single gemm. Immutable after initialisation: `forward` may run
/// on several threads at once.
final class BertModel: Sendable {
  struct Layer {
    /// [3H, H]: query, key, value weights stacked; `qkvBias` [3H].
    let qkvWeight, qkvBias: FloatBuffer
    let attentionOutputWeight, attentionOutputBias: FloatBuffer
    let attentionNormGamma, attentionNormBeta: FloatBuffer
    let intermediateWeight, intermediateBias: FloatBuffer
    let outputWeight, outputBias: FloatBuffer
    let outputNormGamma, outputNormBeta: FloatBuffer
  }

  let config: BertConfig
  let wordEmbeddings, positionEmbeddings, tokenTypeEmbeddings: FloatBuffer
  let embeddingNormGamma, embeddingNormBeta: FloatBuffer
  let layers: [Layer]

  /// Takes the weights named as in ``BertConfig/parameterShapes()``; a `bert.` prefix
  /// on the names is accepted. Extra tensors (pooler, `position_ids`) are ignored.
  init(config: BertConfig, weights: [String: Tensor], source: String) throws {
    try config.validate(source: source)
    self.config = config
    let shapes = Dictionary(uniqueKeysWithValues: config.parameterShapes())
    func values(_ name: String) throws -> [Float] {
      guard let tensor = weights[name] ?? weights["bert." + name] else {
        throw EmbeddingError.missingTensor(source: source, tensor: name)
      }
      let expected = shapes[name]!
      guard tensor.shape == expected else {
        throw EmbeddingError.wrongShape(
          source: source, tensor: name, shape: tensor.shape, expected: expected)
      }
      return tensor.values
    }
    func buffer(_ name: String) throws -> FloatBuffer { FloatBuffer(try values(name)) }

    wordEmbeddings = try buffer("embeddings.word_embeddings.weight")
    positionEmbeddings = try buffer("embeddings.position_embeddings.weight")
    tokenTypeEmbeddings = try buffer("embeddings.token_type_embeddings.weight")
    embeddingNormGamma = try buffer("embeddings.LayerNorm.weight")
    embeddingNormBeta = try buffer("embeddings.LayerNorm.bias")
    layers = try (0..<config.layerCount).map { index in
      let prefix = "encoder.layer.\(index)."
      let projections = ["query", "key", "value"].map { prefix + "attention.self.\($0)" }
      return Layer(
        qkvWeight: FloatBuffer(concatenating: try projections.map { try values($0 + ".weight") }),
        qkvBias: FloatBuffer(concatenating: try projections.map { try values($0 + ".bias") }),
        attentionOutputWeight: try buffer(prefix + "attention.output.dense.weight"),
        attentionOutputBias: try buffer(prefix + "attention.output.dense.bias"),
        attentionNormGamma: try buffer(prefix + "attention.output.LayerNorm.weight"),
        attentionNormBeta: try buffer(prefix + "attention.output.LayerNorm.bias"),
        intermediateWeight: try buffer(prefix + "intermediate.dense.weight"),
        intermediateBias: try buffer(prefix + "intermediate.dense.bias"),
        outputWeight: try buffer(prefix + "output.dense.weight"),
        outputBias: try buffer(prefix + "output.dense.bias"),
        outputNormGamma: try buffer(prefix + "output.LayerNorm.weight"),
        outputNormBeta: try buffer(prefix + "output.LayerNorm.bias"))
    }
  }

  /// The weights under their safetensors names (copies).
  var namedWeights: [String: Tensor] {
    let h = config.hiddenSize
    var result: [String: Tensor] = [:]
    func put(_ name: String, _ buffer: FloatBuffer, _ range: Range<Int>? = nil) {
      let shape = config.parameterShapes().first { $0.name == name }!.shape
      let values = buffer.array
      result[name] = Tensor(shape: shape, values: range.map { Array(values[$0]) } ?? values)
    }
    put("embeddings.word_embeddings.weight", wordEmbeddings)
    put("embeddings.position_embeddings.weight", positionEmbeddings)
    put("embeddings.token_type_embeddings.weight", tokenTypeEmbeddings)
    put("embeddings.LayerNorm.weight", embeddingNormGamma)
    put("embeddings.LayerNorm.bias", embeddingNormBeta)
    for (index, layer) in layers.enumerated() {
      let prefix = "encoder.layer.\(index)."
      for (part, projection) in ["query", "key", "value"].enumerated() {
        let name = prefix + "attention.self.\(projection)"
        put(name + ".weight", layer.qkvWeight, part * h * h..<(part + 1) * h * h)
        put(name + ".bias", layer.qkvBias, part * h..<(part + 1) * h)
      }
      put(prefix + "attention.output.dense.weight", layer.attentionOutputWeight)
      put(prefix + "attention.output.dense.bias", layer.attentionOutputBias)
      put(prefix + "attention.output.LayerNorm.weight", layer.attentionNormGamma)
      put(prefix + "attention.output.LayerNorm.bias", layer.attentionNormBeta)
      put(prefix + "intermediate.dense.weight", layer.intermediateWeight)
      put(prefix + "intermediate.dense.bias", layer.intermediateBias)
      put(prefix + "output.dense.weight", layer.outputWeight)
      put(prefix + "output.dense.bias", layer.outputBias)
      put(prefix + "output.LayerNorm.weight", layer.outputNormGamma)
      put(prefix + "output.LayerNorm.bias", layer.outputNormBeta)
    }
    return result
  }

  /// Runs the encoder over `sequences` (token ids, each within the position table) and
  /// writes one pooled vector of `hiddenSize` floats per sequence to `output`.
  ///
  /// The sequences are packed end to end with no padding: every linear layer is one
  /// gemm over all their tokens, and attention runs per sequence and head on exactly
  /// its own tokens. `threads > 1` splits each step's work over that many threads;
  /// with 1, everything runs on the calling thread.
  func forward(
    _ sequences: [[Int]], pooling: SentenceEncoder.Pooling, threads: Int,
    output: UnsafeMutablePointer<Float>
  ) {
    let h = config.hiddenSize
    let intermediate = config.intermediateSize
    let offsets = sequences.reduce(into: [0]) { $0.append($0.last! + $1.count) }
    let tokenCount = offsets.last!
    let longest = sequences.map(\.count).max() ?? 0
    guard tokenCount > 0 else { return }

    let hidden = FloatBuffer(count: tokenCount * h)
    let qkv = FloatBuffer(count: tokenCount * 3 * h)
    let context = FloatBuffer(count: tokenCount * h)
    let projection = FloatBuffer(count: tokenCount * h)
    let expanded = FloatBuffer(count: tokenCount * intermediate)
    let scores = (0..<threads).map { _ in FloatBuffer(count: longest * longest) }
    let x = hidden.pointer
    let epsilon = config.layerNormEpsilon

    // Embeddings: word + position + token type 0, then LayerNorm.
    for (s, sequence) in sequences.enumerated() {
      for (position, token) in sequence.enumerated() {
        let row = x + (offsets[s] + position) * h
        row.update(from: wordEmbeddings.pointer + token * h, count: h)
        Kernels.addScaled(count: h, 1, positionEmbeddings.pointer + position * h, to: row)
        Kernels.addScaled(count: h, 1, tokenTypeEmbeddings.pointer, to: row)
      }
    }
    normalizeRows(
      tokenCount, x, residual: nil, embeddingNormGamma, embeddingNormBeta, epsilon, threads)

    for layer in layers {
      BLAS.linear(
        rows: tokenCount, inFeatures: h, outFeatures: 3 * h, input: x,
        weight: layer.qkvWeight.pointer, bias: layer.qkvBias.pointer, output: qkv.pointer,
        threads: threads)
      attention(
        qkv: qkv.pointer, context: context.pointer, sequences: sequences, offsets: offsets,
        scores: scores, threads: threads)
      BLAS.linear(
        rows: tokenCount, inFeatures: h, outFeatures: h, input: context.pointer,
        weight: layer.attentionOutputWeight.pointer, bias: layer.attentionOutputBias.pointer,
        output: projection.pointer, threads: threads)
      normalizeRows(
        tokenCount, projection.pointer, residual: x, layer.attentionNormGamma,
        layer.attentionNormBeta, epsilon, threads)
      BLAS.linear(
        rows: tokenCount, inFeatures: h, outFeatures: intermediate, input: x,
        weight: layer.intermediateWeight.pointer, bias: layer.intermediateBias.pointer,
        output: expanded.pointer, threads: threads)
      let slices = Parallel.split(tokenCount, into: threads)
      Parallel.forEach(slices.count) { i in
        Kernels.gelu(
          count: slices[i].count * intermediate,
          expanded.pointer + slices[i].lowerBound * intermediate)
      }
      BLAS.linear(
        rows: tokenCount, inFeatures: intermediate, outFeatures: h, input: expanded.pointer,
        weight: layer.outputWeight.pointer, bias: layer.outputBias.pointer,
        output: projection.pointer, threads: threads)
      normalizeRows(
        tokenCount, projection.pointer, residual: x, layer.outputNormGamma,
        layer.outputNormBeta, epsilon, threads)
    }

    // Pooling: mean over each sequence's tokens (there is no padding to mask), or the
    // first ([CLS]) token.
    for (s, sequence) in sequences.enumerated() {
      let pooled = output + s * h
      let first = x + offsets[s] * h
      pooled.update(from: first, count: h)
      if pooling == .mean {
        for row in 1..<max(1, sequence.count) {
          Kernels.addScaled(count: h, 1, first + row * h, to: pooled)
        }
        let inverse = 1 / Float(sequence.count)
        for j in 0..<h { pooled[j] *= inverse }
      }
    }
  }

  /// x ← LayerNorm(input + residual) · γ + β, where x is `residual` when there is one
  /// and `input` otherwise; rows split over `threads`.
  private func normalizeRows(
    _ rows: Int, _ input: UnsafeMutablePointer<Float>, residual: UnsafeMutablePointer<Float>?,
    _ gamma: FloatBuffer, _ beta: FloatBuffer, _ epsilon: Float, _ threads: Int
  ) {
    let h = config.hiddenSize
    let destination = residual ?? input
    let slices = Parallel.split(rows, into: threads)
    Parallel.forEach(slices.count) { i in
      let offset = slices[i].lowerBound * h
      Kernels.addLayerNorm(
        rows: slices[i].count, width: h, input + offset, residual: residual.map { $0 + offset },
        gamma: gamma.pointer, beta: beta.pointer, epsilon: epsilon,
        output: destination + offset)
    }
  }

  /// Scaled dot-product attention, per sequence and head, over the packed `qkv` rows
  /// ([query | key | value], each `hiddenSize` wide); writes `context` [tokens, H].
  ///
  /// For head h of a sequence of T tokens: S = Q·Kᵀ / √d (T × T), P = softmax(S) row
  /// by row, context[:, head h] = P·V. No mask is needed: every sequence attends to
  /// exactly its own tokens.
  private func attention(
    qkv: UnsafeMutablePointer<Float>, context: UnsafeMutablePointer<Float>,
    sequences: [[Int]], offsets: [Int], scores: [FloatBuffer], threads: Int
  ) {
    let h = config.hiddenSize
    let d = config.headSize
    let heads = config.headCount
    let scale = 1 / Float(d).squareRoot()
    let work = Parallel.split(sequences.count * heads, into: threads)
    Parallel.forEach(work.count) { part in
      let s = scores[part].pointer
      for item in work[part] {
        let (sequence, head) = item.quotientAndRemainder(dividingBy: heads)
        let length = sequences[sequence].count
        let q = qkv + offsets[sequence] * 3 * h + head * d
        BLAS.gemm(
          .none, .transposed, m: length, n: length, k: d, alpha: scale,
          a: q, lda: 3 * h, b: q + h, ldb: 3 * h, c: s, ldc: length)
        Kernels.softmax(rows: length, width: length, s)
        BLAS.gemm(
          .none, .none, m: length, n: d, k: length,
          a: s, lda: length, b: q + 2 * h, ldb: 3 * h,
          c: context + offsets[sequence] * h + head * d, ldc: h)
      }
    }
  }
}
