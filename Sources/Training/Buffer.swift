/// A fixed-size heap array with a stable address, for activations and scratch space.
///
/// Activations are handed to BLAS and to worker threads as raw pointers; a class that owns one
/// allocation keeps that simple and frees it when the last reference goes.
final class Buffer<Element>: @unchecked Sendable {
  let count: Int
  let base: UnsafeMutablePointer<Element>

  init(count: Int, repeating value: Element) {
    self.count = count
    base = .allocate(capacity: max(1, count))
    base.initialize(repeating: value, count: count)
  }

  deinit { base.deallocate() }

  var byteCount: Int { count * MemoryLayout<Element>.stride }

  subscript(i: Int) -> Element {
    get { base[i] }
    set { base[i] = newValue }
  }
}

extension Buffer where Element: TrainingScalar {
  convenience init(count: Int) { self.init(count: count, repeating: 0) }
}
