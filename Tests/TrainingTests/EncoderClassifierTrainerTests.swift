import Embedding
import Tensor
import XCTest

@testable import Training

/// The router's LoRA tier: a softmax head trained with LoRA adapters on the encoder under it.
final class EncoderClassifierTrainerTests: XCTestCase {
  /// The loss of head(encoder(x)) by finite differences, with respect to the adapters (the
  /// head's gradient flows through the embeddings, the encoder and the merged weights into
  /// `A` and `B`) and to the head's weights and biases; dropout on, class weights uneven.
  func testGradientsThroughHeadAndEncoderMatchFiniteDifferences() throws {
    let setup = try GradientCheckTests.Setup(dropout: 0.1)
    let base = setup.encoder.parameters
    var adapters: LoRAAdapters<Double> = try LoRATests.adapters([.query, .value, .output])
    let hidden = GradientCheckTests.tiny.hiddenSize
    var random = Xoshiro256(seed: 21)
    var head = SoftmaxClassifier<Double>(classes: 3, dimension: hidden)
    for i in head.parameters.indices {
      head.parameters[i] = 2 * (Double(random.nextUnitFloat()) - 0.5)
    }
    let labels = [0, 2, 1, 2, 0, 1, 1, 2]
    let weights: [Double] = [0.5, 1.5, 1]
    func loss() -> Double {
      setup.encoder.parameters = adapters.merged(into: base)
      let embeddings = setup.encoder.forward(
        setup.batch, dropoutSeeds: setup.seeds, keepActivations: false
      ).embeddings
      return head.loss(inputs: embeddings, labels: labels, classWeights: weights).loss
    }
    setup.encoder.parameters = adapters.merged(into: base)
    let analytic = EncoderClassifierTrainer.gradients(
      encoder: setup.encoder, adapters: adapters, head: head, batch: setup.batch, labels: labels,
      classWeights: weights, dropoutSeeds: setup.seeds)
    XCTAssertEqual(analytic.loss, loss(), accuracy: 1e-12)

    var nonZero = 0
    for entry in adapters.entries {
      let r = adapters.configuration.rank
      for range in [entry.a..<entry.b, entry.b..<(entry.b + entry.outFeatures * r)] {
        for _ in 0..<2 {
          let index = range.lowerBound + Int(random.next() % UInt64(range.count))
          let original = adapters.values[index]
          let numeric = GradientCheckTests.numeric { delta in
            adapters.values[index] = original + delta
            defer { adapters.values[index] = original }
            return loss()
          }
          GradientCheckTests.assertClose(analytic.adapters[index], numeric, entry.weight)
          if abs(numeric) > 1e-8 { nonZero += 1 }
        }
      }
    }
    XCTAssertGreaterThan(nonZero, adapters.entries.count * 4 * 3 / 4)
    for _ in 0..<12 {
      let index = Int(random.next() % UInt64(head.parameters.count))
      let original = head.parameters[index]
      let numeric = GradientCheckTests.numeric { delta in
        head.parameters[index] = original + delta
        defer { head.parameters[index] = original }
        return loss()
      }
      GradientCheckTests.assertClose(analytic.head[index], numeric, "head[\(index)]")
    }
  }

  /// Two classes told apart by which tokens a sequence holds: the head on the random
  /// encoder starts near chance; training head and adapters lowers the loss, the merged
  /// encoder separates the classes, and the same seed gives the same weights.
  func testTrainingLearnsAndIsDeterministic() throws {
    let config = TrainerTests.tiny
    let base = try EncoderParameters<Float>(randomFor: config, seed: 3)
    var random = Xoshiro256(seed: 4)
    var sequences: [[Int32]] = []
    var labels: [Int] = []
    for i in 0..<24 {
      let y = i % 2
      let words = (0..<4).map { _ in Int32(10 + 20 * y) + Int32(random.next() % 20) }
      sequences.append([1] + words + [2])
      labels.append(y)
    }
    func run(seed: UInt64) throws -> EncoderClassifierTrainer {
      var options = EncoderClassifierTrainer.Options(seed: seed)
      options.batchSize = 8
      options.learningRate = 1e-2
      options.lora = LoRAConfiguration(rank: 4, alpha: 8)
      let trainer = try EncoderClassifierTrainer(
        base: base, head: SoftmaxClassifier(classes: 2, dimension: config.hiddenSize),
        sequences: sequences, labels: labels, options: options)
      for _ in 0..<15 { trainer.trainEpoch() }
      return trainer
    }
    let trainer = try run(seed: 7)
    XCTAssertEqual(trainer.losses.count, 15)
    XCTAssertLessThan(trainer.losses.last!, 0.5 * trainer.losses.first!, "\(trainer.losses)")
    XCTAssertNotEqual(trainer.mergedParameters, base, "the adapters moved the encoder")
    let logits = try trainer.logits(sequences)
    let correct = labels.indices.filter { i in
      (logits[2 * i + 1] > logits[2 * i] ? 1 : 0) == labels[i]
    }.count
    XCTAssertGreaterThanOrEqual(correct, 22)

    let again = try run(seed: 7)
    XCTAssertEqual(again.adapters, trainer.adapters)
    XCTAssertEqual(again.head.parameters, trainer.head.parameters)
    XCTAssertNotEqual(try run(seed: 8).adapters, trainer.adapters)
  }

  func testBadInputIsRefused() throws {
    let config = TrainerTests.tiny
    let base = try EncoderParameters<Float>(randomFor: config, seed: 3)
    let head = SoftmaxClassifier<Float>(classes: 2, dimension: config.hiddenSize)
    XCTAssertThrowsError(
      try EncoderClassifierTrainer(base: base, head: head, sequences: [[1, 5, 2]], labels: [2]))
    XCTAssertThrowsError(
      try EncoderClassifierTrainer(
        base: base, head: SoftmaxClassifier<Float>(classes: 2, dimension: 7),
        sequences: [[1, 5, 2]], labels: [1]))
    XCTAssertThrowsError(
      try EncoderClassifierTrainer(base: base, head: head, sequences: [[1, 500, 2]], labels: [1]))
    XCTAssertThrowsError(
      try EncoderClassifierTrainer(base: base, head: head, sequences: [], labels: []))
  }
}
