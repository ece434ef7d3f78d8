import Embedding
import Foundation
import HNSW
import LMDB
import Training

/// Runs `body`, turning the errors of lower modules into the `VectorDBError` cases they
/// stand for (an `HNSWError` for a bad vector is `.invalidVector`, a damaged graph
/// `.damaged` naming the database at `path`), so that none escapes a public function.
func mappingErrors<R>(path: String, _ body: () throws -> R) throws -> R {
  do {
    return try body()
  } catch let error as VectorDBError {
    throw error
  } catch {
    throw VectorDBError(wrapping: error, path: path) ?? error
  }
}

extension VectorDBError {
  /// `error`, thrown by a lower module (storage, index, training, encoder, Foundation),
  /// as the case it stands for, naming the database at `path` where it is the place.
  /// Nil for errors that are not data errors (cancellation, the shell's own).
  public init?(wrapping error: any Error, path: String) {
    switch error {
    case let error as VectorDBError:
      self = error
    case let error as LMDBError where error.isCorrupted:
      self = .damaged(path: path, detail: error.description)
    case let error as LMDBError:
      self = .storage(error)
    case let error as VectorIndexError:
      switch error {
      case .invalidSettings(let name, let reason):
        self = .invalidInput(source: "index \(name)", line: nil, reason: reason)
      default: self = .damaged(path: path, detail: error.description)
      }
    case let error as HNSWError:
      switch error {
      case .dimensionMismatch, .nonFiniteComponent, .zeroVector, .normTooLarge:
        self = .invalidVector(reason: error.description)
      case .invalidParameter(let name, _, _):
        self = .invalidInput(source: name, line: nil, reason: error.description)
      case .duplicateNode:
        self = .invalidInput(source: "index", line: nil, reason: error.description)
      case .corrupt: self = .damaged(path: path, detail: error.description)
      }
    case let error as TrainingError:
      switch error {
      case .badInput, .badSequence:
        self = .invalidInput(source: "training", line: nil, reason: error.description)
      case .badCheckpoint: self = .damaged(path: path, detail: error.description)
      case .invalidShape, .badParameter:
        self = .invalidModel(directory: path, reason: error.description)
      }
    case let error as EmbeddingError:
      self = .invalidModel(directory: path, reason: error.description)
    case let error as CocoaError:
      let file = error.filePath ?? error.url?.path ?? "a file"
      let reason = (error.underlying as? POSIXError).map {
        String(cString: strerror($0.code.rawValue))
      }
      // Cocoa's read errors are codes 256-511, write errors 512 and up.
      let verb = error.code.rawValue < 512 ? "read" : "write"
      self = .invalidInput(
        source: file, line: nil, reason: "cannot \(verb) it\(reason.map { ": \($0)" } ?? "")")
    case is DecodingError:
      // User JSON is parsed by `JSONValue(parsing:)`, which names the input; a decoding
      // error here comes from a stored record.
      self = .damaged(path: path, detail: "a stored record cannot be decoded")
    case let error as EncodingError:
      let reason: String
      if case .invalidValue(_, let context) = error {
        reason =
          context.debugDescription.split(separator: "\n").first.map(String.init) ?? "invalid value"
      } else {
        reason = "invalid value"
      }
      self = .invalidInput(
        source: "output", line: nil, reason: "cannot encode as JSON: \(reason.prefix(200))")
    default:
      return nil
    }
  }
}
