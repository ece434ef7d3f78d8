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

/// A BERT encoder's weights in the layout the forward pass uses, and the pass itself.
///
/// The query, key and value projections are stored as one `[3H, H]` matrix whose rows
/// are grouped by head — head 0's query, key and value rows, then head 1's, and so
/// on — so one gemm computes all three, and any range of heads is a contiguous slice
/// of the weights and of each output row: threads can split a layer by heads.
/// Immutable after initialisation: `forward` may run on several threads at once.
final class BertModel: Sendable {
  /// A fully connected layer: W `[out, in]` and b `[out]` in float32 (the weights as
  /// given), and W packed in bfloat16, int8 or w8a8 when the model runs at that precision.
  struct Linear {
    let weight, bias: Buffer<Float>
    let packed: PackedWeights?

    init(weight: Buffer<Float>, bias: Buffer<Float>, precision: SentenceEncoder.Precision) {
      self.weight = weight
      self.bias = bias
      packed = precision.packedFormat.map {
        PackedWeights(
          weight.base, outFeatures: bias.count, inFeatures: weight.count / bias.count, format: $0)
      }
    }

    /// Output columns `columns` of y = x · Wᵀ + b over `rows` rows.
    func callAsFunction(
      _ rows: Int, input x: UnsafePointer<Float>, output y: UnsafeMutablePointer<Float>,
      columns: Range<Int>
    ) {
      if let packed {
        packed.linear(rows: rows, input: x, bias: bias.base, output: y, columns: columns)
      } else {
        BLAS.linear(
          rows: rows, inFeatures: weight.count / bias.count, outFeatures: bias.count, input: x,
          weight: weight.base, bias: bias.base, output: y, columns: columns)
      }
    }
  }

  struct Layer {
    /// W [3H, H], rows grouped by head as [query | key | value] × head; b [3H].
    let qkv: Linear
    let attentionOutput: Linear
    let attentionNormGamma, attentionNormBeta: Buffer<Float>
    let intermediate: Linear
    let output: Linear
    let outputNormGamma, outputNormBeta: Buffer<Float>
  }

  let config: BertConfig
  let precision: SentenceEncoder.Precision
  let wordEmbeddings, positionEmbeddings, tokenTypeEmbeddings: Buffer<Float>
  let embeddingNormGamma, embeddingNormBeta: Buffer<Float>
  let layers: [Layer]

  /// The arena the weights live in: filled by this model, or mapped from a model image.
  let arena: Arena
  /// A fingerprint of where each weight lies in ``arena`` (name, offset, count): a model
  /// image records it, so an image laid out by another version of this code is refused
  /// instead of misread.
  let layout: UInt64

  /// Takes the weights named as in ``BertConfig/parameterShapes()``; a `bert.` prefix
  /// on the names is accepted. Extra tensors (pooler, `position_ids`) are ignored.
  /// Each tensor is read where it lies and copied once, into this model's layout.
  ///
  /// - Throws: ``EmbeddingError/invalidConfiguration(source:reason:)`` when the
  ///   configuration is impossible or claims more (or fewer) layers than the weights hold,
  ///   ``EmbeddingError/missingTensor(source:tensor:)``,
  ///   ``EmbeddingError/wrongShape(source:tensor:shape:expected:)`` and
  ///   ``EmbeddingError/nonFiniteWeight(source:tensor:index:)`` for unusable weights.
  convenience init(
    config: BertConfig, weights: some WeightSource, precision: SentenceEncoder.Precision,
    source: String
  ) throws {
    try config.validate(source: source)
    try Self.checkLayerCount(config, names: weights.tensorNames, source: source)
    // Bounded now: every size is checked against a tensor the weights really hold.
    let shapes = Dictionary(uniqueKeysWithValues: config.parameterShapes())
    /// Calls `body` with the values of tensor `name` once its shape is checked; `body`
    /// copies them out, and returns false when one is not finite.
    func withChecked(_ name: String, _ body: (UnsafeBufferPointer<Float>) -> Bool) throws {
      func read(_ shape: [Int], _ values: UnsafeBufferPointer<Float>) throws {
        let expected = shapes[name]!
        guard shape == expected else {
          throw EmbeddingError.wrongShape(
            source: source, tensor: name, shape: shape, expected: expected)
        }
        guard body(values) else {
          throw EmbeddingError.nonFiniteWeight(
            source: source, tensor: name, index: values.firstIndex { !$0.isFinite } ?? 0)
        }
      }
      guard try weights.withTensor(name, read) ?? weights.withTensor("bert." + name, read) != nil
      else { throw EmbeddingError.missingTensor(source: source, tensor: name) }
    }
    // Every tensor's presence and shape first: only then is memory sized by the
    // configuration allocated.
    for (name, _) in config.parameterShapes() { try withChecked(name) { _ in true } }
    try self.init(
      config: config, arena: Arena(bytes: Self.arenaBytes(config)), precision: precision,
      fill: withChecked)
  }

  /// The model whose weights are already in `image`, an arena laid out as this code lays
  /// out `config`'s (see ``ModelImage``).
  ///
  /// - Throws: ``EmbeddingError/invalidConfiguration(source:reason:)`` for an impossible
  ///   configuration, ``EmbeddingError/invalidImage(path:reason:)`` when the image's size
  ///   or layout is not this configuration's.
  convenience init(
    config: BertConfig, image: Arena, layout: UInt64, precision: SentenceEncoder.Precision,
    source: String
  ) throws {
    try config.validate(source: source)
    guard image.size == Self.arenaBytes(config) else {
      throw EmbeddingError.invalidImage(
        path: source,
        reason: "\(image.size) bytes of weights; the configuration needs \(Self.arenaBytes(config))"
      )
    }
    try self.init(config: config, arena: image, precision: precision, fill: nil)
    guard self.layout == layout else {
      throw EmbeddingError.invalidImage(
        path: source, reason: "laid out by another version of vdb")
    }
  }

  /// Mixed into ``layout``. **Raise it when the order of a tensor's values inside its
  /// buffer changes** (e.g. how query, key and value rows interleave): the fingerprint
  /// sees names, offsets and sizes, not that order, and model images written before would
  /// be misread.
  private static let layoutRevision: UInt64 = 1

  /// The bytes of the arena that holds the weights of `config`.
  static func arenaBytes(_ config: BertConfig) -> Int {
    Arena.bytes(
      forBuffersOf: config.parameterShapes().map { Tensor.elementCount(of: $0.shape) },
      stride: MemoryLayout<Float>.stride)
  }

  /// Carves every weight from `arena` in one fixed order; `fill`, when given, reads a
  /// tensor by name and copies it through the function it is passed, which lays it out
  /// (and returns false on a value that is not finite). Without `fill` the arena already
  /// holds the weights.
  private init(
    config: BertConfig, arena: Arena, precision: SentenceEncoder.Precision,
    fill: ((String, (UnsafeBufferPointer<Float>) -> Bool) throws -> Void)?
  ) throws {
    self.config = config
    self.precision = precision
    self.arena = arena
    let shapes = Dictionary(uniqueKeysWithValues: config.parameterShapes())
    var layout = FNV1a(seed: Self.layoutRevision)
    let origin = arena.bytes.baseAddress!
    func carve(_ names: [String]) -> Buffer<Float> {
      let counts = names.map { Tensor.elementCount(of: shapes[$0]!) }
      let buffer = Buffer<Float>(uninitializedCount: counts.reduce(0, +), arena: arena)
      for name in names { layout.mix(bytes: name.utf8) }
      layout.mix(UInt64(UnsafeRawPointer(buffer.base) - origin))
      layout.mix(UInt64(buffer.count))
      return buffer
    }
    func buffer(_ name: String) throws -> Buffer<Float> {
      let buffer = carve([name])
      try fill?(name) { Self.copyFinite($0, to: buffer.base) }
      return buffer
    }
    /// Query, key and value parameters interleaved head by head, `width` floats per row:
    /// head h's rows of part p go to block 3h + p.
    func stackedByHead(_ names: [String], width: Int) throws -> Buffer<Float> {
      let block = config.headSize * width
      let stacked = carve(names)
      for (part, name) in names.enumerated() {
        try fill?(name) { values in
          var finite = true
          for head in 0..<config.headCount {
            let slice = UnsafeBufferPointer(rebasing: values[head * block..<(head + 1) * block])
            let offset = (names.count * head + part) * block
            finite = Self.copyFinite(slice, to: stacked.base + offset) && finite
          }
          return finite
        }
      }
      return stacked
    }

    wordEmbeddings = try buffer("embeddings.word_embeddings.weight")
    positionEmbeddings = try buffer("embeddings.position_embeddings.weight")
    tokenTypeEmbeddings = try buffer("embeddings.token_type_embeddings.weight")
    embeddingNormGamma = try buffer("embeddings.LayerNorm.weight")
    embeddingNormBeta = try buffer("embeddings.LayerNorm.bias")
    layers = try (0..<config.layerCount).map { index in
      let prefix = "encoder.layer.\(index)."
      let projections = ["query", "key", "value"].map { prefix + "attention.self.\($0)" }
      func linear(_ name: String) throws -> Linear {
        Linear(
          weight: try buffer(name + ".weight"), bias: try buffer(name + ".bias"),
          precision: precision)
      }
      return Layer(
        qkv: Linear(
          weight: try stackedByHead(projections.map { $0 + ".weight" }, width: config.hiddenSize),
          bias: try stackedByHead(projections.map { $0 + ".bias" }, width: 1),
          precision: precision),
        attentionOutput: try linear(prefix + "attention.output.dense"),
        attentionNormGamma: try buffer(prefix + "attention.output.LayerNorm.weight"),
        attentionNormBeta: try buffer(prefix + "attention.output.LayerNorm.bias"),
        intermediate: try linear(prefix + "intermediate.dense"),
        output: try linear(prefix + "output.dense"),
        outputNormGamma: try buffer(prefix + "output.LayerNorm.weight"),
        outputNormBeta: try buffer(prefix + "output.LayerNorm.bias"))
    }
    self.layout = layout.value
  }

  /// Copies `values` to `destination`; false when one of them is NaN or infinite.
  /// One branch-free pass (it vectorises): loading a model is mostly this copy, and the
  /// kernel zeroing each fresh page it writes, so a large tensor is copied on every core.
  private static func copyFinite(
    _ values: UnsafeBufferPointer<Float>, to destination: UnsafeMutablePointer<Float>
  ) -> Bool {
    guard values.count >= 1 << 19 else { return copyFiniteChunk(values, to: destination) }
    let ranges = Parallel.split(values.count, into: Parallel.coreCount, multipleOf: 1 << 12)
    var finite = [Bool](repeating: false, count: ranges.count)
    finite.withUnsafeMutableBufferPointer { finite in
      Parallel.forEach(ranges.count) { part in
        let range = ranges[part]
        finite[part] = copyFiniteChunk(
          UnsafeBufferPointer(rebasing: values[range]), to: destination + range.lowerBound)
      }
    }
    return !finite.contains(false)
  }

  private static func copyFiniteChunk(
    _ values: UnsafeBufferPointer<Float>, to destination: UnsafeMutablePointer<Float>
  ) -> Bool {
    let exponent: UInt32 = 0x7f80_0000
    var special: UInt32 = 0
    for index in values.indices {
      let value = values[index]
      destination[index] = value
      special |= (value.bitPattern & exponent) == exponent ? 1 : 0
    }
    return special == 0
  }

  /// Fails unless `weights` hold exactly the layers `encoder.layer.0 …` that
  /// `num_hidden_layers` claims: checked before anything sized by the configuration is
  /// built, so a `config.json` claiming 10⁹ layers is an error, not a 10⁹-entry table.
  private static func checkLayerCount(
    _ config: BertConfig, names: [String], source: String
  ) throws {
    var layers = Set<Int>()
    for name in names {
      let local = name.hasPrefix("bert.") ? name.dropFirst(5) : Substring(name)
      guard local.hasPrefix("encoder.layer.") else { continue }
      let number = local.dropFirst("encoder.layer.".count).prefix { $0.isASCII && $0.isNumber }
      if let layer = Int(number) { layers.insert(layer) }
    }
    guard layers.count == config.layerCount, layers.allSatisfy({ $0 < config.layerCount }) else {
      throw EmbeddingError.invalidConfiguration(
        source: source,
        reason: "config.json says num_hidden_layers \(config.layerCount) but the weights hold"
          + " \(layers.count) layers (encoder.layer.N tensors)")
    }
  }

  /// The weights under their safetensors names (copies).
  var namedWeights: [String: Tensor] {
    let shapes = Dictionary(uniqueKeysWithValues: config.parameterShapes())
    var result: [String: Tensor] = [:]
    func put(_ name: String, _ values: [Float]) {
      result[name] = Tensor(shape: shapes[name]!, values: values)
    }
    /// Part `part` (0 query, 1 key, 2 value) of head-interleaved rows of `width` floats.
    func unstacked(_ buffer: Buffer<Float>, part: Int, width: Int) -> [Float] {
      let block = config.headSize * width
      let all = buffer.array
      return (0..<config.headCount).flatMap { head in
        all[(3 * head + part) * block..<(3 * head + part + 1) * block]
      }
    }
    put("embeddings.word_embeddings.weight", wordEmbeddings.array)
    put("embeddings.position_embeddings.weight", positionEmbeddings.array)
    put("embeddings.token_type_embeddings.weight", tokenTypeEmbeddings.array)
    put("embeddings.LayerNorm.weight", embeddingNormGamma.array)
    put("embeddings.LayerNorm.bias", embeddingNormBeta.array)
    for (index, layer) in layers.enumerated() {
      let prefix = "encoder.layer.\(index)."
      for (part, projection) in ["query", "key", "value"].enumerated() {
        let name = prefix + "attention.self.\(projection)"
        put(name + ".weight", unstacked(layer.qkv.weight, part: part, width: config.hiddenSize))
        put(name + ".bias", unstacked(layer.qkv.bias, part: part, width: 1))
      }
      put(prefix + "attention.output.dense.weight", layer.attentionOutput.weight.array)
      put(prefix + "attention.output.dense.bias", layer.attentionOutput.bias.array)
      put(prefix + "attention.output.LayerNorm.weight", layer.attentionNormGamma.array)
      put(prefix + "attention.output.LayerNorm.bias", layer.attentionNormBeta.array)
      put(prefix + "intermediate.dense.weight", layer.intermediate.weight.array)
      put(prefix + "intermediate.dense.bias", layer.intermediate.bias.array)
      put(prefix + "output.dense.weight", layer.output.weight.array)
      put(prefix + "output.dense.bias", layer.output.bias.array)
      put(prefix + "output.LayerNorm.weight", layer.outputNormGamma.array)
      put(prefix + "output.LayerNorm.bias", layer.outputNormBeta.array)
    }
    return result
  }

  /// Scratch memory for forward passes of up to `tokens` tokens in all, no sequence
  /// longer than `longest`, split over `threads` threads. One per concurrent pass.
  final class Workspace {
    let tokens: Int
    let longest: Int
    let hidden, qkv, context, projection, expanded: Buffer<Float>
    /// Attention's scratch per thread: the packed keys and values and the scores (T × T
    /// for bfloat16 on AMX, a block of rows for float32).
    let attention: [Buffer<Float>]

    init(config: BertConfig, tokens: Int, longest: Int, threads: Int) {
      self.tokens = tokens
      self.longest = longest
      let h = config.hiddenSize
      hidden = Buffer<Float>(uninitializedCount: tokens * h)
      qkv = Buffer<Float>(uninitializedCount: tokens * 3 * h)
      context = Buffer<Float>(uninitializedCount: tokens * h)
      projection = Buffer<Float>(uninitializedCount: tokens * h)
      expanded = Buffer<Float>(uninitializedCount: tokens * config.intermediateSize)
      let perThread = max(
        PackedWeights.attentionScratchCount(length: longest, headSize: config.headSize),
        Kernels.attentionScratchCount(length: longest, headSize: config.headSize))
      attention = (0..<threads).map { _ in Buffer<Float>(uninitializedCount: perThread) }
    }
  }

  /// Runs the encoder over `sequences` (token ids, each within the position table) and
  /// writes one pooled vector of `hiddenSize` floats per sequence to `output`.
  ///
  /// The sequences are packed end to end with no padding: every linear layer is one
  /// gemm over all their tokens, and attention runs per sequence and head on exactly
  /// its own tokens. With `workspace.attention.count > 1` threads, each step is split
  /// over them (by output columns, and by heads for attention); with one, everything
  /// runs on the calling thread.
  func forward(
    _ sequences: [[Int]], pooling: SentenceEncoder.Pooling, workspace: Workspace,
    output: UnsafeMutablePointer<Float>
  ) {
    let h = config.hiddenSize
    let intermediate = config.intermediateSize
    let offsets = sequences.reduce(into: [0]) { $0.append($0.last! + $1.count) }
    let tokenCount = offsets.last!
    guard tokenCount > 0 else { return }
    precondition(tokenCount <= workspace.tokens, "forward: workspace too small")
    precondition(sequences.allSatisfy { $0.count <= workspace.longest }, "forward: too long")
    let threads = workspace.attention.count
    let x = workspace.hidden.base
    let epsilon = config.layerNormEpsilon
    /// x ← LayerNorm(x + `linear`(`input`)) · γ + β: a sublayer's projection back to the
    /// hidden width, added to its input and normalized.
    func addProjection(
      _ linear: Linear, of input: UnsafeMutablePointer<Float>, _ gamma: Buffer<Float>,
      _ beta: Buffer<Float>
    ) {
      splitColumns(h, threads) { columns in
        linear(tokenCount, input: input, output: workspace.projection.base, columns: columns)
      }
      normalizeRows(
        tokenCount, workspace.projection.base, residual: x, gamma, beta, epsilon, threads)
    }

    // Embeddings: word + position + token type 0, then LayerNorm.
    for (s, sequence) in sequences.enumerated() {
      for (position, token) in sequence.enumerated() {
        let row = x + (offsets[s] + position) * h
        row.update(from: wordEmbeddings.base + token * h, count: h)
        Kernels.addScaled(count: h, 1, positionEmbeddings.base + position * h, to: row)
        Kernels.addScaled(count: h, 1, tokenTypeEmbeddings.base, to: row)
      }
    }
    normalizeRows(
      tokenCount, x, residual: nil, embeddingNormGamma, embeddingNormBeta, epsilon, threads)

    for layer in layers {
      // Query, key and value for a range of heads, then attention over those heads.
      let headRanges = Parallel.split(config.headCount, into: threads)
      Parallel.forEach(headRanges.count) { part in
        let heads = headRanges[part]
        let columns =
          heads.lowerBound * 3 * config.headSize..<heads.upperBound * 3 * config.headSize
        layer.qkv(tokenCount, input: x, output: workspace.qkv.base, columns: columns)
        attention(
          heads: heads, qkv: workspace.qkv.base, context: workspace.context.base,
          sequences: sequences, offsets: offsets, scratch: workspace.attention[part].base)
      }
      addProjection(
        layer.attentionOutput, of: workspace.context.base, layer.attentionNormGamma,
        layer.attentionNormBeta)
      splitColumns(intermediate, threads) { columns in
        layer.intermediate(
          tokenCount, input: x, output: workspace.expanded.base, columns: columns)
        for row in 0..<tokenCount {
          Kernels.gelu(
            count: columns.count,
            workspace.expanded.base + row * intermediate + columns.lowerBound)
        }
      }
      addProjection(
        layer.output, of: workspace.expanded.base, layer.outputNormGamma, layer.outputNormBeta)
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

  /// Runs `body` on column ranges of `0..<width` split over `threads` threads.
  private func splitColumns(_ width: Int, _ threads: Int, _ body: (Range<Int>) -> Void) {
    let ranges = Parallel.split(width, into: threads, multipleOf: 16)
    Parallel.forEach(ranges.count) { body(ranges[$0]) }
  }

  /// x ← LayerNorm(input + residual) · γ + β, where x is `residual` when there is one
  /// and `input` otherwise. Rows are split over `threads` only when there are enough
  /// of them to pay for the hand-off.
  private func normalizeRows(
    _ rows: Int, _ input: UnsafeMutablePointer<Float>, residual: UnsafeMutablePointer<Float>?,
    _ gamma: Buffer<Float>, _ beta: Buffer<Float>, _ epsilon: Float, _ threads: Int
  ) {
    let h = config.hiddenSize
    let destination = residual ?? input
    let slices = Parallel.split(rows, into: rows >= 128 ? threads : 1)
    Parallel.forEach(slices.count) { i in
      let offset = slices[i].lowerBound * h
      Kernels.addLayerNorm(
        rows: slices[i].count, width: h, input + offset, residual: residual.map { $0 + offset },
        gamma: gamma.base, beta: beta.base, epsilon: epsilon,
        output: destination + offset)
    }
  }

  /// Scaled dot-product attention for `heads` of every sequence, over the packed `qkv`
  /// rows (per head: query, key, value, each `headSize` wide); writes those heads'
  /// columns of `context` [tokens, H].
  ///
  /// For head h of a sequence of T tokens: S = Q·Kᵀ / √d (T × T), P = softmax(S) row
  /// by row, context[:, head h] = P·V. No mask is needed: every sequence attends to
  /// exactly its own tokens. At bfloat16 on a CPU with AMX both products are AMX tiles
  /// too (`vdb_bf16_attention`); elsewhere they are float32, fused per block of query
  /// rows (`Kernels.attention`; AVX-512 BF16 is not faster than float32 on every CPU that
  /// has it, docs/encoder.md).
  private func attention(
    heads: Range<Int>, qkv: UnsafeMutablePointer<Float>, context: UnsafeMutablePointer<Float>,
    sequences: [[Int]], offsets: [Int], scratch: UnsafeMutablePointer<Float>
  ) {
    let h = config.hiddenSize
    let d = config.headSize
    let tiles =
      precision == .bfloat16 && PackedWeights.KernelLevel.current(.bfloat16) == .amx
    for (s, sequence) in sequences.enumerated() {
      let length = sequence.count
      for head in heads {
        let q = qkv + offsets[s] * 3 * h + head * 3 * d
        let context = context + offsets[s] * h + head * d
        if tiles {
          PackedWeights.attention(
            length: length, headSize: d, q: q, k: q + d, v: q + 2 * d, stride: 3 * h,
            context: context, contextStride: h, scratch: scratch)
        } else {
          Kernels.attention(
            length: length, headSize: d, q: q, k: q + d, v: q + 2 * d, stride: 3 * h,
            context: context, contextStride: h, scratch: scratch)
        }
      }
    }
  }
}
