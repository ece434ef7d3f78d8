/// What went wrong in an index operation, with the offending value.
public enum HNSWError: Error, Equatable, CustomStringConvertible {
  /// A vector has the wrong number of components.
  case dimensionMismatch(expected: Int, got: Int)
  /// A vector component is NaN or infinite; `index` is the component's position.
  case nonFiniteComponent(index: Int)
  /// A zero vector cannot be normalised for the cosine metric.
  case zeroVector
  /// A dot or l2 vector so long (its length is the value) that scores would overflow.
  case normTooLarge(Double)
  /// A parameter is out of range.
  case invalidParameter(name: String, value: String, reason: String)
  /// The same node id appears twice in one batch.
  case duplicateNode(UInt32)
  /// The storage holds data the algorithm cannot use (for example a neighbour list
  /// longer than its layer allows).
  case corrupt(String)

  public var description: String {
    switch self {
    case .dimensionMismatch(let expected, let got):
      return "vector has \(got) components; the index holds \(expected)-dimensional vectors"
    case .nonFiniteComponent(let index):
      return "vector component \(index) is NaN or infinite"
    case .zeroVector:
      return "a zero vector has no direction; the cosine metric needs a non-zero vector"
    case .normTooLarge(let norm):
      return
        "the vector's length \(norm) is too large: scores would overflow (at most \(Metric.maxNorm))"
    case .invalidParameter(let name, let value, let reason):
      return "invalid \(name) = \(value): \(reason)"
    case .duplicateNode(let id):
      return "node \(id) appears more than once in the batch"
    case .corrupt(let detail):
      return "index is corrupt: \(detail)"
    }
  }
}
