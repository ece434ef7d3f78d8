import Embedding
import Foundation
import Tensor
import XCTest

final class SentenceEncoderTests: XCTestCase {
  func testGoldenEmbeddingsMatch() throws {
    let encoder = try Fixtures.encoder.get()
    let items = try Fixtures.golden("minilm_reference_embeddings.json")
    XCTAssertEqual(items.count, 22)
    XCTAssertEqual(encoder.dimension, 384)
    let vectors = encoder.embed(items.map(\.text))
    for (item, vector) in zip(items, vectors) {
      let similarity = cosine(vector, item.embedding ?? [])
      XCTAssertGreaterThanOrEqual(similarity, 0.9999, "item \(item.id): \(item.text.prefix(40))")
      let norm = vector.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
      XCTAssertEqual(norm, 1, accuracy: 1e-5)
    }
  }

  func testBatchResultsEqualSingleResults() throws {
    let encoder = try Fixtures.encoder.get()
    let texts = [
      "short", "", "a somewhat longer sentence about vector search and graphs",
      String(repeating: "many words here ", count: 40), "What is the capital of France?",
    ]
    let batched = encoder.embed(texts, batchSize: 2)
    for (text, vector) in zip(texts, batched) {
      let single = encoder.embed(text)
      XCTAssertEqual(vector.count, single.count)
      let largest = zip(vector, single).map { abs($0 - $1) }.max() ?? 0
      XCTAssertLessThan(largest, 1e-5, "'\(text.prefix(20))'")
    }
    XCTAssertEqual(encoder.embed([]).count, 0)
  }

  func testEmptyStringEmbedsClassifierAndSeparator() throws {
    let encoder = try Fixtures.encoder.get()
    XCTAssertEqual(encoder.tokenize(""), [101, 102])
    let fromText = encoder.embed("")
    let fromIDs = try encoder.embed(tokenIDs: [[101, 102]])
    XCTAssertEqual(fromText, fromIDs.values)
  }

  func testTokenIDsAreValidated() throws {
    let encoder = try Fixtures.encoder.get()
    XCTAssertThrowsError(try encoder.embed(tokenIDs: [[101, 102], [101, 40_000, 102]])) {
      XCTAssertEqual("\($0)", "token sequence 1: token id 40000 is outside 0..<30522")
    }
    XCTAssertThrowsError(try encoder.embed(tokenIDs: [[]]))
    XCTAssertThrowsError(try encoder.embed(tokenIDs: [Array(repeating: 1000, count: 257)]))
  }

  func testInMemoryModelRoundTripGivesIdenticalEmbeddings() throws {
    let encoder = try Fixtures.encoder.get()
    let bytes = SafeTensors.serialize(encoder.weights)
    let copy = try SentenceEncoder(
      config: encoder.config, tokenizer: encoder.tokenizer,
      weights: try SafeTensors(bytes: bytes, source: "stored model").floatTensors(),
      maxSequenceLength: encoder.maxSequenceLength)
    let texts = ["hello world", "a second, longer sentence for the round trip"]
    XCTAssertEqual(copy.embed(texts), encoder.embed(texts))
  }
}
