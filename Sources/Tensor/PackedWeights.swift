import CKernels

/// A linear layer's weight matrix packed once in a narrower number format for its kernel
/// in Sources/CKernels: y = x · Wᵀ + b, each row of x converted as it is read.
///
/// - ``Format/bfloat16`` (`bf16.c`): W and x rounded to bfloat16, every sum in float32.
///   bfloat16 keeps float32's exponent and 8 bits of mantissa; on all-MiniLM-L6-v2 it
///   keeps sentence vectors at cosine ≥ 0.9999 of float32's (docs/encoder.md). With
///   AVX-512 BF16 (`vdpbf16ps`) a product step does twice the work of a float32 FMA;
///   elsewhere the values are widened in registers, which halves the weight memory but
///   not the arithmetic.
/// - ``Format/int8`` (`int8.c`): W quantized to int8 per block of 32 inputs and x to
///   int16 per row, the products summed exactly in int32 and scaled per block in float32.
///   One weight scale per 32 values (not per output channel) keeps the sentence vectors at
///   cosine ≥ 0.999 of float32's, where 8-bit activations do not.
/// - ``Format/w8a8`` (`w8a8.c`): W and x both multiplied by one orthogonal rotation (random
///   signs, then Walsh–Hadamard transforms over spans of up to 128 inputs), then both
///   quantized to int8 per block of 32 inputs. The rotation spreads the activations'
///   outliers, so 8-bit activations keep cosine ≥ 0.999 too; with AVX-512 VNNI
///   (`vpdpbusd`) a layer runs at about twice int8's speed.
///
/// Each kernel runs on the widest instruction set the CPU has (``KernelLevel``), and
/// every level gives the same sums.
///
/// ```swift
/// let w = PackedWeights(weight.base, outFeatures: 1536, inFeatures: 384, format: .int8)
/// w.linear(rows: n, input: x, bias: b.base, output: y, columns: 0..<1536)
/// ```
package final class PackedWeights: @unchecked Sendable {
  /// A number format with a packed kernel.
  package enum Format: Sendable, CaseIterable {
    case bfloat16
    case int8
    case w8a8
  }

  package let format: Format
  package let outFeatures: Int
  package let inFeatures: Int
  private let packed: Buffer<UInt8>

  /// Packs W (`outFeatures × inFeatures`, row-major as PyTorch stores it) in `format`.
  package init(
    _ weight: UnsafePointer<Float>, outFeatures: Int, inFeatures: Int, format: Format
  ) {
    precondition(outFeatures > 0 && inFeatures > 0, "PackedWeights: empty matrix")
    self.format = format
    self.outFeatures = outFeatures
    self.inFeatures = inFeatures
    let (k, columns) = (Int32(inFeatures), Int32(outFeatures))
    switch format {
    case .bfloat16:
      packed = Buffer<UInt8>(uninitializedCount: 2 * vdb_bf16_packed_count(k, columns))
      packed.base.withMemoryRebound(to: UInt16.self, capacity: packed.count / 2) {
        vdb_bf16_pack(k, columns, weight, $0)
      }
    case .int8:
      packed = Buffer<UInt8>(uninitializedCount: vdb_int8_packed_size(k, columns))
      vdb_int8_pack(k, columns, weight, packed.base)
    case .w8a8:
      packed = Buffer<UInt8>(uninitializedCount: vdb_w8a8_packed_size(k, columns))
      vdb_w8a8_pack(k, columns, weight, packed.base)
    }
  }

  /// Packs W in bfloat16 from its transpose: `transposed` is `inFeatures × outFeatures`, rows
  /// `rowStride` floats apart (W[c][i] = transposed[i · rowStride + c]). Training packs a
  /// layer's W this way for `dx = dy · W`, and the layer's input for `dW = dyᵀ · x`.
  package init(
    bfloat16Transposed transposed: UnsafePointer<Float>, outFeatures: Int, inFeatures: Int,
    rowStride: Int
  ) {
    precondition(outFeatures > 0 && inFeatures > 0, "PackedWeights: empty matrix")
    precondition(rowStride >= outFeatures, "PackedWeights: rows overlap")
    format = .bfloat16
    self.outFeatures = outFeatures
    self.inFeatures = inFeatures
    let (k, columns) = (Int32(inFeatures), Int32(outFeatures))
    packed = Buffer<UInt8>(uninitializedCount: 2 * vdb_bf16_packed_count(k, columns))
    packed.base.withMemoryRebound(to: UInt16.self, capacity: packed.count / 2) {
      vdb_bf16_pack_transposed(k, columns, transposed, Int32(rowStride), $0)
    }
  }

  /// Bytes the packed weights (and their scales) take.
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
    let (k, n) = (Int32(inFeatures), Int32(outFeatures))
    let (begin, end) = (Int32(columns.lowerBound), Int32(columns.upperBound))
    switch format {
    case .bfloat16:
      packed.base.withMemoryRebound(to: UInt16.self, capacity: packed.count / 2) {
        vdb_bf16_linear(Int32(rows), k, $0, begin, end, x, b, y, n)
      }
    case .int8:
      vdb_int8_linear(Int32(rows), k, n, packed.base, begin, end, x, b, y, n)
    case .w8a8:
      vdb_w8a8_linear(Int32(rows), k, n, packed.base, begin, end, x, b, y, n)
    }
  }

  /// As ``linear(rows:input:bias:output:columns:)``, with row r's input i at
  /// `x[r · rowStride + i · inputStride]`: `inputStride` 1 reads rows `rowStride` apart,
  /// `rowStride` 1 reads x from its transpose (as `dW = dyᵀ · x` reads dy). bfloat16 only.
  package func linear(
    rows: Int, input x: UnsafePointer<Float>, rowStride: Int, inputStride: Int,
    bias b: UnsafePointer<Float>?, output y: UnsafeMutablePointer<Float>, columns: Range<Int>
  ) {
    precondition(format == .bfloat16, "linear: strided input is bfloat16's")
    precondition(
      columns.lowerBound >= 0 && columns.upperBound <= outFeatures,
      "linear: columns \(columns) outside 0..<\(outFeatures)")
    packed.base.withMemoryRebound(to: UInt16.self, capacity: packed.count / 2) {
      vdb_bf16_linear_strided(
        Int32(rows), Int32(inFeatures), $0, Int32(columns.lowerBound), Int32(columns.upperBound),
        x, rowStride, inputStride, b, y, Int32(outFeatures))
    }
  }

  /// One head of scaled dot-product attention over one sequence with bfloat16 products:
  /// context = softmax(q · kᵀ / √d) · v, where q, k and v are `length × headSize` with
  /// rows `stride` floats apart and context's rows are `contextStride` apart. Keys and
  /// values are packed as weights per call (S = Q · Kᵀ is Q through "weights" K, P · V is
  /// P through Vᵀ). `scratch` holds ``attentionScratchCount(length:headSize:)`` floats.
  package static func attention(
    length: Int, headSize: Int, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
    v: UnsafePointer<Float>, stride: Int, context: UnsafeMutablePointer<Float>,
    contextStride: Int, scratch: UnsafeMutablePointer<Float>
  ) {
    vdb_bf16_attention(
      Int32(length), Int32(headSize), q, k, v, Int32(stride), context, Int32(contextStride),
      scratch)
  }

  /// Floats of scratch ``attention(length:headSize:q:k:v:stride:context:contextStride:scratch:)``
  /// needs: the T × T scores and the packed keys and values.
  package static func attentionScratchCount(length: Int, headSize: Int) -> Int {
    vdb_bf16_attention_scratch(Int32(length), Int32(headSize))
  }

  /// The instruction sets a format's kernel can run on, narrowest first (the numbering
  /// CKernels' families share). The widest the CPU has is chosen at first use;
  /// `VDB_BF16_KERNEL` or `VDB_INT8_KERNEL` (`amx`, `avx512`, `avxvnni`, `avx2`, `plain`;
  /// the latter for int8 and w8a8 alike) ask for a narrower one.
  package enum KernelLevel: Int32, CaseIterable, Comparable, Sendable {
    case plain = 0
    case avx2 = 1
    /// AVX-VNNI (`vpdpwssd` on 256 bits), for int8 only: Intel since Alder Lake.
    case avxVNNI = 2
    /// AVX-512 BF16 (`vdpbf16ps`) for bfloat16, AVX-512 VNNI for int8 (`vpdpwssd`) and
    /// w8a8 (`vpdpbusd`).
    case avx512 = 3
    /// AMX tiles (`tdpbf16ps`), for bfloat16 only.
    case amx = 4

    /// Narrower than `b`: fewer or older instructions.
    package static func < (a: KernelLevel, b: KernelLevel) -> Bool { a.rawValue < b.rawValue }

    /// The level `format`'s kernel uses.
    package static func current(_ format: Format) -> KernelLevel {
      let raw: Int32
      switch format {
      case .bfloat16: raw = vdb_bf16_level()
      case .int8: raw = vdb_int8_level()
      case .w8a8: raw = vdb_w8a8_level()
      }
      return KernelLevel(rawValue: raw) ?? .plain
    }

    /// Switches `format`'s kernel to `level` or the widest below it the CPU has (nil: the
    /// widest), and returns the level now in use. For tests and benchmarks; call it while
    /// no layer runs.
    @discardableResult
    package static func use(_ level: KernelLevel?, for format: Format) -> KernelLevel {
      let wanted = level?.rawValue ?? -1
      let raw: Int32
      switch format {
      case .bfloat16: raw = vdb_bf16_set_level(wanted)
      case .int8: raw = vdb_int8_set_level(wanted)
      case .w8a8: raw = vdb_w8a8_set_level(wanted)
      }
      return KernelLevel(rawValue: raw) ?? .plain
    }

    /// The levels `format`'s kernel can run on this CPU, narrowest first.
    package static func available(_ format: Format) -> [KernelLevel] {
      let saved = current(format)
      defer { use(saved, for: format) }
      return allCases.filter { use($0, for: format) == $0 }
    }

    /// What the level is called for `format`'s kernel.
    package func name(_ format: Format) -> String {
      switch (self, format) {
      case (.plain, _): return "plain C"
      case (.avx2, .bfloat16): return "AVX2+FMA"
      case (.avx2, .int8): return "AVX2"
      case (.avxVNNI, .bfloat16): return "AVX-VNNI (no bfloat16 kernel)"
      case (.avxVNNI, .int8): return "AVX-VNNI"
      case (.avx512, .bfloat16): return "AVX-512 BF16"
      case (.avx512, .int8): return "AVX-512 VNNI"
      case (.amx, .bfloat16): return "AMX BF16"
      case (.amx, .int8): return "AMX (no int8 kernel)"
      case (.avx2, .w8a8): return "AVX2"
      case (.avxVNNI, .w8a8): return "AVX-VNNI (no w8a8 kernel)"
      case (.avx512, .w8a8): return "AVX-512 VNNI"
      case (.amx, .w8a8): return "AMX (no w8a8 kernel)"
      }
    }
  }
}
