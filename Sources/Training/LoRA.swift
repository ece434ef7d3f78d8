import Embedding
import Tensor

/// Which weights get low-rank adapters, at what rank and scale.
///
/// ```swift
/// var lora = LoRAConfiguration()          // rank 16, alpha 32, q/k/v/attention output
/// lora.targets += [.intermediate, .output] // the feed-forward weights too
/// ```
public struct LoRAConfiguration: Sendable, Equatable, Codable {
  /// A weight matrix of every transformer layer that can carry an adapter.
  public enum Target: String, Sendable, Codable, CaseIterable {
    case query, key, value
    case attentionOutput = "attention_output"
    case intermediate, output

    /// The adapted weight of layer `layer`, named as in ``BertConfig/parameterShapes()``.
    public func weightName(layer: Int) -> String {
      let prefix = "encoder.layer.\(layer)."
      switch self {
      case .query, .key, .value: return prefix + "attention.self.\(rawValue).weight"
      case .attentionOutput: return prefix + "attention.output.dense.weight"
      case .intermediate: return prefix + "intermediate.dense.weight"
      case .output: return prefix + "output.dense.weight"
      }
    }
  }

  /// The rank r of every adapter (`B·A` with `A` r × in, `B` out × r).
  public var rank: Int
  /// The update is `(alpha / rank)·B·A`, as in the LoRA paper and PEFT.
  public var alpha: Double
  /// The adapted weights, in every layer.
  public var targets: [Target]

  public init(
    rank: Int = 16, alpha: Double = 32,
    targets: [Target] = [.query, .key, .value, .attentionOutput]
  ) {
    self.rank = rank
    self.alpha = alpha
    self.targets = targets
  }

  /// `alpha / rank`.
  public var scale: Double { alpha / Double(rank) }

  /// - Throws: ``TrainingError/badInput(_:)`` for a rank below 1, a non-positive alpha, or
  ///   no (or repeated) targets.
  public func validate() throws(TrainingError) {
    if rank < 1 { throw .badInput("LoRA rank must be at least 1, got \(rank)") }
    if !(alpha > 0) || !alpha.isFinite { throw .badInput("LoRA alpha must be positive") }
    if targets.isEmpty || Set(targets).count != targets.count {
      throw .badInput("LoRA targets must be given, each once: \(targets.map(\.rawValue))")
    }
  }
}

/// Low-rank adapters (LoRA, Hu et al. 2021) over a BERT's weights: for each adapted weight
/// `W` (out × in), `W′ = W + s·B·A` with `A` (r × in), `B` (out × r) and `s = alpha / r`.
///
/// The adapters are trained through the merged weights: the encoder runs with `W′`, its
/// backward pass gives `∂L/∂W′`, and since `W′` is linear in `A` and `B`,
/// `∂L/∂A = s·Bᵀ·∂L/∂W′` and `∂L/∂B = s·∂L/∂W′·Aᵀ`. So training, queries and re-embedding
/// all run one forward pass — the merged model — and the stored version is only `A`, `B`
/// and the configuration, with its parent.
///
/// ```swift
/// let adapters = try LoRAAdapters<Float>(config: base.config, configuration: LoRAConfiguration(), seed: 42)
/// let served = adapters.merged(into: base)            // EncoderParameters, W + s·B·A
/// let delta = adapters.tensors()                      // "…query.weight.lora_A" → Tensor
/// ```
public struct LoRAAdapters<Scalar: TensorScalar>: Sendable, Equatable {
  /// Where one weight's adapter lives in ``values``.
  public struct Entry: Sendable, Equatable {
    /// The adapted weight, named as in ``BertConfig/parameterShapes()``.
    public let weight: String
    public let outFeatures: Int
    public let inFeatures: Int
    /// Offset of `A` (rank × inFeatures), then of `B` (outFeatures × rank).
    public let a: Int
    public let b: Int
  }

  public let configuration: LoRAConfiguration
  public let entries: [Entry]
  /// Every adapter's `A` then `B`, entry after entry.
  public var values: [Scalar]

  /// Fresh adapters: `A` uniform in ±1/√in (PyTorch's default for a linear layer, as PEFT
  /// starts), `B` zero, so the merged model starts as the base model.
  ///
  /// - Throws: ``TrainingError/badInput(_:)`` for an invalid `configuration`.
  public init(config: BertConfig, configuration: LoRAConfiguration, seed: UInt64)
    throws(TrainingError)
  {
    try configuration.validate()
    self.configuration = configuration
    let shapes = Dictionary(uniqueKeysWithValues: config.parameterShapes())
    var entries: [Entry] = []
    var offset = 0
    for layer in 0..<config.layerCount {
      for target in configuration.targets {
        let name = target.weightName(layer: layer)
        let shape = shapes[name]!
        let r = configuration.rank
        entries.append(
          Entry(
            weight: name, outFeatures: shape[0], inFeatures: shape[1], a: offset,
            b: offset + r * shape[1]))
        offset += r * (shape[0] + shape[1])
      }
    }
    self.entries = entries
    values = [Scalar](repeating: 0, count: offset)
    var random = Xoshiro256(seed: seed)
    for entry in entries {
      let bound = 1 / Double(entry.inFeatures).squareRoot()
      for i in entry.a..<entry.b {
        values[i] = Scalar(bound * (2 * Double(random.nextUnitFloat()) - 1))
      }
    }
  }

  /// Adapters from stored tensors (`<weight>.lora_A`, `<weight>.lora_B`, as ``tensors()``).
  ///
  /// - Throws: ``TrainingError/badParameter(name:reason:)`` for a missing or mis-shaped
  ///   tensor, ``TrainingError/badInput(_:)`` for an invalid `configuration`.
  public init(config: BertConfig, configuration: LoRAConfiguration, tensors: [String: Tensor])
    throws(TrainingError)
  {
    try self.init(config: config, configuration: configuration, seed: 0)
    for entry in entries {
      let r = configuration.rank
      for (suffix, offset, shape) in [
        (".lora_A", entry.a, [r, entry.inFeatures]), (".lora_B", entry.b, [entry.outFeatures, r]),
      ] {
        let name = entry.weight + suffix
        guard let tensor = tensors[name] else { throw .badParameter(name: name, reason: "missing") }
        guard tensor.shape == shape else {
          throw .badParameter(name: name, reason: "has shape \(tensor.shape), expected \(shape)")
        }
        if let bad = tensor.values.firstIndex(where: { !$0.isFinite }) {
          throw .badParameter(name: name, reason: "holds a NaN or infinite value at \(bad)")
        }
        for (j, v) in tensor.values.enumerated() { values[offset + j] = Scalar(v) }
      }
    }
  }

  /// The adapters as named tensors: `<weight>.lora_A` (r × in) and `<weight>.lora_B`
  /// (out × r), all the stored version needs besides ``configuration`` and its parent.
  public func tensors() -> [String: Tensor] {
    var result: [String: Tensor] = [:]
    let r = configuration.rank
    for entry in entries {
      result[entry.weight + ".lora_A"] = Tensor(
        shape: [r, entry.inFeatures],
        values: values[entry.a..<entry.b].map { Float($0) })
      result[entry.weight + ".lora_B"] = Tensor(
        shape: [entry.outFeatures, r],
        values: values[entry.b..<(entry.b + entry.outFeatures * r)].map { Float($0) })
    }
    return result
  }

  /// `base` with every adapted weight replaced by `W + s·B·A`.
  public func merged(into base: EncoderParameters<Scalar>) -> EncoderParameters<Scalar> {
    var result = base
    let s = Scalar(configuration.scale)
    let r = configuration.rank
    result.values.withUnsafeMutableBufferPointer { w in
      values.withUnsafeBufferPointer { v in
        for entry in entries {
          let weight = w.baseAddress! + base.layout.entry(named: entry.weight)!.offset
          // W[out × in] += s · B[out × r] · A[r × in]
          Scalar.gemm(
            transposeA: false, transposeB: false, m: entry.outFeatures, n: entry.inFeatures,
            k: r, alpha: s, a: v.baseAddress! + entry.b, lda: r, b: v.baseAddress! + entry.a,
            ldb: entry.inFeatures, beta: 1, c: weight, ldc: entry.inFeatures)
        }
      }
    }
    return result
  }

  /// ∂L/∂(adapters), laid out as ``values``, from ∂L/∂(merged weights) laid out by `layout`:
  /// `∂L/∂A = s·Bᵀ·∂L/∂W′`, `∂L/∂B = s·∂L/∂W′·Aᵀ`.
  public func gradients(weightGradients g: [Scalar], layout: ParameterLayout) -> [Scalar] {
    var result = [Scalar](repeating: 0, count: values.count)
    let s = Scalar(configuration.scale)
    let r = configuration.rank
    result.withUnsafeMutableBufferPointer { d in
      values.withUnsafeBufferPointer { v in
        g.withUnsafeBufferPointer { g in
          for entry in entries {
            let dW = g.baseAddress! + layout.entry(named: entry.weight)!.offset
            let (out, inputs) = (entry.outFeatures, entry.inFeatures)
            // dA[r × in] = s · Bᵀ · dW
            Scalar.gemm(
              transposeA: true, transposeB: false, m: r, n: inputs, k: out, alpha: s,
              a: v.baseAddress! + entry.b, lda: r, b: dW, ldb: inputs, beta: 0,
              c: d.baseAddress! + entry.a, ldc: inputs)
            // dB[out × r] = s · dW · Aᵀ
            Scalar.gemm(
              transposeA: false, transposeB: true, m: out, n: r, k: inputs, alpha: s,
              a: dW, lda: inputs, b: v.baseAddress! + entry.a, ldb: inputs, beta: 0,
              c: d.baseAddress! + entry.b, ldc: r)
          }
        }
      }
    }
    return result
  }
}
