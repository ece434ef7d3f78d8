import Foundation
import Tensor
import XCTest

@testable import Embedding

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

  /// Queries from many threads at once share passes, and each gets its own texts'
  /// vectors (as embedded alone, but for float rounding).
  func testConcurrentCoalescedCallsGetTheirOwnVectors() throws {
    let encoder = try Fixtures.encoder.get()
    let texts = (0..<48).map { "query \($0) about " + String(repeating: "graphs ", count: $0 % 7) }
    let alone = encoder.embed(texts, batchSize: 1)
    let shared = UnsafeMutableBufferPointer<[Float]>.allocate(capacity: texts.count)
    defer { shared.deallocate() }
    DispatchQueue.concurrentPerform(iterations: 8) { thread in
      for index in stride(from: thread, to: texts.count, by: 8) {
        (shared.baseAddress! + index).initialize(to: encoder.embedCoalesced([texts[index]])[0])
      }
    }
    for index in texts.indices {
      let largest = zip(shared[index], alone[index]).map { abs($0 - $1) }.max() ?? 1
      XCTAssertLessThan(largest, 1e-5, texts[index])
    }
    XCTAssertEqual(encoder.embedCoalesced([]), [])
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
    // What a database stores: settings as JSON, the vocabulary, the weights' bytes.
    let settings = try JSONEncoder().encode(encoder.settings)
    let bytes = SafeTensors.serialize(encoder.weights)
    let copy = try SentenceEncoder(
      settings: try JSONDecoder().decode(SentenceEncoder.Settings.self, from: settings),
      vocabulary: encoder.tokenizer.vocabulary,
      weights: try SafeTensors(bytes: bytes, source: "stored model").floatTensors())
    XCTAssertEqual(copy.settings, encoder.settings)
    let texts = ["hello world", "a second, longer sentence for the round trip"]
    XCTAssertEqual(copy.embed(texts), encoder.embed(texts))
  }
}

final class BatchingTests: XCTestCase {
  func testBatchesCoverEveryInputOnceWithinTheSizeLimit() {
    let lengths = (0..<100).map { 2 + ($0 * 37) % 255 }
    for (batchSize, minimum) in [(32, 2), (7, 2), (1, 2), (200, 2), (200, 1)] {
      let batches = SentenceEncoder.batches(
        lengths: lengths, batchSize: batchSize, threads: minimum)
      XCTAssertEqual(batches.flatMap { $0 }.sorted(), Array(0..<100))
      XCTAssertTrue(batches.allSatisfy { !$0.isEmpty && $0.count <= batchSize })
      XCTAssertGreaterThanOrEqual(batches.count, max(minimum, (100 + batchSize - 1) / batchSize))
      // Longest first: each batch holds inputs no longer than the previous batch's.
      for (earlier, later) in zip(batches, batches.dropFirst()) {
        XCTAssertGreaterThanOrEqual(
          earlier.map { lengths[$0] }.min()!, later.map { lengths[$0] }.max()!)
      }
    }
    XCTAssertEqual(SentenceEncoder.batches(lengths: [5], batchSize: 32, threads: 2), [[0]])
    XCTAssertEqual(
      SentenceEncoder.batches(lengths: [5, 9], batchSize: 32, threads: 2), [[1], [0]])
  }

  /// 64 inputs of 101 to 256 tokens, as the first SciFact passages are, in batches of 32
  /// on two threads: two full batches would give one thread 20% more work than the
  /// other; the batches made instead split it evenly between the threads.
  func testFewBatchesShareTheWorkEvenlyBetweenThreads() {
    let lengths = (0..<64).map { $0 < 20 ? 256 : 101 + ($0 * 53) % 155 }
    let work = { (batch: [Int]) in
      batch.reduce(0.0) { $0 + SentenceEncoder.work(tokens: lengths[$1]) }
    }
    let batches = SentenceEncoder.batches(lengths: lengths, batchSize: 32, threads: 2)
    XCTAssertEqual(batches.count % 2, 0)
    XCTAssertGreaterThan(batches.count, 2)
    // What each thread gets when they take the batches in turn, longest first.
    var threads = [0.0, 0.0]
    for batch in batches {
      let idle = threads[0] <= threads[1] ? 0 : 1
      threads[idle] += work(batch)
    }
    XCTAssertLessThan(threads.max()! / threads.min()!, 1.05, "\(threads)")
    let longestFirst = lengths.indices.sorted { lengths[$0] > lengths[$1] }
    let full = [Array(longestFirst[..<32]), Array(longestFirst[32...])].map(work)
    XCTAssertGreaterThan(full.max()! / full.min()!, 1.15, "the case this test is about")
  }
}
