import Embedding
import XCTest

@testable import Training

/// Training and serving compute one function: the trainable forward pass and
/// ``SentenceEncoder`` give the same vectors for the same weights, for every pooling.
final class ServingEquivalenceTests: XCTestCase {
  /// 100 tokens: the special ones, then `w0` … `w95`.
  static let tokenizer: WordPieceTokenizer = {
    let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + (0..<96).map { "w\($0)" }
    return try! WordPieceTokenizer(vocabulary: vocabulary)
  }()

  static let texts = [
    "w5", "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13", "w40 w41 w40 w41 w95",
    "w17 w3 w88", "w60 w61 w62 w63 w64 w65 w66", "w7 w7",
  ]

  func checkEquivalence(pooling: SentenceEncoder.Pooling) throws {
    let parameters = try EncoderParameters<Float>(
      randomFor: TrainerTests.tiny, pooling: pooling, seed: 21)
    let serving = try SentenceEncoder(
      config: parameters.config, tokenizer: Self.tokenizer, weights: parameters.namedTensors(),
      maxSequenceLength: 16, pooling: pooling)
    let training = TrainableEncoder(parameters: parameters, dropout: 0.1)
    let sequences = Self.texts.map { serving.tokenize($0).map(Int32.init) }
    let batch = try TokenBatch(sequences, vocabulary: 100, maximumLength: 16)
    let trained = training.embed(batch)
    // Both the batched path and the one-text path (which splits layers over threads).
    let served = serving.embed(Self.texts)
    for (i, text) in Self.texts.enumerated() {
      let expected = Array(trained[(i * 32)..<((i + 1) * 32)])
      for vector in [served[i], serving.embed(text)] {
        let dot = zip(expected, vector).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        let norms = [expected, vector].map { $0.reduce(0) { $0 + Double($1) * Double($1) } }
        let cosine = dot / (norms[0] * norms[1]).squareRoot()
        XCTAssertGreaterThanOrEqual(cosine, 0.99999, "\(pooling) pooling, text \(i): \(text)")
      }
    }
    // The pooling options give different functions, so the check above can fail.
    let other = try SentenceEncoder(
      config: parameters.config, tokenizer: Self.tokenizer, weights: parameters.namedTensors(),
      maxSequenceLength: 16, pooling: pooling == .mean ? .cls : .mean)
    XCTAssertNotEqual(other.embed(Self.texts[1]), serving.embed(Self.texts[1]))
  }

  func testTrainingForwardEqualsSentenceEncoderWithMeanPooling() throws {
    try checkEquivalence(pooling: .mean)
  }

  func testTrainingForwardEqualsSentenceEncoderWithCLSPooling() throws {
    try checkEquivalence(pooling: .cls)
  }

  /// The candidate a training run serves keeps the trained pooling, not the base's.
  func testTrainedEncoderKeepsThePoolingItWasTrainedWith() throws {
    let parameters = try EncoderParameters<Float>(
      randomFor: TrainerTests.tiny, pooling: .cls, seed: 3)
    let base = try SentenceEncoder(
      config: parameters.config, tokenizer: Self.tokenizer, weights: parameters.namedTensors(),
      maxSequenceLength: 12, pooling: .mean)
    let served = try SentenceEncoder(trained: parameters, like: base)
    XCTAssertEqual(served.pooling, .cls)
    XCTAssertEqual(served.maxSequenceLength, 12)
    XCTAssertEqual(try EncoderParameters(served), parameters)
  }
}
