import Foundation
import Tensor

/// A sentence-transformers bi-encoder run natively: text in, unit vectors out.
///
/// Pipeline: WordPiece tokens (`[CLS] … [SEP]`, truncated to ``maxSequenceLength``)
/// → BERT → mean pooling over the tokens → L2 normalisation.
///
/// ```swift
/// let encoder = try SentenceEncoder(directory: URL(fileURLWithPath: modelPath))
/// let vectors = encoder.embed(["What is HNSW?", "LMDB is a B+tree"])  // 2 × 384 floats
/// let matrix = encoder.embedMatrix(texts)                            // Tensor [n, 384]
/// ```
///
/// A model can also be assembled from parts held in memory, for example a model stored
/// in a database or weights produced by fine-tuning:
///
/// ```swift
/// let encoder = try SentenceEncoder(
///   config: config, tokenizer: tokenizer,
///   weights: try SafeTensors(bytes: storedBytes).floatTensors())
/// ```
///
/// Speed: inputs are sorted by length and cut into batches of similar lengths; each
/// batch is packed without padding and every linear layer is one gemm over all its
/// tokens. Batches run in parallel, one per core; a single short input instead splits
/// each layer's work over the cores.
///
/// Thread safety: immutable after initialisation. Any number of threads may call the
/// `embed` methods at once (each call uses its own workspace); calls from several
/// threads share the cores rather than add to them.
public final class SentenceEncoder: Sendable {
  /// How token vectors become one sentence vector.
  public enum Pooling: String, Codable, Sendable {
    /// The mean of all token vectors (including `[CLS]` and `[SEP]`).
    case mean
    /// The first token's (`[CLS]`) vector.
    case cls
  }

  /// Texts put before a query's or a document's own text, as the model was trained to
  /// see them: `config_sentence_transformers.json`'s `prompts` (e5's `"query: "` and
  /// `"passage: "`; arctic-embed's query instruction). Empty for models without any, such
  /// as all-MiniLM-L6-v2.
  public struct Prompts: Codable, Equatable, Sendable {
    public var query: String
    public var document: String

    public init(query: String = "", document: String = "") {
      self.query = query
      self.document = document
    }

    public var isEmpty: Bool { query.isEmpty && document.isEmpty }
  }

  /// How the model's vectors are to be compared, as `config_sentence_transformers.json`
  /// names it (`similarity_fn_name`; cosine when absent, as in sentence-transformers). A
  /// collection of the model's vectors compares by it unless told otherwise.
  public enum Similarity: String, Codable, Sendable, CaseIterable {
    case cosine
    /// The dot product, for models trained for it (their vectors are not unit length).
    case dot
    /// The (negative) Euclidean distance.
    case euclidean
  }

  /// What a text is to the retriever: its prompt follows from it.
  public enum Role: String, Sendable, CaseIterable {
    case query
    case document
  }

  /// The number format the linear layers compute in. The weights are kept as given
  /// (float32); a lower precision is derived from them when the encoder is built.
  /// Attention scores, softmax, LayerNorm and GELU always run in float32.
  public enum Precision: String, Codable, Sendable, CaseIterable {
    /// Every product in float32 (OpenBLAS sgemm).
    case float32
    /// Weights and layer inputs rounded to bfloat16, products summed in float32: on
    /// CPUs with AMX or AVX-512 BF16, the layers run about twice as fast; vectors stay at
    /// cosine ≥ 0.9999 of float32's on all-MiniLM-L6-v2 (docs/encoder.md). Elsewhere it
    /// runs on AVX2 or plain C, correct but slower than float32.
    case bfloat16
    /// Weights in int8 (one float32 scale per block of 32 values) and layer inputs in
    /// int16 (one per row), exact int32 sums: about 1.5× float32 with AVX-512 VNNI, only
    /// ~1.1–1.2× on AVX2 alone (`vpmaddwd`); vectors stay at cosine ≥ 0.999 of float32's
    /// on all-MiniLM-L6-v2 (docs/encoder.md).
    case int8
    /// Weights and layer inputs both in int8 (one float32 scale per block of 32 values)
    /// after one orthogonal rotation of both (random signs, Walsh–Hadamard spans of 128),
    /// which spreads the inputs' outliers: with AVX-512 VNNI about 1.5× int8's speed (and
    /// 1.2× bfloat16's on AMD Zen 4), elsewhere slower than int8; vectors stay at cosine
    /// ≥ 0.999 of float32's on all-MiniLM-L6-v2 (docs/encoder.md).
    case w8a8

    /// Why this precision is a poor choice on this machine, or nil: its kernel needs
    /// instructions the CPU lacks (or that `VDB_BF16_KERNEL` / `VDB_INT8_KERNEL` turned
    /// off), so it runs slower than a more precise one (docs/encoder.md, "Which precision
    /// for which CPU"). The vectors are the same on every CPU; only the speed differs.
    ///
    ///     if let warning = SentenceEncoder.Precision.w8a8.cpuWarning { print(warning) }
    public var cpuWarning: String? {
      guard let format = packedFormat else { return nil }
      let level = PackedWeights.KernelLevel.current(format)
      let (slowerThan, needs): (String, String)
      switch self {
      case .bfloat16 where level < .avx512: (slowerThan, needs) = ("float32", "AVX-512 BF16 or AMX")
      case .int8 where level < .avx2: (slowerThan, needs) = ("float32", "AVX2")
      case .w8a8 where level < .avx512:
        (slowerThan, needs) = ("int8 and no faster than float32", "AVX-512 VNNI")
      default: return nil
      }
      return "\(rawValue) runs its \(level.name(format)) kernel on this machine, slower than "
        + "\(slowerThan); its fast kernel needs \(needs) (docs/encoder.md, \"Which precision "
        + "for which CPU\")"
    }

    /// The packed weights' format of the linear layers; nil for float32 (sgemm).
    var packedFormat: PackedWeights.Format? {
      switch self {
      case .float32: return nil
      case .bfloat16: return .bfloat16
      case .int8: return .int8
      case .w8a8: return .w8a8
      }
    }
  }

  public let config: BertConfig
  public let tokenizer: WordPieceTokenizer
  /// Inputs are cut to this many tokens, `[CLS]` and `[SEP]` included.
  public let maxSequenceLength: Int
  public let pooling: Pooling
  /// Whether output vectors are scaled to unit length.
  public let normalizesOutput: Bool
  /// What goes before queries' and documents' texts: see ``prompted(_:as:)``.
  public let prompts: Prompts
  /// How the vectors are to be compared.
  public let similarity: Similarity
  /// The number format of the linear layers.
  public var precision: Precision { model.precision }
  private let model: BertModel
  /// Where concurrent ``embedCoalesced(_:)`` calls wait to share a pass. As many passes
  /// as cores run at once, as that many concurrent calls did before: up to that many
  /// callers never wait.
  private let coalescer = Parallel.Coalescer<String, [Float]>(
    concurrentPasses: Parallel.coreCount)

  /// The length of every output vector.
  public var dimension: Int { config.hiddenSize }

  /// Where `tools/fetch-model.sh` puts the default model, all-MiniLM-L6-v2:
  /// `$VDB_MODEL_DIR` when set, else `~/.cache/vdb/models/all-MiniLM-L6-v2`. The one place
  /// the project looks this up.
  public static var defaultModelDirectory: URL {
    let environment = ProcessInfo.processInfo.environment
    if let path = environment["VDB_MODEL_DIR"], !path.isEmpty {
      return URL(fileURLWithPath: path)
    }
    return URL(
      fileURLWithPath: environment["HOME"] ?? FileManager.default.homeDirectoryForCurrentUser.path
    )
    .appendingPathComponent(".cache/vdb/models/all-MiniLM-L6-v2")
  }

  /// Assembles an encoder from a configuration, a tokenizer and weights named as in
  /// ``BertConfig/parameterShapes()`` (extra tensors are ignored).
  ///
  /// Throws ``EmbeddingError/missingTensor(source:tensor:)`` or
  /// ``EmbeddingError/wrongShape(source:tensor:shape:expected:)`` for unusable weights,
  /// ``EmbeddingError/invalidConfiguration(source:reason:)`` when the configuration,
  /// the vocabulary size and `maxSequenceLength` disagree. `source` names the model in
  /// those errors.
  public convenience init(
    config: BertConfig, tokenizer: WordPieceTokenizer, weights: [String: Tensor],
    maxSequenceLength: Int = 256, pooling: Pooling = .mean, normalizesOutput: Bool = true,
    prompts: Prompts = Prompts(), similarity: Similarity = .cosine,
    precision: Precision = .float32, source: String = "<memory>"
  ) throws {
    try self.init(
      config: config, tokenizer: { tokenizer }, weightSource: weights,
      maxSequenceLength: maxSequenceLength, pooling: pooling, normalizesOutput: normalizesOutput,
      prompts: prompts, similarity: similarity, precision: precision, source: source)
  }

  /// An encoder from weights wherever they lie, each tensor copied once into the model
  /// (see the public initialisers for the errors).
  private convenience init(
    config: BertConfig, tokenizer makeTokenizer: () throws -> WordPieceTokenizer,
    weightSource weights: some WeightSource, maxSequenceLength: Int, pooling: Pooling,
    normalizesOutput: Bool, prompts: Prompts, similarity: Similarity, precision: Precision,
    source: String
  ) throws {
    try self.init(
      config: config, tokenizer: makeTokenizer,
      model: {
        try BertModel(config: config, weights: weights, precision: precision, source: source)
      },
      maxSequenceLength: maxSequenceLength, pooling: pooling, normalizesOutput: normalizesOutput,
      prompts: prompts, similarity: similarity, source: source)
  }

  /// An encoder whose weights are mapped from the model image at `path` (written by
  /// ``writeImage(to:identity:)`` for weights of that `identity`) instead of copied: the
  /// pages are the file's in the page cache, so a process loads the model without
  /// zeroing or copying 86 MB, and processes that load it share one copy.
  ///
  /// - Throws: ``EmbeddingError/invalidImage(path:reason:)`` when the image is missing,
  ///   truncated, damaged, of other weights or laid out by another version of vdb (the
  ///   caller then builds the encoder from its stored weights); as
  ///   ``init(settings:vocabulary:weights:source:)`` for the settings and vocabulary.
  package convenience init(
    settings: Settings, vocabulary: [String], image path: String, identity: UInt64,
    source: String
  ) throws {
    try self.init(
      config: settings.config,
      tokenizer: {
        try WordPieceTokenizer(vocabulary: vocabulary, options: settings.tokenizer, source: source)
      },
      model: {
        let (arena, layout) = try ModelImage.map(path, identity: identity)
        return try BertModel(
          config: settings.config, image: arena, layout: layout, precision: settings.precision,
          source: path)
      },
      maxSequenceLength: settings.maxSequenceLength, pooling: settings.pooling,
      normalizesOutput: settings.normalizesOutput, prompts: settings.prompts,
      similarity: settings.similarity, source: source)
  }

  /// Writes the weights, in this encoder's own layout, as a model image at `path` for
  /// ``init(settings:vocabulary:image:identity:source:)``: a temporary file beside it,
  /// renamed over it when complete, so a reader sees the old image or the new one.
  ///
  /// - Throws: ``EmbeddingError/invalidImage(path:reason:)`` when the file cannot be
  ///   written (nothing is left behind then).
  package func writeImage(to path: String, identity: UInt64) throws {
    try ModelImage.write(model.arena.bytes, layout: model.layout, identity: identity, to: path)
  }

  /// The one place an encoder is built. The tokenizer is built on another core while
  /// the model's weights are copied or mapped: loading a model is those two independent
  /// pieces of work.
  private init(
    config: BertConfig, tokenizer makeTokenizer: () throws -> WordPieceTokenizer,
    model makeModel: () throws -> BertModel, maxSequenceLength: Int, pooling: Pooling,
    normalizesOutput: Bool, prompts: Prompts, similarity: Similarity, source: String
  ) throws {
    guard maxSequenceLength >= 2, maxSequenceLength <= config.maxPositions else {
      throw EmbeddingError.invalidConfiguration(
        source: source,
        reason: "max sequence length \(maxSequenceLength) is outside 2...\(config.maxPositions)"
          + " (max_position_embeddings)")
    }
    BLAS.prepare()  // before the load's threads: it stops OpenBLAS's spinning idle workers
    let (tokenizer, model) = try Parallel.both(makeTokenizer, makeModel)
    guard tokenizer.vocabulary.count <= config.vocabularySize else {
      throw EmbeddingError.invalidConfiguration(
        source: source,
        reason: "the vocabulary has \(tokenizer.vocabulary.count) tokens but vocab_size is"
          + " \(config.vocabularySize)")
    }
    self.config = config
    self.tokenizer = tokenizer
    self.maxSequenceLength = maxSequenceLength
    self.pooling = pooling
    self.normalizesOutput = normalizesOutput
    self.prompts = prompts
    self.similarity = similarity
    self.model = model
  }

  /// Loads a sentence-transformers model directory.
  ///
  /// Required: `config.json`, `vocab.txt` (or `tokenizer.json` of a BERT WordPiece
  /// tokenizer, as `transformers` 5 saves one), `model.safetensors`. Read when present:
  /// `tokenizer_config.json` (`do_lower_case`, `strip_accents`,
  /// `tokenize_chinese_chars`, special tokens; defaults: uncased BERT),
  /// `sentence_bert_config.json` (`max_seq_length`; default the smaller of the position
  /// table and `tokenizer_config.json`'s `model_max_length`, as sentence-transformers),
  /// `1_Pooling/config.json` (mean or CLS pooling; default mean), `modules.json`
  /// (a `Normalize` module turns on L2 normalisation; default on), and
  /// `config_sentence_transformers.json` (prompts, `similarity_fn_name`). `precision` is
  /// the number format the linear layers compute in.
  ///
  /// Throws an ``EmbeddingError`` naming the file and the problem; a model whose vectors
  /// of two probe texts are not finite is refused (``EmbeddingError/nonFiniteOutput(source:text:)``).
  public convenience init(directory: URL, precision: Precision = .float32) throws {
    let config = try BertConfig(contentsOf: directory.appendingPathComponent("config.json"))
    let settings = try DirectorySettings(directory: directory, config: config)
    let weightsURL = directory.appendingPathComponent("model.safetensors")
    let pickle = directory.appendingPathComponent("pytorch_model.bin")
    if !FileManager.default.fileExists(atPath: weightsURL.path),
      FileManager.default.fileExists(atPath: pickle.path)
    {
      // A pickle can run code when it is loaded; this reads safetensors only.
      throw EmbeddingError.unsupported(
        source: pickle.path,
        feature: "PyTorch pickle weights without model.safetensors (sentence-transformers"
          + " writes one: SentenceTransformer(DIR).save(NEW_DIR))")
    }
    try self.init(
      config: config,
      tokenizer: {
        if let vocabulary = settings.vocabulary {
          return try WordPieceTokenizer(
            vocabulary: vocabulary, options: settings.tokenizer,
            source: directory.appendingPathComponent("tokenizer.json").path)
        }
        return try WordPieceTokenizer(
          contentsOf: directory.appendingPathComponent("vocab.txt"), options: settings.tokenizer)
      }, weightSource: try SafeTensors(contentsOf: weightsURL),
      maxSequenceLength: settings.maxSequenceLength, pooling: settings.pooling,
      normalizesOutput: settings.normalizesOutput, prompts: settings.prompts,
      similarity: settings.similarity, precision: precision, source: weightsURL.path)
    try checkFiniteOutput(source: weightsURL.path)
  }

  /// Fails unless the vectors of two probe texts are finite. Finite weights can still
  /// overflow in the forward pass (weights of 1e20 do); a model from outside is probed
  /// once, when it is read, rather than failing later at every text it embeds.
  ///
  /// - Throws: ``EmbeddingError/nonFiniteOutput(source:text:)``.
  private func checkFiniteOutput(source: String) throws {
    for text in ["", "A model's vectors must be finite."]
    where !embed(text).allSatisfy(\.isFinite) {
      throw EmbeddingError.nonFiniteOutput(source: source, text: text)
    }
  }

  /// `texts` as the model is to see them in `role`: each after its prompt (``prompts``).
  /// Every text a retriever embeds goes through this first; for a model without prompts
  /// it is `texts`.
  ///
  ///     let vectors = encoder.embed(encoder.prompted(["what causes scurvy"], as: .query))
  public func prompted(_ texts: [String], as role: Role) -> [String] {
    let prompt = role == .query ? prompts.query : prompts.document
    return prompt.isEmpty ? texts : texts.map { prompt + $0 }
  }

  /// The weights under their safetensors names, as copies (for training, or to store
  /// the model with ``SafeTensors/serialize(_:metadata:)``).
  public var weights: [String: Tensor] { model.namedWeights }

  /// Everything that defines this encoder except its vocabulary and weights.
  public var settings: Settings {
    Settings(
      config: config, tokenizer: tokenizer.options, maxSequenceLength: maxSequenceLength,
      pooling: pooling, normalizesOutput: normalizesOutput, prompts: prompts,
      similarity: similarity, precision: precision)
  }

  /// An encoder's definition apart from its vocabulary and weights, as one `Codable`
  /// value: with ``WordPieceTokenizer/vocabulary`` and the safetensors bytes of
  /// ``weights``, all a store needs to rebuild the same encoder.
  ///
  /// ```swift
  /// let stored = (try JSONEncoder().encode(encoder.settings),
  ///               encoder.tokenizer.vocabulary, SafeTensors.serialize(encoder.weights))
  /// let again = try SentenceEncoder(
  ///   settings: try JSONDecoder().decode(SentenceEncoder.Settings.self, from: stored.0),
  ///   vocabulary: stored.1, weights: try SafeTensors(bytes: stored.2).floatTensors())
  /// ```
  public struct Settings: Codable, Equatable, Sendable {
    public var config: BertConfig
    public var tokenizer: WordPieceTokenizer.Options
    public var maxSequenceLength: Int
    public var pooling: Pooling
    public var normalizesOutput: Bool
    /// Part of a model version's identity: its vectors differ (slightly) from the same
    /// weights' at another precision. Settings stored before it existed read as float32.
    public var precision: Precision
    /// Empty for a model without prompts, and then not stored: such a model's settings
    /// are stored as before prompts were read (which read back as empty).
    public var prompts: Prompts
    /// Cosine, and then not stored, as for prompts.
    public var similarity: Similarity

    public init(
      config: BertConfig, tokenizer: WordPieceTokenizer.Options = .init(),
      maxSequenceLength: Int = 256, pooling: Pooling = .mean, normalizesOutput: Bool = true,
      prompts: Prompts = Prompts(), similarity: Similarity = .cosine,
      precision: Precision = .float32
    ) {
      self.config = config
      self.tokenizer = tokenizer
      self.maxSequenceLength = maxSequenceLength
      self.pooling = pooling
      self.normalizesOutput = normalizesOutput
      self.prompts = prompts
      self.similarity = similarity
      self.precision = precision
    }

    public init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      config = try container.decode(BertConfig.self, forKey: .config)
      tokenizer = try container.decode(WordPieceTokenizer.Options.self, forKey: .tokenizer)
      maxSequenceLength = try container.decode(Int.self, forKey: .maxSequenceLength)
      pooling = try container.decode(Pooling.self, forKey: .pooling)
      normalizesOutput = try container.decode(Bool.self, forKey: .normalizesOutput)
      precision = try container.decodeIfPresent(Precision.self, forKey: .precision) ?? .float32
      prompts = try container.decodeIfPresent(Prompts.self, forKey: .prompts) ?? Prompts()
      similarity = try container.decodeIfPresent(Similarity.self, forKey: .similarity) ?? .cosine
    }

    public func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(config, forKey: .config)
      try container.encode(tokenizer, forKey: .tokenizer)
      try container.encode(maxSequenceLength, forKey: .maxSequenceLength)
      try container.encode(pooling, forKey: .pooling)
      try container.encode(normalizesOutput, forKey: .normalizesOutput)
      try container.encode(precision, forKey: .precision)
      if !prompts.isEmpty { try container.encode(prompts, forKey: .prompts) }
      if similarity != .cosine { try container.encode(similarity, forKey: .similarity) }
    }

    private enum CodingKeys: String, CodingKey {
      case config, tokenizer, maxSequenceLength, pooling, normalizesOutput, precision, prompts
      case similarity
    }
  }

  /// Rebuilds an encoder from its ``settings``, vocabulary and weights.
  public convenience init(
    settings: Settings, vocabulary: [String], weights: [String: Tensor],
    source: String = "<memory>"
  ) throws {
    try self.init(
      config: settings.config,
      tokenizer: {
        try WordPieceTokenizer(vocabulary: vocabulary, options: settings.tokenizer, source: source)
      },
      weightSource: weights, maxSequenceLength: settings.maxSequenceLength,
      pooling: settings.pooling, normalizesOutput: settings.normalizesOutput,
      prompts: settings.prompts, similarity: settings.similarity, precision: settings.precision,
      source: source)
  }

  /// Rebuilds an encoder from its ``settings``, vocabulary and the safetensors file of
  /// its weights, reading each tensor where it lies (a mapped file, or bytes borrowed
  /// with ``SafeTensors/withBytes(_:source:_:)``) and copying it once into the model:
  /// the encoder keeps no reference to `weights`.
  ///
  /// - Throws: as ``init(config:tokenizer:weights:maxSequenceLength:pooling:normalizesOutput:precision:source:)``,
  ///   and ``EmbeddingError/invalidVocabulary(source:reason:)``.
  public convenience init(
    settings: Settings, vocabulary: [String], weights: SafeTensors, source: String = "<memory>"
  ) throws {
    try self.init(
      config: settings.config,
      tokenizer: {
        try WordPieceTokenizer(vocabulary: vocabulary, options: settings.tokenizer, source: source)
      },
      weightSource: weights, maxSequenceLength: settings.maxSequenceLength,
      pooling: settings.pooling, normalizesOutput: settings.normalizesOutput,
      prompts: settings.prompts, similarity: settings.similarity, precision: settings.precision,
      source: source)
  }

  /// The token ids the encoder sees for `text`: `[CLS] … [SEP]`, truncated.
  public func tokenize(_ text: String) -> [Int] {
    tokenizer.encode(text, maxLength: maxSequenceLength)
  }

  /// The vector of one text.
  public func embed(_ text: String) -> [Float] {
    embedMatrix([text]).values
  }

  /// One vector per text, in input order.
  public func embed(_ texts: [String], batchSize: Int = 32) -> [[Float]] {
    let matrix = embedMatrix(texts, batchSize: batchSize)
    return (0..<texts.count).map { Array(matrix.values[$0 * dimension..<($0 + 1) * dimension]) }
  }

  /// The vectors of `texts`, computed in one pass together with the texts of other
  /// threads' concurrent calls (``Parallel/Coalescer``): what queries and routing
  /// decisions use. Alone, a call runs at once; many at a time share passes, and one pass
  /// over many short texts costs much less than as many passes of one. The vectors equal
  /// ``embed(_:batchSize:)``'s but for float rounding.
  public func embedCoalesced(_ texts: [String]) -> [[Float]] {
    coalescer.run(texts) { embed($0) }
  }

  /// The vectors of `texts` as the rows of a `[texts.count, dimension]` tensor.
  ///
  /// `batchSize` bounds how many texts go through the network together; results do
  /// not depend on it beyond float rounding. `threads` caps the cores used (all by
  /// default).
  public func embedMatrix(
    _ texts: [String], batchSize: Int = 32, threads: Int = Parallel.coreCount
  ) -> Tensor {
    embedSequences(texts.map(tokenize), batchSize: batchSize, threads: threads)
  }

  /// The vectors of already tokenised inputs (ids as from ``tokenize(_:)``, used as
  /// given: no `[CLS]`/`[SEP]` is added).
  ///
  /// Throws ``EmbeddingError/invalidTokenIDs(sequence:reason:)`` for an empty sequence,
  /// one longer than ``maxSequenceLength``, or an id outside the vocabulary.
  public func embed(
    tokenIDs sequences: [[Int]], batchSize: Int = 32, threads: Int = Parallel.coreCount
  ) throws -> Tensor {
    for (index, sequence) in sequences.enumerated() {
      guard !sequence.isEmpty, sequence.count <= maxSequenceLength else {
        throw EmbeddingError.invalidTokenIDs(
          sequence: index,
          reason: "\(sequence.count) tokens; expected 1...\(maxSequenceLength)")
      }
      if let bad = sequence.first(where: { $0 < 0 || $0 >= config.vocabularySize }) {
        throw EmbeddingError.invalidTokenIDs(
          sequence: index, reason: "token id \(bad) is outside 0..<\(config.vocabularySize)")
      }
    }
    return embedSequences(sequences, batchSize: batchSize, threads: threads)
  }

  private func embedSequences(_ sequences: [[Int]], batchSize: Int, threads: Int) -> Tensor {
    var result = Tensor(shape: [sequences.count, dimension])
    guard !sequences.isEmpty else { return result }
    let threads = max(1, threads)
    let batches = Self.batches(
      lengths: sequences.map(\.count), batchSize: max(1, batchSize), threads: threads)
    // Enough batches for every thread: run them side by side, one thread each.
    // Otherwise (a single input), split each step of the one batch over the threads.
    let workers = min(threads, batches.count)
    let threadsPerBatch = workers == 1 ? threads : 1
    let largest = batches.map { $0.reduce(0) { $0 + sequences[$1].count } }.max()!
    let longest = sequences.map(\.count).max()!
    let widest = batches.map(\.count).max()!
    let h = dimension
    // Scratch memory per worker; a worker takes the next batch as soon as it is free.
    let workspaces = (0..<workers).map { _ in
      (
        BertModel.Workspace(
          config: config, tokens: largest, longest: longest, threads: threadsPerBatch),
        pooled: Buffer<Float>(uninitializedCount: widest * h)
      )
    }
    result.values.withUnsafeMutableBufferPointer { output in
      let output = output.baseAddress!
      Parallel.forEachDynamically(batches.count, threads: workers) { b, worker in
        let (workspace, pooled) = workspaces[worker]
        let members = batches[b]
        model.forward(
          members.map { sequences[$0] }, pooling: pooling, workspace: workspace,
          output: pooled.base)
        if normalizesOutput {
          Kernels.l2Normalize(rows: members.count, width: h, pooled.base)
        }
        for (row, index) in members.enumerated() {
          (output + index * h).update(from: pooled.base + row * h, count: h)
        }
      }
    }
    return result
  }

  /// The work of one input of `tokens` tokens, as `batches` balances it: its tokens
  /// through the linear layers plus attention's T² term (weighted as for a 384-wide
  /// model; only the balance matters).
  static func work(tokens: Int) -> Double {
    let t = Double(tokens)
    return t * 4_608 + t * t * 4
  }

  /// Groups input indices into batches of similar length: sorted longest first, cut
  /// into batches of at most `batchSize`, with cuts placed so that batches carry similar
  /// work. When they would be fewer than four a thread, there are more of them, a
  /// multiple of `threads`, with room to spare: full batches of unequal lengths carry
  /// unequal work, and with few batches the threads finish apart (the first 64 SciFact
  /// passages in two full batches of 32: one has a fifth more work than the other).
  static func batches(lengths: [Int], batchSize: Int, threads: Int) -> [[Int]] {
    let order = lengths.indices.sorted { lengths[$0] > lengths[$1] }
    var count = (order.count + batchSize - 1) / batchSize
    if threads > 1, count < 4 * threads {
      // Three quarters of `batchSize` on average, rounded to a multiple of `threads`.
      let loose = (4 * order.count + 3 * batchSize - 1) / (3 * batchSize)
      count = min(order.count, (loose + threads - 1) / threads * threads)
    }
    let costs = order.map { work(tokens: lengths[$0]) }
    let total = costs.reduce(0, +)
    var batches: [[Int]] = []
    var current: [Int] = []
    var done = 0.0
    for (position, index) in order.enumerated() {
      current.append(index)
      done += costs[position]
      let remainingInputs = order.count - position - 1
      let remainingBatches = count - batches.count - 1
      let target = total * Double(batches.count + 1) / Double(count)
      let full = current.count == batchSize
      if full || (remainingBatches > 0 && (done >= target || remainingInputs == remainingBatches)) {
        batches.append(current)
        current = []
      }
    }
    if !current.isEmpty { batches.append(current) }
    return batches
  }
}

/// What a model directory's optional sentence-transformers files say.
private struct DirectorySettings {
  var tokenizer = WordPieceTokenizer.Options()
  var maxSequenceLength: Int
  var pooling = SentenceEncoder.Pooling.mean
  var normalizesOutput = true
  var prompts = SentenceEncoder.Prompts()
  var similarity = SentenceEncoder.Similarity.cosine
  /// The vocabulary of `tokenizer.json`, read when the directory has no `vocab.txt` (as
  /// `transformers` 5 saves a BERT tokenizer); nil: `vocab.txt`'s.
  var vocabulary: [String]?

  /// `config_sentence_transformers.json`: the prompts, by name, and how vectors compare.
  private struct SentenceTransformersConfig: Decodable {
    var prompts: [String: String?]?
    var similarityFunction: String?

    enum CodingKeys: String, CodingKey {
      case prompts
      case similarityFunction = "similarity_fn_name"
    }
  }

  private struct TokenizerConfig: Decodable {
    var doLowerCase: Bool?
    var stripAccents: Bool?
    var tokenizeChineseChars: Bool?
    var unkToken: SpecialToken?
    var clsToken: SpecialToken?
    var sepToken: SpecialToken?
    /// A number, often one far past any model (`transformers` writes 1e30 for "no limit").
    var modelMaxLength: Double?

    enum CodingKeys: String, CodingKey {
      case doLowerCase = "do_lower_case"
      case stripAccents = "strip_accents"
      case tokenizeChineseChars = "tokenize_chinese_chars"
      case unkToken = "unk_token"
      case clsToken = "cls_token"
      case sepToken = "sep_token"
      case modelMaxLength = "model_max_length"
    }
  }

  /// A special token as `tokenizer_config.json` names it: a string, or the object older
  /// `transformers` releases wrote (`{"__type": "AddedToken", "content": "[UNK]", …}`).
  private struct SpecialToken: Decodable {
    var text: String

    init(from decoder: Decoder) throws {
      if let object = try? decoder.container(keyedBy: CodingKeys.self) {
        text = try object.decode(String.self, forKey: .content)
      } else {
        text = try decoder.singleValueContainer().decode(String.self)
      }
    }

    enum CodingKeys: String, CodingKey { case content }
  }

  /// What `tokenizer.json` (Hugging Face's `tokenizers`) says of a BERT tokenizer: the
  /// WordPiece vocabulary and its options, the normalizer's, and the special tokens the
  /// post-processor puts around a text. Anything that would tokenize otherwise than
  /// vdb's WordPiece tokenizer is refused by name.
  private struct TokenizerJSON: Decodable {
    struct Model: Decodable {
      var type: String?
      var vocab: [String: Int]
      var unkToken: String?
      var continuingSubwordPrefix: String?
      var maxInputCharsPerWord: Int?

      enum CodingKeys: String, CodingKey {
        case type, vocab
        case unkToken = "unk_token"
        case continuingSubwordPrefix = "continuing_subword_prefix"
        case maxInputCharsPerWord = "max_input_chars_per_word"
      }
    }

    struct Normalizer: Decodable {
      var type: String
      var cleanText: Bool?
      var handleChineseChars: Bool?
      var stripAccents: Bool?
      var lowercase: Bool?

      enum CodingKeys: String, CodingKey {
        case type, lowercase
        case cleanText = "clean_text"
        case handleChineseChars = "handle_chinese_chars"
        case stripAccents = "strip_accents"
      }
    }

    struct Typed: Decodable { var type: String }

    /// `TemplateProcessing` (`single`: `[CLS]` $A `[SEP]`) or `BertProcessing` (`cls`,
    /// `sep`: a token and its id).
    struct PostProcessor: Decodable {
      var type: String
      var single: [[String: Piece]]?
      var cls: TokenAndID?
      var sep: TokenAndID?

      struct Piece: Decodable { var id: String }
      struct TokenAndID: Decodable {
        var token: String
        init(from decoder: Decoder) throws {
          var pair = try decoder.unkeyedContainer()
          token = try pair.decode(String.self)
        }
      }

      /// The tokens put before and after a single text, or nil for another template.
      var around: (first: String, last: String)? {
        if type == "BertProcessing", let cls, let sep { return (cls.token, sep.token) }
        guard type == "TemplateProcessing", let single, single.count == 3,
          let first = single[0]["SpecialToken"], single[1]["Sequence"]?.id == "A",
          let last = single[2]["SpecialToken"]
        else { return nil }
        return (first.id, last.id)
      }
    }

    struct AddedToken: Decodable { var content: String }

    var model: Model
    var normalizer: Normalizer?
    var preTokenizer: Typed?
    var postProcessor: PostProcessor?
    var addedTokens: [AddedToken]?

    enum CodingKeys: String, CodingKey {
      case model, normalizer
      case preTokenizer = "pre_tokenizer"
      case postProcessor = "post_processor"
      case addedTokens = "added_tokens"
    }
  }

  /// Reads the vocabulary and the tokenizer's options from `tokenizer.json` at `url`.
  private mutating func readTokenizerJSON(_ url: URL) throws {
    let json = try Self.decodeIfPresent(TokenizerJSON.self, url)!
    func refuse(_ feature: String) -> EmbeddingError {
      .unsupported(source: url.path, feature: feature + " (vdb runs BERT's WordPiece tokenizer)")
    }
    guard json.model.type ?? "WordPiece" == "WordPiece" else {
      throw refuse("model type '\(json.model.type ?? "")'")
    }
    guard let normalizer = json.normalizer, normalizer.type == "BertNormalizer" else {
      throw refuse("normalizer \(json.normalizer.map { "'\($0.type)'" } ?? "none")")
    }
    guard normalizer.cleanText ?? true else { throw refuse("clean_text false") }
    guard let preTokenizer = json.preTokenizer, preTokenizer.type == "BertPreTokenizer" else {
      throw refuse("pre_tokenizer \(json.preTokenizer.map { "'\($0.type)'" } ?? "none")")
    }
    guard let around = json.postProcessor?.around else {
      throw refuse(
        "post_processor \(json.postProcessor.map { "'\($0.type)'" } ?? "none") other than"
          + " [CLS] text [SEP]")
    }
    // Ids must number the tokens from 0 without a gap: the vocabulary is an array.
    var tokens = [String?](repeating: nil, count: json.model.vocab.count)
    for (token, id) in json.model.vocab {
      guard tokens.indices.contains(id), tokens[id] == nil else {
        throw EmbeddingError.invalidVocabulary(
          source: url.path,
          reason: "token \(String(reflecting: token)) has id \(id): the \(tokens.count) ids"
            + " must be 0…\(tokens.count - 1), each once")
      }
      tokens[id] = token
    }
    vocabulary = tokens.map { $0! }
    tokenizer.lowercase = normalizer.lowercase ?? true
    tokenizer.stripAccents = normalizer.stripAccents
    tokenizer.splitCJKCharacters = normalizer.handleChineseChars ?? true
    json.model.unkToken.map { tokenizer.unknownToken = $0 }
    json.model.continuingSubwordPrefix.map { tokenizer.continuationPrefix = $0 }
    json.model.maxInputCharsPerWord.map { tokenizer.maxCharactersPerWord = $0 }
    (tokenizer.classifierToken, tokenizer.separatorToken) = around
    if let added = json.addedTokens { tokenizer.specialTokens = added.map(\.content) }
  }

  private struct SentenceBertConfig: Decodable {
    var maxSeqLength: Int?
    enum CodingKeys: String, CodingKey { case maxSeqLength = "max_seq_length" }
  }

  /// `1_Pooling/config.json`: the modes, as sentence-transformers 5.3 and later write
  /// them (`"pooling_mode": "mean"`, or a list), else one flag a mode as earlier releases
  /// did (`"pooling_mode_mean_tokens": true`); sentence-transformers concatenates the
  /// vectors of every mode set.
  private struct PoolingConfig: Decodable {
    /// The modes set, sorted, by their names in the `pooling_mode` form (`mean`, `cls`,
    /// `max`, `lasttoken`, …).
    var set: [String]
    /// False: the prompt's tokens are left out of the pooling.
    var includesPrompt: Bool

    /// The flags' names in the `pooling_mode` form.
    private static let flags = [
      "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
      "pooling_mode_mean_tokens": "mean",
      "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
      "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken",
    ]

    init(from decoder: Decoder) throws {
      let object = try decoder.container(keyedBy: AnyKey.self)
      let modeKey = AnyKey(stringValue: "pooling_mode")
      if let mode = try? object.decode(String.self, forKey: modeKey) {
        set = [mode]
      } else if object.contains(modeKey), try !object.decodeNil(forKey: modeKey) {
        // Anything but a string or a list of strings is named by the decoding error.
        set = try object.decode([String].self, forKey: modeKey).sorted()
      } else {
        set = try object.allKeys.filter { $0.stringValue.hasPrefix("pooling_mode_") }
          .filter { try object.decodeIfPresent(Bool.self, forKey: $0) == true }
          .map {
            Self.flags[$0.stringValue] ?? String($0.stringValue.dropFirst("pooling_mode_".count))
          }
          .sorted()
      }
      includesPrompt =
        try object.decodeIfPresent(Bool.self, forKey: AnyKey(stringValue: "include_prompt")) ?? true
    }

    private struct AnyKey: CodingKey {
      var stringValue: String
      var intValue: Int? { nil }
      init(stringValue: String) { self.stringValue = stringValue }
      init?(intValue: Int) { nil }
    }
  }

  private struct Module: Decodable {
    var type: String
  }

  init(directory: URL, config: BertConfig) throws {
    maxSequenceLength = config.maxPositions
    if let tokenizerConfig = try Self.decodeIfPresent(
      TokenizerConfig.self, directory.appendingPathComponent("tokenizer_config.json"))
    {
      tokenizer.lowercase = tokenizerConfig.doLowerCase ?? true
      tokenizer.stripAccents = tokenizerConfig.stripAccents
      tokenizer.splitCJKCharacters = tokenizerConfig.tokenizeChineseChars ?? true
      tokenizerConfig.unkToken.map { tokenizer.unknownToken = $0.text }
      tokenizerConfig.clsToken.map { tokenizer.classifierToken = $0.text }
      tokenizerConfig.sepToken.map { tokenizer.separatorToken = $0.text }
      // Without a max_seq_length below, sentence-transformers truncates at the smaller of
      // the position table and the tokenizer's limit.
      if let limit = tokenizerConfig.modelMaxLength, limit >= 2, limit < Double(maxSequenceLength) {
        maxSequenceLength = Int(limit)
      }
    }
    let tokenizerJSON = directory.appendingPathComponent("tokenizer.json")
    if !FileManager.default.fileExists(atPath: directory.appendingPathComponent("vocab.txt").path),
      FileManager.default.fileExists(atPath: tokenizerJSON.path)
    {
      try readTokenizerJSON(tokenizerJSON)
    }
    let sentenceURL = directory.appendingPathComponent("sentence_bert_config.json")
    if let sentence = try Self.decodeIfPresent(SentenceBertConfig.self, sentenceURL),
      let length = sentence.maxSeqLength
    {
      // Checked here, so that the error names this file rather than the weights.
      guard (2...config.maxPositions).contains(length) else {
        throw EmbeddingError.invalidConfiguration(
          source: sentenceURL.path,
          reason: "max_seq_length \(length) is outside 2...\(config.maxPositions)"
            + " (max_position_embeddings in config.json)")
      }
      maxSequenceLength = length
    }
    let poolingURL = directory.appendingPathComponent("1_Pooling/config.json")
    let poolingConfig = try Self.decodeIfPresent(PoolingConfig.self, poolingURL)
    if let poolingConfig {
      switch poolingConfig.set {
      case ["mean"]: pooling = .mean
      case ["cls"]: pooling = .cls
      case let modes:
        throw EmbeddingError.unsupported(
          source: poolingURL.path,
          feature: modes.isEmpty
            ? "no pooling mode set (vdb pools by mean or by CLS token)"
            : "pooling by \(modes.joined(separator: " + ")) (vdb pools by mean or by CLS token)")
      }
    }
    let sentenceTransformersURL = directory.appendingPathComponent(
      "config_sentence_transformers.json")
    let sentenceTransformers = try Self.decodeIfPresent(
      SentenceTransformersConfig.self, sentenceTransformersURL)
    if let named = sentenceTransformers?.prompts {
      // sentence-transformers' encode_query and encode_document take these names.
      func prompt(_ names: String...) -> String {
        names.lazy.compactMap { named[$0] ?? nil }.first ?? ""
      }
      prompts = SentenceEncoder.Prompts(
        query: prompt("query"), document: prompt("document", "passage", "corpus"))
    }
    if let name = sentenceTransformers?.similarityFunction {
      guard let known = SentenceEncoder.Similarity(rawValue: name) else {
        throw EmbeddingError.unsupported(
          source: sentenceTransformersURL.path,
          feature: "similarity_fn_name '\(name)' (vdb compares by cosine, dot or euclidean)")
      }
      similarity = known
    }
    if poolingConfig?.includesPrompt == false, !prompts.isEmpty {
      throw EmbeddingError.unsupported(
        source: poolingURL.path,
        feature: "include_prompt false (pooling that leaves the prompt's tokens out)")
    }
    let modulesURL = directory.appendingPathComponent("modules.json")
    if let modules = try Self.decodeIfPresent([Module].self, modulesURL) {
      // A module this does not run (a Dense projection, say) would change every vector:
      // refused, never skipped.
      let runs = [".Transformer", ".Pooling", ".Normalize", ".Dropout"]
      if let other = modules.first(where: { module in !runs.contains { module.type.hasSuffix($0) } }
      ) {
        throw EmbeddingError.unsupported(
          source: modulesURL.path,
          feature: "module \(other.type) (vdb runs Transformer, Pooling and Normalize)")
      }
      normalizesOutput = modules.contains { $0.type.hasSuffix(".Normalize") }
    }
  }

  private static func decodeIfPresent<T: Decodable>(_ type: T.Type, _ url: URL) throws -> T? {
    guard FileManager.default.fileExists(atPath: url.path) else { return nil }
    return try decodeJSON(type, from: readFile(url), source: url.path)
  }
}
