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
///
/// The small members are `@inlinable`: other modules then compile them for their concrete
/// element type, where a generic body would copy every element through a function call
/// (a fill of a million bytes was a million calls). The class is `public` for that alone
/// (its members stay `package`): Swift 6.3 inlines no member of a `package` generic class
/// into another module, `@inlinable` or not, and element access from Training then cost a
/// fifth of a training step in calls through value witnesses.
public final class Buffer<Element>: @unchecked Sendable {
  @usableFromInline package let count: Int
  @usableFromInline package let base: UnsafeMutablePointer<Element>
  @usableFromInline let pool: BufferPool?
  /// The arena the memory was carved from (kept alive by the buffer; nothing to free).
  @usableFromInline let arena: Arena?
  @usableFromInline let capacityBytes: Int

  /// A buffer with every element set to `value`.
  @inlinable package init(count: Int, repeating value: Element) {
    self.count = count
    pool = nil
    arena = nil
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
    arena = nil
    let (memory, capacity) = pool.take(bytes: max(1, count) * MemoryLayout<Element>.stride)
    capacityBytes = capacity
    base = memory.bindMemory(to: Element.self, capacity: max(1, count))
  }

  /// A buffer of trivial elements whose contents are undefined until written, carved
  /// from `arena`.
  package init(uninitializedCount count: Int, arena: Arena) {
    precondition(_isPOD(Element.self), "arena buffers hold plain values only")
    self.count = count
    pool = nil
    self.arena = arena
    capacityBytes = 0
    base = arena.take(bytes: max(1, count) * MemoryLayout<Element>.stride)
      .bindMemory(to: Element.self, capacity: max(1, count))
  }

  deinit {
    if let pool {
      pool.give(UnsafeMutableRawPointer(base), bytes: capacityBytes)
    } else if arena == nil {
      base.deallocate()
    }
  }

  /// A copy of `values`.
  @inlinable package init(_ values: [Element]) {
    count = values.count
    pool = nil
    arena = nil
    capacityBytes = 0
    base = .allocate(capacity: max(1, count))
    values.withUnsafeBufferPointer { base.initialize(from: $0.baseAddress!, count: count) }
  }

  /// A buffer of trivial elements whose contents are undefined until written.
  package init(uninitializedCount count: Int) {
    precondition(_isPOD(Element.self), "uninitialised buffers hold plain values only")
    self.count = count
    pool = nil
    arena = nil
    capacityBytes = 0
    base = .allocate(capacity: max(1, count))
  }

  @inlinable package var byteCount: Int { count * MemoryLayout<Element>.stride }

  /// The elements as an array (a copy).
  @inlinable package var array: [Element] { Array(UnsafeBufferPointer(start: base, count: count)) }

  @inlinable package subscript(i: Int) -> Element {
    get { base[i] }
    set { base[i] = newValue }
  }
}

extension Buffer where Element: TensorScalar {
  /// A buffer of zeros.
  @inlinable package convenience init(count: Int) { self.init(count: count, repeating: 0) }
}

/// One mapping that buffers living as long as each other are carved from: a model's
/// weights. Either anonymous memory to be filled — the kernel may back it with 2 MiB pages
/// (`MADV_HUGEPAGE`), so filling 86 MB takes some 40 page faults instead of 22,000 — or
/// a file that already holds the buffers (a model image), carved again in the same order.
/// Unmapped when the last buffer carved from it goes.
@usableFromInline package final class Arena: @unchecked Sendable {
  private let base: UnsafeMutableRawPointer
  /// Its bytes in all, taken or not.
  package let size: Int
  private var used = 0
  private let lock = NSLock()
  private static let alignment = 64

  /// An arena for `bytes` in all (each `take` rounds up to 64 bytes).
  package init(bytes: Int) {
    size = max(1, bytes)
    guard
      let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
      address != MAP_FAILED
    else { fatalError("out of memory: cannot map \(size) bytes") }
    base = address
    #if os(Linux)
      madvise(base, size, Int32(MADV_HUGEPAGE))
    #endif
  }

  /// An arena over `bytes` of the open file `descriptor` from `offset` (a multiple of the
  /// page size), mapped privately: its pages are the file's in the page cache, shared by
  /// every process that maps it, so nothing is zeroed or copied. A write would stay in
  /// this process (copy on write); the file never changes. Nil when the map fails.
  package init?(mapping descriptor: Int32, offset: Int, bytes: Int) {
    size = max(1, bytes)
    let address = mmap(
      nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, descriptor, off_t(offset))
    guard let address, address != MAP_FAILED else { return nil }
    base = address
  }

  /// All its bytes, taken or not (what a model image stores).
  package var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

  /// The next `bytes` of the arena, 64-byte aligned; traps past its end.
  package func take(bytes: Int) -> UnsafeMutableRawPointer {
    lock.withLock {
      let start = (used + Self.alignment - 1) / Self.alignment * Self.alignment
      precondition(start + bytes <= size, "arena of \(size) bytes is full")
      used = start + bytes
      return base + start
    }
  }

  /// The bytes `count` buffers of `elements` elements take in all, alignment included.
  package static func bytes(forBuffersOf elements: [Int], stride: Int) -> Int {
    elements.reduce(0) { $0 + max(1, $1) * stride + alignment }
  }

  deinit { munmap(base, size) }
}

/// Blocks of memory kept between training steps, so a step reuses the pages of the last one
/// instead of faulting in fresh ones (the kernel clears each 4 KiB page on first touch).
///
/// Blocks are mapped directly (`mmap`), not taken from `malloc`: unmapping one returns its
/// pages to the system at once, whatever the allocator's thresholds and arenas, so what a
/// finished run held does not stay in the process. A request takes the smallest free block
/// that fits it with at most a quarter to spare, else maps a new one rounded up to a size
/// class (8 per power of two). Batches differ in length, so a pool that only kept blocks
/// would come to hold a set for every length seen: its owner calls ``trim()`` once per
/// step, which unmaps the free blocks no one took since the call before, and a request
/// that finds no block unmaps the largest such block smaller than itself.
@usableFromInline package final class BufferPool: @unchecked Sendable {
  private struct Block {
    var memory: UnsafeMutableRawPointer
    var bytes: Int
    /// The ``trim()`` period in which it was last taken.
    var period: Int
  }
  /// Free blocks, smallest first.
  private var free: [Block] = []
  /// The period in which each block in use was taken.
  private var taken: [UnsafeMutableRawPointer: Int] = [:]
  private var period = 0
  private var mapped = 0
  private let lock = NSLock()

  /// The size class of a request: the smallest `m·2ᵉ ≥ bytes` with `8 ≤ m < 16`, at least
  /// a page.
  package static func sizeClass(_ bytes: Int) -> Int {
    if bytes <= pageSize { return pageSize }
    let exponent = (Int.bitWidth - (bytes - 1).leadingZeroBitCount) - 4
    let unit = 1 << exponent
    return (bytes + unit - 1) / unit * unit
  }

  private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

  package func take(bytes: Int) -> (UnsafeMutableRawPointer, Int) {
    lock.lock()
    defer { lock.unlock() }
    let block: Block
    if let i = free.firstIndex(where: { $0.bytes >= bytes }),
      free[i].bytes <= max(Self.pageSize, bytes + bytes / 4)
    {
      block = free.remove(at: i)
    } else {
      // The largest free block smaller than the request that no one took since the last
      // trim: most likely this very buffer of a shorter batch. It goes now, not at the end
      // of the step, so a longer batch does not hold both sets at once.
      if let stale = free.lastIndex(where: { $0.bytes < bytes && $0.period < period }) {
        unmap(free.remove(at: stale))
      }
      let size = Self.sizeClass(bytes)
      guard
        let memory = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
        memory != MAP_FAILED
      else { fatalError("out of memory: cannot map \(size) bytes") }
      mapped += size
      block = Block(memory: memory, bytes: size, period: period)
    }
    taken[block.memory] = period
    return (block.memory, block.bytes)
  }

  package func give(_ memory: UnsafeMutableRawPointer, bytes: Int) {
    lock.lock()
    defer { lock.unlock() }
    let block = Block(memory: memory, bytes: bytes, period: taken.removeValue(forKey: memory)!)
    free.insert(block, at: free.firstIndex { $0.bytes >= bytes } ?? free.endIndex)
  }

  /// Unmaps the free blocks that were not taken since the last call.
  package func trim() {
    lock.lock()
    defer { lock.unlock() }
    for block in free where block.period < period { unmap(block) }
    free.removeAll { $0.period < period }
    period += 1
  }

  /// Bytes held for reuse.
  package var cachedBytes: Int {
    lock.lock()
    defer { lock.unlock() }
    return free.reduce(0) { $0 + $1.bytes }
  }

  /// Bytes mapped in all: the blocks held for reuse and those in use.
  package var mappedBytes: Int {
    lock.lock()
    defer { lock.unlock() }
    return mapped
  }

  /// Unmaps every free block.
  package func drain() {
    lock.lock()
    defer { lock.unlock() }
    for block in free { unmap(block) }
    free.removeAll()
  }

  private func unmap(_ block: Block) {
    munmap(block.memory, block.bytes)
    mapped -= block.bytes
  }

  package init() {}

  deinit { drain() }
}
