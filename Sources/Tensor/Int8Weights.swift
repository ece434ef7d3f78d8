import CKernels

/// A linear layer's weight matrix quantized to int8 per block of 32 inputs and packed once
/// for `vdb_int8_linear` (Sources/CKernels/int8.c): y = x · Wᵀ + b with each row of x
/// quantized to int16 per block of 32 as it is read, the products summed exactly in int32
/// and scaled per block in float32.
///
/// One scale per 32 values (not per output channel) keeps all-MiniLM-L6-v2's sentence
/// vectors at cosine ≥ 0.999 of float32's (docs/encoder.md). The integer products run on
/// AVX-512 VNNI (`vpdpwssd`), AVX2 (`vpmaddwd`), or plain C, all giving the same sums.
///
/// ```swift
/// let w = Int8Weights(weight.base, outFeatures: 1536, inFeatures: 384)
/// w.linear(rows: n, input: x, bias: b.base, output: y, columns: 0..<1536)
/// ```
package final class Int8Weights: @unchecked Sendable {
  package let outFeatures: Int
  package let inFeatures: Int
  private let packed: Buffer<UInt8>

  /// Quantizes W (`outFeatures × inFeatures`, row-major as PyTorch stores it).
  package init(_ weight: UnsafePointer<Float>, outFeatures: Int, inFeatures: Int) {
    precondition(outFeatures > 0 && inFeatures > 0, "Int8Weights: empty matrix")
    self.outFeatures = outFeatures
    self.inFeatures = inFeatures
    packed = Buffer<UInt8>(
      uninitializedCount: vdb_int8_packed_size(Int32(inFeatures), Int32(outFeatures)))
    vdb_int8_pack(Int32(inFeatures), Int32(outFeatures), weight, packed.base)
  }

  /// Bytes the packed weights and their scales take.
  package var byteCount: Int { packed.byteCount }

  /// Output columns `columns` of y = x · Wᵀ + b over `rows` rows; `input` is
  /// `rows × inFeatures`, `output` `rows × outFeatures` (other columns untouched), `bias`
  /// has `outFeatures` elements or is nil. Threads may each compute a slice of columns.
  package func linear(
    rows: Int, input x: UnsafePointer<Float>, bias b: UnsafePointer<Float>?,
    output y: UnsafeMutablePointer<Float>, columns: Range<Int>
  ) {
    precondition(
      columns.lowerBound >= 0 && columns.upperBound <= outFeatures,
      "linear: columns \(columns) outside 0..<\(outFeatures)")
    vdb_int8_linear(
      Int32(rows), Int32(inFeatures), Int32(outFeatures), packed.base,
      Int32(columns.lowerBound), Int32(columns.upperBound), x, b, y, Int32(outFeatures))
  }

  /// The instruction sets the kernel can run on, narrowest first.
  package enum KernelLevel: Int32, CaseIterable, Sendable {
    case plain = 0
    case avx2 = 1
    case avx512VNNI = 2

    /// The level in use: the widest the CPU has, unless `VDB_INT8_KERNEL` (`avx2`,
    /// `plain`) asked for a fallback.
    package static var current: KernelLevel { KernelLevel(rawValue: vdb_int8_level()) ?? .plain }

    /// Switches the kernel to `level` or the widest below it the CPU has, and returns
    /// the level now in use. For tests and benchmarks; call it while no layer runs.
    @discardableResult
    package static func use(_ level: KernelLevel?) -> KernelLevel {
      KernelLevel(rawValue: vdb_int8_set_level(level?.rawValue ?? -1)) ?? .plain
    }

    package var name: String {
      switch self {
      case .plain: return "plain C"
      case .avx2: return "AVX2"
      case .avx512VNNI: return "AVX-512 VNNI"
      }
    }
  }
}
