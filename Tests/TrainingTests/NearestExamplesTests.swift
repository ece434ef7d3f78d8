import Tensor
import XCTest

@testable import Training

/// The nearest-examples classifier: its logits against the definition, and its stored form.
final class NearestExamplesTests: XCTestCase {
  /// Each class's logit is `s ·` the mean of its `k` largest cosines (all, when it has fewer
  /// than `k`; `-s` when it has none), computed here one cosine at a time in Double, for
  /// several `k` and inputs of any length, in one batch (sgemm) and one at a time (the dot
  /// kernel).
  func testLogitsAreTheMeanOfEachClassesNearestCosines() {
    var random = Xoshiro256(seed: 11)
    let (classes, dimension) = (4, 7)
    // Class 3 has no examples and class 2 only two.
    let labels = (0..<40).map { $0 % 3 == 2 && $0 > 5 ? 0 : $0 % 3 }
    let examples = labels.map { _ in (0..<dimension).map { _ in random.nextUnitFloat() * 2 - 1 } }
    let inputs = (0..<9).map { i in
      (0..<dimension).map { _ in (random.nextUnitFloat() * 2 - 1) * Float(i + 1) }
    }
    func cosine(_ a: [Float], _ b: [Float]) -> Double {
      let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
      let norms = [a, b].map { v in v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
      return dot / (norms[0] * norms[1])
    }
    for k in [1, 3, 5] {
      let head = NearestExamples(
        inputs: examples, labels: labels, classes: classes, neighbours: k, scale: 20)
      let batch = head.logits(inputs.flatMap { $0 })
      let single = inputs.flatMap { head.logits($0) }
      for (i, x) in inputs.enumerated() {
        for c in 0..<classes {
          let nearest = zip(examples, labels).filter { $0.1 == c }.map { cosine(x, $0.0) }
            .sorted(by: >).prefix(k)
          let expected = nearest.isEmpty ? -20 : 20 * nearest.reduce(0, +) / Double(nearest.count)
          XCTAssertEqual(Double(batch[i * classes + c]), expected, accuracy: 1e-4, "k \(k)")
          XCTAssertEqual(Double(single[i * classes + c]), expected, accuracy: 1e-4, "k \(k)")
        }
      }
    }
  }

  /// The stored form gives back the same classifier; arrays that are not that form are
  /// refused with what is wrong, never read past their end.
  func testStoredFormRoundTripsAndBadFormsAreRefused() throws {
    let head = NearestExamples(
      inputs: [[1, 0], [0, 2], [3, 4]], labels: [0, 1, 1], classes: 2, neighbours: 2, scale: 10)
    let stored = head.parameters
    XCTAssertEqual(stored.count, 4 + 3 * 3)
    let read = try NearestExamples(classes: 2, parameters: stored)
    XCTAssertEqual(read.labels, head.labels)
    XCTAssertEqual(read.examples, head.examples)
    XCTAssertEqual(read.logits([0.6, 0.8]), head.logits([0.6, 0.8]))

    var wrongLabel = stored
    wrongLabel[6] = 2
    var fractionalCount = stored
    fractionalCount[1] = 2.5
    for (bad, reason) in [
      (Array(stored.dropLast()), "values where 3 examples need 13"),
      (wrongLabel, "a label outside the 2 classes"), (fractionalCount, "a header"),
      ([], "too short"), ([2, 3, 2, .nan], "a header"),
    ] {
      XCTAssertThrowsError(try NearestExamples(classes: 2, parameters: bad)) { error in
        XCTAssertTrue("\(error)".contains(reason), "\(error)")
      }
    }
  }
}
