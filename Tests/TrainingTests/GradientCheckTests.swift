import Embedding
import Tensor
import XCTest

@testable import Training

/// Analytic gradients against central finite differences, in Double, through the whole loss:
/// token ids → encoder → mean (or `[CLS]`) pooling → L2 normalisation → multiple-negatives
/// ranking loss.
final class GradientCheckTests: XCTestCase {
  static let tiny = BertConfig(
    hiddenSize: 32, layerCount: 2, headCount: 4, intermediateSize: 64, vocabularySize: 100,
    maxPositions: 16)

  /// 3 queries, their 3 positives and 2 hard negatives, of different lengths.
  static let sequences: [[Int32]] = [
    [1, 5, 9, 2], [1, 17, 2], [1, 40, 41, 42, 2],
    [1, 6, 7, 8, 9, 2], [1, 18, 19, 2], [1, 43, 44, 45, 46, 47, 2],
    [1, 10, 11, 2], [1, 50, 51, 52, 53, 2],
  ]

  struct Setup {
    let encoder: TrainableEncoder<Double>
    let batch: TokenBatch
    let seeds: [UInt64]?
    let loss = MultipleNegativesRankingLoss()

    init(dropout: Double, pooling: SentenceEncoder.Pooling = .mean) throws {
      let parameters = try EncoderParameters<Double>(randomFor: tiny, pooling: pooling, seed: 11)
      encoder = TrainableEncoder(parameters: parameters, dropout: dropout)
      batch = try TokenBatch(sequences, vocabulary: tiny.vocabularySize, maximumLength: 16)
      seeds = dropout > 0 ? (0..<sequences.count).map { UInt64($0 * 7 + 3) } : nil
    }

    func lossValue(perturbation: [Double]? = nil) -> Double {
      let pass = encoder.forward(
        batch, dropoutSeeds: seeds, keepActivations: false, inputPerturbation: perturbation)
      let split = 3 * tiny.hiddenSize
      return loss.evaluate(
        queries: Array(pass.embeddings[..<split]), documents: Array(pass.embeddings[split...]),
        dimension: tiny.hiddenSize
      ).loss
    }

    /// Analytic gradients: (parameters, summed input embeddings).
    func analytic() -> ([Double], [Double]) {
      encoder.zeroGradients()
      var peak = 0
      _ = EncoderTrainer.rankingLossGradients(
        encoder: encoder, sequences: batch, queryCount: 3, loss: loss, dropoutSeeds: seeds,
        miniBatchSize: nil, peakActivationBytes: &peak)
      let pass = encoder.forward(batch, dropoutSeeds: seeds, keepActivations: true)
      let split = 3 * tiny.hiddenSize
      let result = loss.evaluate(
        queries: Array(pass.embeddings[..<split]), documents: Array(pass.embeddings[split...]),
        dimension: tiny.hiddenSize)
      let parameterGradient = encoder.gradients
      encoder.zeroGradients()
      let inputGradient = encoder.backward(
        pass, embeddingGradient: result.queryGradient + result.documentGradient,
        returningInputGradient: true)
      encoder.zeroGradients()
      return (parameterGradient, inputGradient)
    }
  }

  /// Central difference of `f` at one coordinate.
  static func numeric(_ f: (Double) -> Double, step: Double = 1e-5) -> Double {
    (f(step) - f(-step)) / (2 * step)
  }

  static func assertClose(
    _ analytic: Double, _ numeric: Double, _ what: String, file: StaticString = #filePath,
    line: UInt = #line
  ) {
    let error = abs(analytic - numeric) / max(1e-7, abs(analytic) + abs(numeric))
    XCTAssert(
      error < 1e-5 || abs(analytic - numeric) < 1e-9,
      "\(what): analytic \(analytic), numeric \(numeric) (relative error \(error))",
      file: file, line: line)
  }

  func checkEveryParameterTensor(
    dropout: Double, pooling: SentenceEncoder.Pooling = .mean
  ) throws {
    let setup = try Setup(dropout: dropout, pooling: pooling)
    let (gradient, _) = setup.analytic()
    let encoder = setup.encoder
    var random = Xoshiro256(seed: 5)
    var checked = 0
    var nonZero = 0
    for entry in encoder.parameters.layout.entries {
      var indices = (0..<5).map { _ in entry.offset + Int(random.next() % UInt64(entry.count)) }
      if entry.name == "embeddings.word_embeddings.weight" {
        // Rows of tokens in the batch (ids 5, 43) and one never used (id 99: gradient 0).
        indices = [5 * 32 + 3, 43 * 32 + 31, 99 * 32 + 7].map { entry.offset + $0 }
      }
      if entry.name == "embeddings.position_embeddings.weight" {
        indices = [0 * 32 + 1, 6 * 32 + 30].map { entry.offset + $0 }  // 6: only the longest
      }
      for index in indices {
        let original = encoder.parameters.values[index]
        let numeric = Self.numeric { delta in
          encoder.parameters.values[index] = original + delta
          defer { encoder.parameters.values[index] = original }
          return setup.lossValue()
        }
        Self.assertClose(gradient[index], numeric, "\(entry.name)[\(index - entry.offset)]")
        checked += 1
        if abs(numeric) > 1e-8 { nonZero += 1 }
      }
    }
    XCTAssertEqual(gradient[99 * 32 + 7], 0, "an unused word row has no gradient")
    XCTAssertFalse(encoder.touchedWordRows.contains(99))
    XCTAssertGreaterThan(nonZero, checked * 3 / 4, "most sampled gradients should be non-zero")
  }

  func testEveryParameterTensorMatchesFiniteDifferences() throws {
    try checkEveryParameterTensor(dropout: 0)
  }

  /// With dropout on, the seeded masks are fixed, so the loss is still a smooth function.
  func testEveryParameterTensorMatchesFiniteDifferencesWithDropout() throws {
    try checkEveryParameterTensor(dropout: 0.1)
  }

  /// `[CLS]` pooling: only the first token's final vector reaches the loss directly.
  func testEveryParameterTensorMatchesFiniteDifferencesWithCLSPooling() throws {
    try checkEveryParameterTensor(dropout: 0.1, pooling: .cls)
  }

  func testInputEmbeddingGradientMatchesFiniteDifferences() throws {
    let setup = try Setup(dropout: 0)
    let (_, inputGradient) = setup.analytic()
    let count = setup.batch.tokenCount * Self.tiny.hiddenSize
    XCTAssertEqual(inputGradient.count, count)
    var random = Xoshiro256(seed: 9)
    for _ in 0..<24 {
      let index = Int(random.next() % UInt64(count))
      let numeric = Self.numeric { delta in
        var perturbation = [Double](repeating: 0, count: count)
        perturbation[index] = delta
        return setup.lossValue(perturbation: perturbation)
      }
      Self.assertClose(inputGradient[index], numeric, "input[\(index)]")
    }
  }

  func testRankingLossGradientMatchesFiniteDifferences() {
    var random = Xoshiro256(seed: 3)
    let d = 8
    func unitRows(_ n: Int) -> [Double] {
      var rows: [Double] = []
      for _ in 0..<n {
        let row = (0..<d).map { _ in Double(random.nextUnitFloat()) - 0.5 }
        let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
        rows += row.map { $0 / norm }
      }
      return rows
    }
    let queries = unitRows(3)
    let documents = unitRows(5)
    let loss = MultipleNegativesRankingLoss(scale: 20)
    let result = loss.evaluate(queries: queries, documents: documents, dimension: d)
    for index in [0, 7, 13, 23] {
      let numeric = Self.numeric { delta in
        var q = queries
        q[index] += delta
        return loss.evaluate(queries: q, documents: documents, dimension: d).loss
      }
      Self.assertClose(result.queryGradient[index], numeric, "query[\(index)]")
    }
    for index in [0, 9, 26, 39] {
      let numeric = Self.numeric { delta in
        var x = documents
        x[index] += delta
        return loss.evaluate(queries: queries, documents: x, dimension: d).loss
      }
      Self.assertClose(result.documentGradient[index], numeric, "document[\(index)]")
    }
  }

  func testAdapterGradientMatchesFiniteDifferences() {
    let d = 6
    var random = Xoshiro256(seed: 4)
    func rows(_ n: Int) -> [Double] {
      (0..<(n * d)).map { _ in Double(random.nextUnitFloat()) - 0.5 }
    }
    let queries = rows(3)
    let documents = rows(4)
    var adapter = QueryAdapter<Double>(dimension: d)
    // Move away from the identity so the check covers a general matrix.
    for i in adapter.matrix.indices {
      adapter.matrix[i] += 0.3 * (Double(random.nextUnitFloat()) - 0.5)
    }
    let loss = MultipleNegativesRankingLoss()
    func lossValue(_ a: QueryAdapter<Double>) -> Double {
      loss.evaluate(queries: a.apply(to: queries), documents: documents, dimension: d).loss
    }
    let pass = adapter.forward(queries)
    let result = loss.evaluate(queries: pass.adapted, documents: documents, dimension: d)
    let gradient = adapter.backward(
      queries: queries, pass: pass, adaptedGradient: result.queryGradient)
    for index in 0..<(d * d) {
      let numeric = Self.numeric { delta in
        var a = adapter
        a.matrix[index] += delta
        return lossValue(a)
      }
      Self.assertClose(gradient[index], numeric, "adapter[\(index)]")
    }
  }
}
