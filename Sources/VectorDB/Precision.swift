import Embedding

/// The number format an encoder version computes in (docs/encoder.md): what
/// `Database.importModel(directory:precision:)` and `convertModel(version:precision:)`
/// take, and what `ModelInfo.precision` records (JSON: the case's name).
///
///     let info = try db.importModel(directory: modelDirectory, precision: .bfloat16)
///     let int8 = try db.convertModel(version: info.version, precision: .int8)
///
/// VectorDB's own type, so that its API does not hand out the encoder module's; it maps
/// one to one onto `SentenceEncoder.Precision` where a model is loaded or stored.
public enum Precision: String, Codable, Sendable, CaseIterable {
  /// Every product in float32: the reference the others are measured against.
  case float32
  /// Weights and layer inputs rounded to bfloat16, products summed in float32: about
  /// twice as fast on CPUs with AMX or AVX-512 BF16, vectors at cosine ≥ 0.9999 of float32's on
  /// all-MiniLM-L6-v2; elsewhere correct but slower than float32.
  case bfloat16
  /// Weights in int8 (one float32 scale per block of 32 values), layer inputs in int16
  /// (one per row), exact int32 sums: about 1.5× float32 with AVX-512 VNNI, 1.1–1.2× with
  /// AVX2 alone; vectors at cosine ≥ 0.999 of float32's on all-MiniLM-L6-v2.
  case int8
  /// Weights and layer inputs both in int8 after one orthogonal rotation that spreads the
  /// inputs' outliers: with AVX-512 VNNI about 1.5× int8's speed (the fastest precision
  /// on such CPUs without AMX, 1.2× bfloat16 on AMD Zen 4), elsewhere slower than int8;
  /// vectors at cosine ≥ 0.999 of float32's on all-MiniLM-L6-v2.
  case w8a8
}

extension Precision {
  /// Why this precision is a poor choice on this machine, or nil: its kernel needs
  /// instructions the CPU lacks, so it runs slower than a more precise one (w8a8 without
  /// AVX-512 VNNI, bfloat16 without AVX-512 BF16 or AMX, int8 without AVX2; docs/encoder.md).
  /// The vectors are the same on every CPU; only the speed differs. `vdb init` and
  /// `vdb models convert` print it as a warning.
  public var cpuWarning: String? { encoderPrecision.cpuWarning }

  /// The precision of an encoder as the encoder module names it.
  init(_ precision: SentenceEncoder.Precision) {
    switch precision {
    case .float32: self = .float32
    case .bfloat16: self = .bfloat16
    case .int8: self = .int8
    case .w8a8: self = .w8a8
    }
  }

  /// The encoder module's name for this precision, to load or convert an encoder with.
  var encoderPrecision: SentenceEncoder.Precision {
    switch self {
    case .float32: return .float32
    case .bfloat16: return .bfloat16
    case .int8: return .int8
    case .w8a8: return .w8a8
    }
  }
}
