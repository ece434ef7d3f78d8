import Foundation

/// A fixed-size heap array with a stable address: the encoder's weights, activations and
/// scratch space, for inference and training alike.
///
/// Buffers are handed to BLAS and to worker threads as raw pointers; a class that owns one
/// allocation keeps that simple and frees it when the last reference goes.
///
/// ```swift
/// let weights = Buffer<Float>(tensor.values)
/// let scratch = Buffer<Float>(uninitializedCount: rows * width)
/// BLAS.gemm(.none, .transposed, m: rows, n: out, k: width, a: x, lda: width,
///           b: weights.base, ldb: width, c: scratch.base, ldc: out)
/// ```
package final class Buffer<Element>: @unchecked Sendable {
  package let count: Int
  package let base: UnsafeMutablePointer<Element>
  private let pool: BufferPool?
  private let capacityBytes: Int

  /// A buffer with every element set to `value`.
  package init(count: Int, repeating value: Element) {
    self.count = count
    pool = nil
    capacityBytes = 0
    base = .allocate(capacity: max(1, count))
    base.initialize(repeating: value, count: count)
  }

  /// A buffer of trivial elements whose contents are undefined until written, taken from
  /// `pool`: memory of finished passes is reused instead of being faulted in afresh, which
  /// otherwise costs the kernel a page clear per 4 KiB on every training step.
  package init(uninitializedCount count: Int, pool: BufferPool) {
    precondition(_isPOD(Element.self), "pooled buffers hold plain values only")
    self.count = count
    self.pool = pool
    let (memory, capacity) = pool.take(bytes: max(1, count) * MemoryLayout<Element>.stride)
    capacityBytes = capacity
    base = memory.bindMemory(to: Element.self, capacity: max(1, count))
  }

  deinit {
    if let pool {
      pool.give(UnsafeMutableRawPointer(base), bytes: capacityBytes)
    } else {
      base.deallocate()
    }
  }

  /// A copy of `values`.
  package init(_ values: [Element]) {
    count = values.count
    pool = nil
    capacityBytes = 0
    base = .allocate(capacity: max(1, count))
    values.withUnsafeBufferPointer { base.initialize(from: $0.baseAddress!, count: count) }
  }

  /// A buffer of trivial elements whose contents are undefined until written.
  package init(uninitializedCount count: Int) {
    precondition(_isPOD(Element.self), "uninitialised buffers hold plain values only")
    self.count = count
    pool = nil
    capacityBytes = 0
    base = .allocate(capacity: max(1, count))
  }

  package var byteCount: Int { count * MemoryLayout<Element>.stride }

  /// The elements as an array (a copy).
  package var array: [Element] { Array(UnsafeBufferPointer(start: base, count: count)) }

  package subscript(i: Int) -> Element {
    get { base[i] }
    set { base[i] = newValue }
  }
}

extension Buffer where Element: TensorScalar {
  /// A buffer of zeros.
  package convenience init(count: Int) { self.init(count: count, repeating: 0) }
}

/// Blocks of memory kept between training steps, grouped in size classes that grow by at most
/// 1/8, so a batch a few tokens longer than the last still finds its blocks.
package final class BufferPool: @unchecked Sendable {
  private var free: [Int: [UnsafeMutableRawPointer]] = [:]
  private let lock = NSLock()
  private static let alignment = 64

  /// The size class of a request: the smallest `m·2ᵉ ≥ bytes` with `8 ≤ m < 16`.
  package static func sizeClass(_ bytes: Int) -> Int {
    if bytes <= 16 { return 16 }
    let exponent = (Int.bitWidth - (bytes - 1).leadingZeroBitCount) - 4
    let unit = 1 << exponent
    return (bytes + unit - 1) / unit * unit
  }

  package func take(bytes: Int) -> (UnsafeMutableRawPointer, Int) {
    let size = Self.sizeClass(bytes)
    lock.lock()
    let reused = free[size]?.popLast()
    lock.unlock()
    return (reused ?? .allocate(byteCount: size, alignment: Self.alignment), size)
  }

  package func give(_ memory: UnsafeMutableRawPointer, bytes: Int) {
    lock.lock()
    free[bytes, default: []].append(memory)
    lock.unlock()
  }

  /// Bytes held for reuse.
  package var cachedBytes: Int {
    lock.lock()
    defer { lock.unlock() }
    return free.reduce(0) { $0 + $1.key * $1.value.count }
  }

  /// Frees every cached block.
  package func drain() {
    lock.lock()
    defer { lock.unlock() }
    for blocks in free.values { for block in blocks { block.deallocate() } }
    free.removeAll()
  }

  package init() {}

  deinit { drain() }
}
