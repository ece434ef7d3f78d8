import Foundation
import Tensor

/// Float32 tensors by name, read where they lie (a dictionary of tensors, a mapped
/// safetensors file, a model stored in a database): ``BertModel`` copies each once into
/// its own layout.
protocol WeightSource {
  /// The names of the weight (floating-point) tensors.
  var tensorNames: [String] { get }
  /// Calls `body` with the shape and values of tensor `name` as float32 (valid while it
  /// runs); nil when there is no such tensor.
  func withTensor<R>(
    _ name: String, _ body: (_ shape: [Int], _ values: UnsafeBufferPointer<Float>) throws -> R
  ) throws -> R?
}

extension Dictionary: WeightSource where Key == String, Value == Tensor {
  var tensorNames: [String] { Array(keys) }

  func withTensor<R>(
    _ name: String, _ body: (_ shape: [Int], _ values: UnsafeBufferPointer<Float>) throws -> R
  ) throws -> R? {
    guard let tensor = self[name] else { return nil }
    return try tensor.values.withUnsafeBufferPointer { try body(tensor.shape, $0) }
  }
}
