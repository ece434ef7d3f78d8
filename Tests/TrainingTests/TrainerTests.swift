import Embedding
import Tensor
import XCTest

@testable import Training

final class TrainerTests: XCTestCase {
  static let tiny = BertConfig(
    hiddenSize: 32, layerCount: 2, headCount: 4, intermediateSize: 64, vocabularySize: 100,
    maxPositions: 16)

  /// A toy retrieval task: query `i` is about topic `i` and so is its positive; topics are
  /// token ranges, so the model can learn to pair them.
  static func examples(count: Int = 12, negatives: Int = 1) -> [TrainingExample] {
    (0..<count).map { i in
      let topic = Int32(10 + 5 * (i % 16))
      let query: [Int32] = [1, topic, topic + 1, 2]
      let positive: [Int32] = [1, topic + 2, topic + 3, topic + 4, 2]
      let negativeTopic = Int32(10 + 5 * ((i + 7) % 16))
      let hard: [[Int32]] = (0..<negatives).map { n in
        [1, negativeTopic + Int32(n), negativeTopic + 3, 2]
      }
      return TrainingExample(
        query: query, positive: positive, negatives: hard,
        keys: ["q\(i)", "d\(i)"] + (0..<negatives).map { "n\(i).\($0)" })
    }
  }

  static func configuration(epochs: Int = 2, miniBatch: Int? = nil) -> TrainingConfiguration {
    var configuration = TrainingConfiguration()
    configuration.epochs = epochs
    configuration.batchSize = 4
    configuration.learningRate = 1e-3
    configuration.miniBatchSize = miniBatch
    return configuration
  }

  func testGradCacheEqualsFullBatchGradientWithDropout() throws {
    let parameters = try EncoderParameters<Double>(randomFor: Self.tiny, seed: 2)
    let examples = Self.examples(count: 4, negatives: 2)
    let sequences =
      examples.map(\.query) + examples.map(\.positive) + examples.flatMap(\.negatives)
    let batch = try TokenBatch(sequences, vocabulary: 100, maximumLength: 16)
    let seeds = (0..<sequences.count).map { UInt64($0 + 100) }
    var results: [(loss: Double, gradients: [Double])] = []
    for miniBatch in [nil, 3, 1] as [Int?] {
      let encoder = TrainableEncoder(parameters: parameters, dropout: 0.1)
      var peak = 0
      let loss = EncoderTrainer.rankingLossGradients(
        encoder: encoder, sequences: batch, queryCount: 4, loss: MultipleNegativesRankingLoss(),
        dropoutSeeds: seeds, miniBatchSize: miniBatch, peakActivationBytes: &peak)
      XCTAssertGreaterThan(peak, 0)
      results.append((loss, encoder.gradients))
    }
    for other in results.dropFirst() {
      XCTAssertEqual(other.loss, results[0].loss, accuracy: 1e-12)
      let worst = zip(other.gradients, results[0].gradients).map { abs($0 - $1) }.max()!
      XCTAssertLessThan(worst, 1e-12, "GradCache gradient differs from the full-batch one")
    }
    XCTAssertGreaterThan(results[0].gradients.map(abs).max()!, 1e-3)
  }

  func testDropoutMasksDependOnSeedsNotOnBatching() throws {
    let parameters = try EncoderParameters<Float>(randomFor: Self.tiny, seed: 2)
    let encoder = TrainableEncoder(parameters: parameters, dropout: 0.1)
    let batch = try TokenBatch([[1, 5, 6, 2], [1, 7, 2], [1, 8, 9, 10, 2]], vocabulary: 100)
    let seeds: [UInt64] = [4, 5, 6]
    let whole = encoder.forward(batch, dropoutSeeds: seeds, keepActivations: false).embeddings
    let last = encoder.forward(batch.slice(2..<3), dropoutSeeds: [6], keepActivations: false)
    // Equal up to rounding (BLAS blocks a 3-sequence product differently from a 1-sequence one).
    for (a, b) in zip(whole[64...], last.embeddings) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    let otherSeed = encoder.forward(batch.slice(2..<3), dropoutSeeds: [7], keepActivations: false)
    XCTAssertNotEqual(last.embeddings, otherSeed.embeddings, "dropout should change the output")
    let inference = encoder.embed(batch.slice(2..<3))
    XCTAssertNotEqual(last.embeddings, inference)
  }

  /// A mask is its segments' streams read 16 bits an entry (low bits first, four a draw)
  /// against p·2¹⁶, so a run's masks never change with the code that draws them; it drops
  /// its share, and dropout scales what it keeps by 1/(1 − p).
  func testDropoutMasksFollowTheirStreamsAndScaleWhatTheyKeep() {
    let segments = [(start: 0, count: 50_001), (start: 50_001, count: 30_002)]
    var streams = [Xoshiro256(seed: 11), Xoshiro256(seed: 12)]
    var reference = [UInt8]()
    for (stream, segment) in zip(streams, segments) {
      var generator = stream
      while reference.count < segment.start + segment.count {
        var bits = generator.next()
        for _ in 0..<min(4, segment.start + segment.count - reference.count) {
          reference.append(bits & 0xffff < 6_554 ? 0 : 1)
          bits >>= 16
        }
      }
      let dropped = reference[segment.start...].filter { $0 == 0 }.count
      XCTAssertEqual(Double(dropped) / Double(segment.count), 0.1, accuracy: 0.006)
    }
    let mask = Kernels.dropoutMask(
      count: 80_003, segments: segments, streams: &streams, probability: 0.1)
    XCTAssertEqual(mask.array, reference)

    let x = Buffer<Float>((0..<80_003).map { Float($0 % 97) - 48.5 })
    let y = Buffer<Float>(count: x.count)
    Kernels.dropout(x.base, mask: mask.base, count: x.count, probability: 0.1, into: y.base)
    for i in 0..<x.count {
      XCTAssertEqual(y[i], reference[i] == 0 ? 0 : x[i] * (1 / Float(0.9)), "entry \(i)")
    }
    Kernels.applyDropout(x.base, mask: mask.base, count: x.count, probability: 0.1)
    XCTAssertEqual(x.array, y.array, "in place, on every core, the same")
  }

  func testEmbeddingsAreUnitLengthAndPaddingFree() throws {
    let parameters = try EncoderParameters<Float>(randomFor: Self.tiny, seed: 8)
    let encoder = TrainableEncoder(parameters: parameters)
    let alone = encoder.embed(try TokenBatch([[1, 30, 31, 2]], vocabulary: 100))
    let packed = encoder.embed(
      try TokenBatch([[1, 5, 6, 7, 8, 9, 10, 2], [1, 30, 31, 2]], vocabulary: 100))
    for (a, b) in zip(alone, packed[32...]) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    for row in 0..<2 {
      let norm = packed[(row * 32)..<(row * 32 + 32)].reduce(0) { $0 + $1 * $1 }
      XCTAssertEqual(norm, 1, accuracy: 1e-5)
    }
  }

  func testTrainingLowersTheLossOnAToyTask() throws {
    let parameters = try EncoderParameters<Float>(
      randomFor: Self.tiny, seed: 1, standardDeviation: 0.05)
    let examples = Self.examples(count: 16)
    var configuration = Self.configuration(epochs: 8)
    configuration.dropout = 0
    let trainer = try EncoderTrainer(
      parameters: parameters, examples: examples, configuration: configuration)
    let before = trainer.evaluateLoss(examples)
    var reports: [TrainingProgress] = []
    trainer.run { reports.append($0) }
    XCTAssertEqual(reports.count, trainer.totalSteps)
    XCTAssertEqual(reports.last?.step, trainer.totalSteps)
    XCTAssertTrue(trainer.isFinished)
    let after = trainer.evaluateLoss(examples)
    XCTAssertLessThan(after, before * 0.7, "loss \(before) → \(after)")
  }

  /// Batches differ in length from step to step; the activation memory must stay about one
  /// step's, not grow with every length seen (it did: 10 GB on a 158-query run).
  func testActivationMemoryStaysOneStepsWorthAcrossBatchLengths() throws {
    let config = BertConfig(
      hiddenSize: 32, layerCount: 2, headCount: 4, intermediateSize: 64, vocabularySize: 100,
      maxPositions: 128)
    let encoder = TrainableEncoder(
      parameters: try EncoderParameters<Float>(randomFor: config, seed: 4), dropout: 0.1)
    func step(length: Int) -> Int {
      let sequences = (0..<6).map { s in (0..<length).map { Int32(1 + ($0 + s) % 90) } }
      let batch = try! TokenBatch(sequences, vocabulary: 100, maximumLength: 128)
      let pass = encoder.forward(batch, dropoutSeeds: (0..<6).map { UInt64($0) })
      encoder.backward(pass, embeddingGradient: [Float](repeating: 0.01, count: 6 * 32))
      return pass.activationBytes
    }
    // Growing lengths: each step needs larger blocks than any the pool holds.
    var total = 0
    for length in stride(from: 8, through: 128, by: 8) {
      let activations = step(length: length)
      total += activations
      XCTAssertLessThanOrEqual(
        encoder.activationMemoryBytes, 3 * activations / 2,
        "length \(length): \(encoder.activationMemoryBytes) bytes held for a pass of \(activations)"
      )
    }
    XCTAssertLessThan(encoder.activationMemoryBytes, total / 4)
    // The same length again reuses what the pool holds: nothing new is mapped.
    _ = step(length: 128)
    let held = encoder.activationMemoryBytes
    _ = step(length: 120)
    _ = step(length: 128)
    XCTAssertEqual(encoder.activationMemoryBytes, held)
    encoder.releaseCachedMemory()
    XCTAssertEqual(encoder.activationMemoryBytes, 0)
  }

  func testSameSeedSameRunAndCheckpointResumesExactly() throws {
    let parameters = try EncoderParameters<Float>(randomFor: Self.tiny, seed: 3)
    let examples = Self.examples()
    let configuration = Self.configuration()
    let straight = try EncoderTrainer(
      parameters: parameters, examples: examples, configuration: configuration)
    straight.run()
    let again = try EncoderTrainer(
      parameters: parameters, examples: examples, configuration: configuration)
    again.run()
    XCTAssertEqual(straight.encoder.parameters, again.encoder.parameters)

    let interrupted = try EncoderTrainer(
      parameters: parameters, examples: examples, configuration: configuration)
    interrupted.run(steps: 3)
    XCTAssertEqual(interrupted.step, 3)
    let saved = try interrupted.checkpoint()
    let resumed = try EncoderTrainer(resuming: saved, examples: examples)
    XCTAssertEqual(resumed.step, 3)
    resumed.run()
    XCTAssertEqual(resumed.encoder.parameters, straight.encoder.parameters)
    XCTAssertEqual(resumed.optimizer.secondMoment, straight.optimizer.secondMoment)
    XCTAssertEqual(resumed.lossHistory, straight.lossHistory)

    let otherSeed = try EncoderTrainer(
      parameters: parameters, examples: examples,
      configuration: {
        var c = configuration
        c.seed = 7
        return c
      }())
    otherSeed.run()
    XCTAssertNotEqual(otherSeed.encoder.parameters, straight.encoder.parameters)
  }

  func testCheckpointRejectsOtherDataAndDamagedBytes() throws {
    let parameters = try EncoderParameters<Float>(randomFor: Self.tiny, seed: 3)
    let trainer = try EncoderTrainer(
      parameters: parameters, examples: Self.examples(), configuration: Self.configuration())
    trainer.run(steps: 1)
    let saved = try trainer.checkpoint()
    XCTAssertThrowsError(try EncoderTrainer(resuming: saved, examples: Self.examples(count: 11)))
    XCTAssertThrowsError(
      try EncoderTrainer(resuming: saved.dropLast(10), examples: Self.examples())
    ) {
      XCTAssertTrue("\($0)".contains("truncated"), "\($0)")
    }
    XCTAssertThrowsError(
      try EncoderTrainer(resuming: Data("hello".utf8), examples: Self.examples()))
    XCTAssertThrowsError(try AdapterTrainer(resuming: saved, examples: [])) {
      XCTAssertTrue("\($0)".contains("not an adapter"), "\($0)")
    }
  }

  func testAdapterTrainingLowersTheLossAndResumes() throws {
    // Queries are documents rotated in their first two coordinates: a linear map can undo it.
    let d = 8
    var random = Xoshiro256(seed: 12)
    var examples: [AdapterExample] = []
    func unit(_ v: [Float]) -> [Float] {
      let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
      return v.map { $0 / n }
    }
    for i in 0..<24 {
      let document = unit((0..<d).map { _ in random.nextUnitFloat() - 0.5 })
      var query = document
      (query[0], query[1]) = (document[1], -document[0])
      examples.append(AdapterExample(query: query, positive: document, keys: ["q\(i)", "d\(i)"]))
    }
    var configuration = TrainingConfiguration.adapter
    configuration.epochs = 30
    configuration.batchSize = 8
    configuration.learningRate = 1e-2
    let trainer = try AdapterTrainer(dimension: d, examples: examples, configuration: configuration)
    trainer.run(steps: 5)
    let resumed = try AdapterTrainer(resuming: try trainer.checkpoint(), examples: examples)
    trainer.run()
    resumed.run()
    XCTAssertEqual(trainer.adapter, resumed.adapter)
    let first = trainer.lossHistory.prefix(3).reduce(0, +) / 3
    let last = trainer.lossHistory.suffix(3).reduce(0, +) / 3
    XCTAssertLessThan(last, first * 0.5, "adapter loss \(first) → \(last)")
  }

  func testBadInputIsReportedWithItsPosition() throws {
    let parameters = try EncoderParameters<Float>(randomFor: Self.tiny, seed: 3)
    XCTAssertThrowsError(
      try EncoderTrainer(
        parameters: parameters,
        examples: [TrainingExample(query: [1, 2], positive: [1, 200, 2])])
    ) { XCTAssertTrue("\($0)".contains("200"), "\($0)") }
    XCTAssertThrowsError(try EncoderTrainer(parameters: parameters, examples: []))
    XCTAssertThrowsError(try TokenBatch([[1, 2], []], vocabulary: 100)) {
      XCTAssertEqual($0 as? TrainingError, .badSequence(index: 1, reason: "is empty"))
    }
    var tensors = parameters.tensors()
    tensors["encoder.layer.1.output.dense.bias"] = [1, 2, 3]
    XCTAssertThrowsError(try EncoderParameters<Float>(config: Self.tiny, tensors: tensors)) {
      XCTAssertTrue("\($0)".contains("encoder.layer.1.output.dense.bias"), "\($0)")
    }
    tensors["encoder.layer.1.output.dense.bias"] = nil
    XCTAssertThrowsError(try EncoderParameters<Float>(config: Self.tiny, tensors: tensors))
    tensors = parameters.tensors()
    tensors["embeddings.position_ids"] = [0, 1, 2]  // ignored, as in real model files
    XCTAssertEqual(try EncoderParameters<Float>(config: Self.tiny, tensors: tensors), parameters)
    let badConfig = BertConfig(
      hiddenSize: 30, layerCount: 1, headCount: 4, intermediateSize: 8, vocabularySize: 5)
    XCTAssertThrowsError(try EncoderParameters<Float>(randomFor: badConfig, seed: 1)) {
      XCTAssertTrue("\($0)".contains("num_attention_heads"), "\($0)")
    }
  }
}
