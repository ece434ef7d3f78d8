/// A dense, row-major tensor of 32-bit floats: a shape and its values.
///
/// The value type that model weights travel in: the safetensors reader returns them,
/// the encoder is built from them and training updates them.
///
/// ```swift
/// var w = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
/// w[1, 2]        // 6
/// w.rowCount     // 2 (the first dimension)
/// w.values[0] = 0
/// ```
///
/// `values.count` must stay equal to the product of `shape`; the initialisers check
/// it and code that mutates `values` must not change its length.
public struct Tensor: Equatable, Sendable {
  /// The size of each dimension, outermost first. `[]` is a scalar.
  public let shape: [Int]
  /// The elements in row-major order (the last dimension varies fastest).
  public var values: [Float]

  /// A tensor with the given shape and values; traps if the counts disagree.
  public init(shape: [Int], values: [Float]) {
    precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
    precondition(
      values.count == Tensor.elementCount(of: shape),
      "\(values.count) values do not fill shape \(shape)")
    self.shape = shape
    self.values = values
  }

  /// A tensor of the given shape with every element set to `value`.
  public init(shape: [Int], repeating value: Float = 0) {
    self.init(shape: shape, values: Array(repeating: value, count: Tensor.elementCount(of: shape)))
  }

  /// The number of elements a tensor of `shape` holds.
  public static func elementCount(of shape: [Int]) -> Int {
    shape.reduce(1, *)
  }

  /// The number of dimensions.
  public var rank: Int { shape.count }

  /// The size of the first dimension (1 for a scalar).
  public var rowCount: Int { shape.first ?? 1 }

  /// The number of elements in one row: the product of all but the first dimension.
  public var rowWidth: Int { shape.dropFirst().reduce(1, *) }

  /// The element of a rank-2 tensor at (`row`, `column`).
  public subscript(row: Int, column: Int) -> Float {
    get {
      precondition(rank == 2 && column < shape[1], "index (\(row), \(column)) outside \(shape)")
      return values[row * shape[1] + column]
    }
    set {
      precondition(rank == 2 && column < shape[1], "index (\(row), \(column)) outside \(shape)")
      values[row * shape[1] + column] = newValue
    }
  }
}
