/// Errors of the Training module. Each message names the input at fault and where.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
  /// The encoder dimensions are impossible (zero sizes, heads not dividing hidden, …).
  case invalidShape(String)
  /// A parameter tensor is missing or has the wrong number of values.
  case badParameter(name: String, reason: String)
  /// A token sequence cannot be encoded (empty, too long, id out of range).
  case badSequence(index: Int, reason: String)
  /// Training data or arguments that cannot be used (empty batch, wrong vector sizes, …).
  case badInput(String)
  /// Checkpoint bytes that are truncated, of another format, or of another model shape.
  case badCheckpoint(String)

  public var description: String {
    switch self {
    case .invalidShape(let reason): return "invalid encoder shape: \(reason)"
    case .badParameter(let name, let reason): return "parameter \(name): \(reason)"
    case .badSequence(let index, let reason): return "token sequence \(index): \(reason)"
    case .badInput(let reason): return "bad training input: \(reason)"
    case .badCheckpoint(let reason): return "bad checkpoint: \(reason)"
    }
  }
}
