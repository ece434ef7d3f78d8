import Embedding
import Tensor
import XCTest

@testable import Training

/// Training with bfloat16 products: the same loss and gradients as float32 up to bfloat16's
/// rounding (8 bits of mantissa), at every bfloat16 level the CPU has.
final class MatmulPrecisionTests: XCTestCase {
  /// The loss and the parameter gradients of one ranking-loss step of the tiny encoder.
  private func step(_ encoder: TrainableEncoder<Float>) throws -> (loss: Double, gradients: [Float])
  {
    let batch = try TokenBatch(
      GradientCheckTests.sequences, vocabulary: GradientCheckTests.tiny.vocabularySize,
      maximumLength: 16)
    encoder.zeroGradients()
    var peak = 0
    let loss = EncoderTrainer.rankingLossGradients(
      encoder: encoder, sequences: batch, queryCount: 3, loss: MultipleNegativesRankingLoss(),
      dropoutSeeds: (0..<8).map { UInt64($0) }, miniBatchSize: nil, peakActivationBytes: &peak)
    return (loss, encoder.gradients)
  }

  func testBFloat16ProductsGiveFloat32sGradientsToBFloat16sPrecision() throws {
    let parameters = try EncoderParameters<Float>(randomFor: GradientCheckTests.tiny, seed: 11)
    let encoder = TrainableEncoder(parameters: parameters, dropout: 0.1)
    let exact = try step(encoder)
    encoder.matmulPrecision = .bfloat16
    defer { PackedWeights.KernelLevel.use(nil, for: .bfloat16) }
    for level in PackedWeights.KernelLevel.available(.bfloat16) {
      PackedWeights.KernelLevel.use(level, for: .bfloat16)
      let rounded = try step(encoder)
      let name = level.name(.bfloat16)
      XCTAssertEqual(rounded.loss, exact.loss, accuracy: 0.01 * exact.loss, name)
      XCTAssertNotEqual(rounded.gradients, exact.gradients, "\(name): the products were float32")
      for entry in parameters.layout.entries where entry.name.hasSuffix(".weight") {
        let range = entry.offset..<(entry.offset + entry.count)
        let (a, b) = (exact.gradients[range], rounded.gradients[range])
        let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let norms = [a, b].map { $0.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        guard norms[0] > 0 else { continue }  // untouched embedding rows
        XCTAssertGreaterThan(dot / (norms[0] * norms[1]), 0.999, "\(name) \(entry.name)")
        XCTAssertEqual(norms[1] / norms[0], 1, accuracy: 0.02, "\(name) \(entry.name)")
      }
    }
  }
}
