import Embedding
import Foundation
import XCTest

/// Shared inputs of the Embedding tests: the real model and the golden files.
///
/// The model comes from `tools/fetch-model.sh`; when it is missing the tests fail
/// (they never skip), with a message that says how to fetch it.
enum Fixtures {
  static let modelDirectory = SentenceEncoder.defaultModelDirectory

  /// `../shared/reference` next to the project root.
  static let referenceDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // EmbeddingTests
    .deletingLastPathComponent()  // Tests
    .deletingLastPathComponent()  // project root
    .deletingLastPathComponent()
    .appendingPathComponent("shared/reference")

  /// The encoder, loaded once for all tests.
  static let encoder: Result<SentenceEncoder, Error> = Result {
    guard FileManager.default.fileExists(atPath: modelDirectory.path) else {
      throw FixtureError(
        "model not found at \(modelDirectory.path): run tools/fetch-model.sh first")
    }
    return try SentenceEncoder(directory: modelDirectory)
  }

  struct Golden: Decodable {
    var id: Int
    var text: String
    var inputIDs: [Int]?
    var embedding: [Float]?

    enum CodingKeys: String, CodingKey {
      case id, text, embedding
      case inputIDs = "input_ids"
    }
  }

  private struct GoldenFile: Decodable { var items: [Golden] }

  static func golden(_ name: String) throws -> [Golden] {
    let url = referenceDirectory.appendingPathComponent(name)
    guard let data = FileManager.default.contents(atPath: url.path) else {
      throw FixtureError("golden file missing: \(url.path)")
    }
    return try JSONDecoder().decode(GoldenFile.self, from: data).items
  }
}

struct FixtureError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// cos(a, b) in double precision.
func cosine(_ a: [Float], _ b: [Float]) -> Double {
  var dot = 0.0
  var aa = 0.0
  var bb = 0.0
  for (x, y) in zip(a, b) {
    dot += Double(x) * Double(y)
    aa += Double(x) * Double(x)
    bb += Double(y) * Double(y)
  }
  return dot / (aa.squareRoot() * bb.squareRoot())
}
