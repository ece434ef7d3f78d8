import CKernels

/// A linear layer's weight matrix rounded to bfloat16 and packed once for
/// `vdb_bf16_linear` (Sources/CKernels/bf16.c): y = x · Wᵀ + b with x rounded to bfloat16
/// as it is read, and every sum in float32.
///
/// bfloat16 keeps float32's exponent and 8 bits of mantissa; on all-MiniLM-L6-v2 it keeps
/// sentence vectors at cosine ≥ 0.9999 of float32's (docs/encoder.md), where int8 weights
/// alone do not reach 0.999. On CPUs with AVX-512 BF16 (`vdpbf16ps`) a product step does
/// twice the work of a float32 FMA; elsewhere the values are widened in registers (AVX2,
/// or plain C), which halves the weight memory but not the arithmetic.
///
/// ```swift
/// let w = BFloat16Weights(weight.base, outFeatures: 1536, inFeatures: 384)
/// w.linear(rows: n, input: x, bias: b.base, output: y, columns: 0..<1536)
/// ```
package final class BFloat16Weights: @unchecked Sendable {
  package let outFeatures: Int
  package let inFeatures: Int
  private let packed: Buffer<UInt16>

  /// Rounds W (`outFeatures × inFeatures`, row-major as PyTorch stores it) to bfloat16.
  package init(_ weight: UnsafePointer<Float>, outFeatures: Int, inFeatures: Int) {
    precondition(outFeatures > 0 && inFeatures > 0, "BFloat16Weights: empty matrix")
    self.outFeatures = outFeatures
    self.inFeatures = inFeatures
    packed = Buffer<UInt16>(
      uninitializedCount: vdb_bf16_packed_count(Int32(inFeatures), Int32(outFeatures)))
    vdb_bf16_pack(Int32(inFeatures), Int32(outFeatures), weight, packed.base)
  }

  /// Bytes the packed weights take.
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
    vdb_bf16_linear(
      Int32(rows), Int32(inFeatures), packed.base, Int32(columns.lowerBound),
      Int32(columns.upperBound), x, b, y, Int32(outFeatures))
  }

  /// The instruction sets the kernel can run on, narrowest first.
  package enum KernelLevel: Int32, CaseIterable, Sendable {
    case plain = 0
    case avx2 = 1
    case avx512BF16 = 2

    /// The level in use: the widest the CPU has, unless `VDB_BF16_KERNEL` (`avx2`,
    /// `plain`) asked for a fallback.
    package static var current: KernelLevel { KernelLevel(rawValue: vdb_bf16_level()) ?? .plain }

    /// Switches the kernel to `level` or the widest below it the CPU has, and returns
    /// the level now in use. For tests and benchmarks; call it while no layer runs.
    @discardableResult
    package static func use(_ level: KernelLevel?) -> KernelLevel {
      KernelLevel(rawValue: vdb_bf16_set_level(level?.rawValue ?? -1)) ?? .plain
    }

    package var name: String {
      switch self {
      case .plain: return "plain C"
      case .avx2: return "AVX2+FMA"
      case .avx512BF16: return "AVX-512 BF16"
      }
    }
  }
}
