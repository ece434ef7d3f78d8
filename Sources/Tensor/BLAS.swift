import CBLAS
import CKernels

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Matrix products on OpenBLAS, row-major throughout.
///
/// Threading model: parallelism belongs to the callers (see ``Parallel``). The first
/// call into this type sets OpenBLAS to one thread, so each `gemm` runs on the thread
/// that calls it and two threads may call it at once; `linear(…, columns:)` computes a
/// slice of a layer, so threads can share one product.
///
/// ```swift
/// // y = x·Wᵀ + b for x [3, 4], W [5, 4] (PyTorch's [out, in]), b [5]: y is [3, 5]
/// BLAS.linear(rows: 3, input: x, weight: w, bias: b, output: y)
/// ```
public enum BLAS {
  /// Whether an operand is used as stored or transposed.
  public enum Transpose: Sendable {
    case none
    case transposed

    @usableFromInline var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
  }

  /// C ← alpha · op(A) · op(B) + beta · C, all row-major, in float32 or float64.
  ///
  /// op(A) is `m × k`, op(B) is `k × n`, C is `m × n`; `lda`, `ldb`, `ldc` are the
  /// distances between consecutive rows *as stored*, so a sub-matrix (e.g. one attention
  /// head inside a wider row) is passed as a pointer to its first element with the
  /// full row length. With `beta == 0` the previous contents of C are ignored.
  ///
  /// Traps on dimensions that cannot describe the operands (negative sizes, a leading
  /// dimension shorter than a stored row); a bad pointer is undefined behaviour.
  /// Inlinable so that a caller in another module calls the product of its precision
  /// directly, not through the generic.
  @inlinable
  public static func gemm<T: TensorScalar>(
    _ transposeA: Transpose, _ transposeB: Transpose,
    m: Int, n: Int, k: Int,
    alpha: T = 1,
    a: UnsafePointer<T>, lda: Int,
    b: UnsafePointer<T>, ldb: Int,
    beta: T = 0,
    c: UnsafeMutablePointer<T>, ldc: Int
  ) {
    precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative size m=\(m) n=\(n) k=\(k)")
    precondition(lda >= (transposeA == .none ? k : m) && lda > 0, "gemm: lda \(lda) too small")
    precondition(ldb >= (transposeB == .none ? n : k) && ldb > 0, "gemm: ldb \(ldb) too small")
    precondition(ldc >= n && ldc > 0, "gemm: ldc \(ldc) too small")
    if m == 0 || n == 0 { return }
    prepare()
    T.cblasGemm(
      CblasRowMajor, transposeA.cblas, transposeB.cblas,
      Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
  }

  /// Up to this many rows, ``linear(rows:inFeatures:outFeatures:input:weight:bias:output:columns:)``
  /// uses the unpacked kernel instead of a gemm (measured with encoder-bench).
  public nonisolated(unsafe) static var smallLinearRows = 32

  /// A fully connected layer as PyTorch stores it: y = x · Wᵀ + b, one gemm.
  ///
  /// - `input` x is `rows × inFeatures`, `weight` W is `outFeatures × inFeatures`
  ///   (row-major, as in safetensors files), `bias` b has `outFeatures` elements (or is
  ///   nil), and `output` y is `rows × outFeatures`.
  /// - `columns` restricts the work to those output columns (rows of W), leaving the
  ///   others untouched, so that threads can each compute a slice of one layer:
  ///
  /// ```swift
  /// let slices = Parallel.split(out, into: Parallel.coreCount, multipleOf: 16)
  /// Parallel.forEach(slices.count) { i in
  ///   BLAS.linear(rows: n, inFeatures: k, outFeatures: out, input: x, weight: w, bias: b,
  ///               output: y, columns: slices[i])
  /// }
  /// ```
  public static func linear(
    rows: Int, inFeatures: Int, outFeatures: Int,
    input x: UnsafePointer<Float>,
    weight w: UnsafePointer<Float>,
    bias b: UnsafePointer<Float>?,
    output y: UnsafeMutablePointer<Float>,
    columns: Range<Int>? = nil
  ) {
    let columns = columns ?? 0..<outFeatures
    precondition(
      columns.lowerBound >= 0 && columns.upperBound <= outFeatures,
      "linear: columns \(columns) outside 0..<\(outFeatures)")
    if rows <= smallLinearRows {
      // A gemm would spend as long packing W as multiplying (see vdb_linear_rows).
      vdb_linear_rows(
        Int32(rows), Int32(inFeatures), Int32(columns.count), x,
        w + columns.lowerBound * inFeatures, b.map { $0 + columns.lowerBound },
        y + columns.lowerBound, Int32(outFeatures))
      return
    }
    if let b {
      for row in 0..<rows {
        (y + row * outFeatures + columns.lowerBound).update(
          from: b + columns.lowerBound, count: columns.count)
      }
    }
    gemm(
      .none, .transposed, m: rows, n: columns.count, k: inFeatures,
      a: x, lda: inFeatures,
      b: w + columns.lowerBound * inFeatures, ldb: inFeatures,
      beta: b == nil ? 0 : 1,
      c: y + columns.lowerBound, ldc: outFeatures)
  }

  /// ``linear(rows:inFeatures:outFeatures:input:weight:bias:output:columns:)`` on tensors:
  /// `input` is `[rows, in]`, `weight` `[out, in]`, `bias` `[out]`; returns `[rows, out]`.
  public static func linear(_ input: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    precondition(input.rank == 2 && weight.rank == 2, "linear: input and weight must be matrices")
    precondition(input.shape[1] == weight.shape[1], "linear: \(input.shape) · \(weight.shape)ᵀ")
    precondition(bias.map { $0.values.count == weight.shape[0] } ?? true, "linear: bias size")
    var output = Tensor(shape: [input.shape[0], weight.shape[0]])
    output.values.withUnsafeMutableBufferPointer { y in
      input.values.withUnsafeBufferPointer { x in
        weight.values.withUnsafeBufferPointer { w in
          if let bias {
            bias.values.withUnsafeBufferPointer { b in
              linear(
                rows: input.shape[0], inFeatures: input.shape[1], outFeatures: weight.shape[0],
                input: x.baseAddress!, weight: w.baseAddress!, bias: b.baseAddress!,
                output: y.baseAddress!)
            }
          } else {
            linear(
              rows: input.shape[0], inFeatures: input.shape[1], outFeatures: weight.shape[0],
              input: x.baseAddress!, weight: w.baseAddress!, bias: nil, output: y.baseAddress!)
          }
        }
      }
    }
    return output
  }

  /// The size of OpenBLAS's own thread pool (1 after ``prepare()``).
  public static var openBLASThreads: Int {
    get { Int(openblas_get_num_threads()) }
    set { openblas_set_num_threads(Int32(max(1, newValue))) }
  }

  /// The name of the kernel set OpenBLAS uses, e.g. "SkylakeX" or "Haswell".
  public static var coreName: String {
    prepare()
    return openBLASCoreName() ?? "unknown"
  }

  /// Configures OpenBLAS once per process: one thread per call, and the best kernels.
  ///
  /// Called by every `gemm`; call it yourself before using CBLAS directly.
  ///
  /// Kernels: OpenBLAS 0.3.21 (Debian 12) knows no CPU newer than itself. It picks its
  /// AVX2 "Haswell" kernels on AMD Zen 4/5 (AVX-512), at half the speed of its "SkylakeX"
  /// AVX-512 kernels, and its SSE3 "Prescott" kernels on Intel models it has not heard of
  /// (Xeon 5th generation, model 207: a quarter of SkylakeX's speed). Unless
  /// `OPENBLAS_CORETYPE` is set (an explicit choice, which is respected), the widest
  /// ``KernelSet`` whose instructions the CPU has is used when OpenBLAS picked narrower
  /// ones.
  public static func prepare() {
    _ = configured
  }

  private static let configured: Bool = {
    if getenv("OPENBLAS_CORETYPE") == nil, let core = openBLASCoreName(),
      let widest = KernelSet.widestOfThisCPU, !widest.isMatched(byCore: core)
    {
      _ = switchKernels(to: widest)
    }
    openblas_set_num_threads(1)
    stopIdleWorkers()
    return true
  }()

  /// OpenBLAS starts its worker threads as the library loads, and each spins for about
  /// 2^28 cycles (~0.1 s) before it sleeps: on a two-core machine, a core taken from the
  /// process's own threads for the first tenth of a second of every process — the time a
  /// model loads in. With one thread per call they never get work, so they are stopped
  /// (OpenBLAS starts them again by itself if its thread count is raised).
  private static func stopIdleWorkers() {
    typealias Shutdown = @convention(c) () -> Int32
    guard let symbol = lookUp("blas_thread_shutdown_") else { return }
    _ = unsafeBitCast(symbol, to: Shutdown.self)()
  }

  /// OpenBLAS kernel sets worth choosing on x86-64.
  public enum KernelSet: String, Sendable, CaseIterable {
    /// AVX-512 (needs AVX-512 F, BW, DQ, VL and CD).
    case skylakeX = "SkylakeX"
    /// AVX2 with FMA.
    case haswell = "Haswell"

    var requiredCPUFlags: [String] {
      switch self {
      case .skylakeX: return ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "fma"]
      case .haswell: return ["avx2", "fma"]
      }
    }

    /// The widest set whose instructions this CPU has (nil: neither).
    public static var widestOfThisCPU: KernelSet? {
      allCases.first { cpuHas($0.requiredCPUFlags) }
    }

    /// Whether OpenBLAS's kernels named `core` are these or wider ones (its later
    /// releases' names for AVX-512 cores included).
    public func isMatched(byCore core: String) -> Bool {
      let avx512 = ["SkylakeX", "Cooperlake", "SapphireRapids"]
      switch self {
      case .skylakeX: return avx512.contains(core)
      case .haswell: return (avx512 + ["Haswell", "Zen"]).contains(core)
      }
    }
  }

  /// Switches OpenBLAS to `kernels`, as `OPENBLAS_CORETYPE` would at start-up, whatever
  /// that variable says, and returns whether OpenBLAS now uses them. False (and no
  /// change) when the CPU lacks the instructions, or the BLAS is not an OpenBLAS built
  /// with dynamic kernel selection. Call it before other threads use BLAS.
  ///
  /// ```swift
  /// if BLAS.use(.skylakeX) { print(BLAS.coreName) }   // "SkylakeX"
  /// ```
  @discardableResult
  public static func use(_ kernels: KernelSet) -> Bool {
    prepare()
    return switchKernels(to: kernels)
  }

  private static func switchKernels(to kernels: KernelSet) -> Bool {
    #if os(Linux) && arch(x86_64)
      guard openBLASCoreName() != nil, cpuHas(kernels.requiredCPUFlags),
        let quit = lookUp("gotoblas_dynamic_quit"), let initialise = lookUp("gotoblas_dynamic_init")
      else { return openBLASCoreName() == kernels.rawValue }
      typealias Hook = @convention(c) () -> Void
      let previous = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
      setenv("OPENBLAS_CORETYPE", kernels.rawValue, 1)
      unsafeBitCast(quit, to: Hook.self)()
      unsafeBitCast(initialise, to: Hook.self)()
      if let previous {
        setenv("OPENBLAS_CORETYPE", previous, 1)
      } else {
        unsetenv("OPENBLAS_CORETYPE")
      }
      return openBLASCoreName() == kernels.rawValue
    #else
      return openBLASCoreName() == kernels.rawValue
    #endif
  }

  private static func openBLASCoreName() -> String? {
    typealias CoreName = @convention(c) () -> UnsafePointer<CChar>?
    guard let symbol = lookUp("openblas_get_corename") else { return nil }
    return unsafeBitCast(symbol, to: CoreName.self)().map { String(cString: $0) }
  }

  /// Whether /proc/cpuinfo lists all of `required` among the CPU's flags.
  private static func cpuHas(_ required: [String]) -> Bool {
    guard let file = fopen("/proc/cpuinfo", "r") else { return false }
    defer { fclose(file) }
    var line: UnsafeMutablePointer<CChar>? = nil
    var capacity = 0
    defer { free(line) }
    while getline(&line, &capacity, file) > 0, let line {
      let text = String(cString: line)
      guard text.hasPrefix("flags") else { continue }
      let flags = Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }))
      return required.allSatisfy { flags.contains(Substring($0)) }
    }
    return false
  }

  private static func lookUp(_ name: String) -> UnsafeMutableRawPointer? {
    #if canImport(Glibc)
      return dlsym(UnsafeMutableRawPointer(bitPattern: 0), name)  // RTLD_DEFAULT
    #else
      return dlsym(UnsafeMutableRawPointer(bitPattern: -2), name)  // RTLD_DEFAULT on Darwin
    #endif
  }
}
