import Embedding
import Tensor
import XCTest

@testable import Training

final class NoDuplicatesBatchSamplerTests: XCTestCase {
  func testNoValueTwiceInABatchNorAnExampleTwiceInAnEpoch() {
    // 40 examples over 12 documents: many would collide.
    let keys = (0..<40).map { ["query \($0)", "doc \($0 % 12)", "doc \(($0 * 5 + 1) % 12)"] }
    let sampler = NoDuplicatesBatchSampler(batchSize: 4, seed: 9)
    let batches = sampler.batches(keys: keys, epoch: 0)
    XCTAssertEqual(batches.count, 10, "⌈40 / 4⌉ batches")
    let used = batches.flatMap { $0 }
    XCTAssertEqual(Set(used).count, used.count)
    for batch in batches {
      XCTAssertLessThanOrEqual(batch.count, 4)
      let values = batch.flatMap { Set(keys[$0]) }
      XCTAssertEqual(values.count, Set(values).count, "duplicate value in batch \(batch)")
    }
    XCTAssertEqual(sampler.batches(keys: keys, epoch: 0), batches)
    XCTAssertNotEqual(sampler.batches(keys: keys, epoch: 1), batches)
  }

  func testAQueryWithManyDocumentsAddsNoShortBatches() {
    // One query judged with 12 documents and 8 with one each: 20 pairs, 5 batches of 4. Each
    // batch holds at most one pair of the first query, so a pass needs 12 batches, most
    // of them that query's pairs one by one; an epoch keeps the first 5.
    let keys = (0..<12).map { ["many", "doc \($0)"] } + (0..<8).map { ["q\($0)", "d\($0)"] }
    let batches = NoDuplicatesBatchSampler(batchSize: 4, seed: 3).batches(keys: keys, epoch: 0)
    XCTAssertEqual(batches.count, 5)
    for batch in batches {
      XCTAssertLessThanOrEqual(batch.filter { $0 < 12 }.count, 1)
    }
  }

  func testBatchesFillWhenThereAreNoConflicts() {
    let keys = (0..<10).map { ["q\($0)", "d\($0)"] }
    let batches = NoDuplicatesBatchSampler(batchSize: 4, seed: 1).batches(keys: keys, epoch: 0)
    XCTAssertEqual(batches.map(\.count), [4, 4, 2])
  }
}

final class HardNegativeMiningTests: XCTestCase {
  let ranked: [(id: String, score: Double)] = [
    ("p1", 0.90), ("u1", 0.85), ("n1", 0.70), ("p2", 0.65), ("n2", 0.60), ("n3", 0.50),
    ("n4", 0.40),
  ]

  func testSkipsPositivesAndCandidatesAboveTheMargin() {
    // The positive p1 scores 0.80: ceiling 0.76, so u1 (0.85) is a likely unlabelled positive.
    let mined = HardNegativeMining(count: 3).negatives(
      ranked: ranked, positiveScore: 0.80, positives: ["p1", "p2"])
    XCTAssertEqual(mined.negatives, ["n1", "n2", "n3"])
    XCTAssertEqual(mined.skippedByMargin, 1)
    let one = HardNegativeMining(count: 1).negatives(
      ranked: ranked, positiveScore: 0.80, positives: ["p1", "p2"])
    XCTAssertEqual(one.negatives, ["n1"])
  }

  func testPrefersDocumentsMarkedNotRelevant() {
    let mined = HardNegativeMining(count: 2).negatives(
      ranked: ranked, positiveScore: 0.80, positives: ["p1", "p2"],
      notRelevant: ["u1", "p2", "u1"])
    // u1 was judged wrong by a person: taken despite its score; p2 is a positive: never.
    XCTAssertEqual(mined.negatives, ["u1", "n1"])
  }

  func testFewerCandidatesThanWanted() {
    let mined = HardNegativeMining(count: 3).negatives(
      ranked: [("p1", 0.9), ("x", 0.95)], positiveScore: 0.9, positives: ["p1"])
    XCTAssertEqual(mined.negatives, [])
    XCTAssertEqual(mined.skippedByMargin, 1)
  }
}

final class OptimizerTests: XCTestCase {
  func testAdamWMatchesTheTorchUpdateByHand() {
    let layout = ParameterLayout(
      config: BertConfig(
        hiddenSize: 2, layerCount: 1, headCount: 1, intermediateSize: 2, vocabularySize: 3,
        maxPositions: 2))
    var optimizer = AdamW<Double>(layout: layout, weightDecay: 0.01)
    var parameters = [Double](repeating: 0.5, count: layout.count)
    let gradients = (0..<layout.count).map { Double($0 % 5) - 2 }
    optimizer.step(parameters: &parameters, gradients: gradients, learningRate: 0.1)
    optimizer.step(parameters: &parameters, gradients: gradients, learningRate: 0.1)
    for entry in layout.entries {
      let i = entry.offset
      let g = gradients[i]
      // Two steps by hand.
      var theta = 0.5
      var m = 0.0
      var v = 0.0
      for t in 1...2 {
        if entry.decays { theta *= 1 - 0.1 * 0.01 }
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        let mHat = m / (1 - pow(0.9, Double(t)))
        let denominator = (v / (1 - pow(0.999, Double(t)))).squareRoot() + 1e-8
        theta -= 0.1 * mHat / denominator
      }
      XCTAssertEqual(parameters[i], theta, accuracy: 1e-12, entry.name)
    }
    XCTAssertTrue(layout.entry(named: "embeddings.word_embeddings.weight")!.decays)
    XCTAssertFalse(layout.entry(named: "encoder.layer.0.output.LayerNorm.weight")!.decays)
    XCTAssertFalse(layout.entry(named: "encoder.layer.0.attention.self.key.bias")!.decays)
  }

  func testScheduleMatchesHuggingFaceLinearWarmup() {
    // SciFact: 919 pairs at batch 32 → 29 steps, warm-up ⌈2.9⌉ = 3.
    let schedule = LinearWarmupSchedule(peak: 2e-5, totalSteps: 29, warmupRatio: 0.1)
    XCTAssertEqual(schedule.warmupSteps, 3)
    XCTAssertEqual(schedule.learningRate(atStep: 0), 0)
    XCTAssertEqual(schedule.learningRate(atStep: 1), 2e-5 / 3, accuracy: 1e-18)
    XCTAssertEqual(schedule.learningRate(atStep: 3), 2e-5, accuracy: 1e-18)
    XCTAssertEqual(schedule.learningRate(atStep: 28), 2e-5 / 26, accuracy: 1e-18)
    XCTAssertEqual(schedule.learningRate(atStep: 29), 0)
  }

  func testClippingFactor() {
    XCTAssertEqual(GradientClipping.factor(norm: 0.5, maxNorm: 1), 1)
    XCTAssertEqual(GradientClipping.factor(norm: 4, maxNorm: 1), 1 / (4 + 1e-6), accuracy: 1e-15)
  }

  func testRandomStateRoundTrips() {
    var a = Xoshiro256(seed: 5)
    _ = a.next()
    var b = Xoshiro256(state: a.state)
    XCTAssertEqual((0..<4).map { _ in a.next() }, (0..<4).map { _ in b.next() })
    var c = Xoshiro256(seed: 6)
    XCTAssertNotEqual(a.next(), c.next())
  }
}
