import Embedding
import Tensor
import XCTest

@testable import Training

/// The LoRA tier: gradients by finite differences, merged equals unmerged, storage round trip.
final class LoRATests: XCTestCase {
  /// Adapters on the tiny test encoder with `B` random too (fresh adapters have `B = 0`, which
  /// would make `∂L/∂A` zero and the check blind to it).
  static func adapters<S: TensorScalar>(
    _ targets: [LoRAConfiguration.Target] = LoRAConfiguration.Target.allCases, rank: Int = 3
  ) throws -> LoRAAdapters<S> {
    var adapters = try LoRAAdapters<S>(
      config: GradientCheckTests.tiny,
      configuration: LoRAConfiguration(rank: rank, alpha: 6, targets: targets), seed: 5)
    var random = Xoshiro256(seed: 8)
    for entry in adapters.entries {
      for i in entry.b..<(entry.b + entry.outFeatures * rank) {
        adapters.values[i] = S(0.2 * (Double(random.nextUnitFloat()) - 0.5))
      }
    }
    return adapters
  }

  func testAdapterGradientsMatchFiniteDifferences() throws {
    let setup = try GradientCheckTests.Setup(dropout: 0.1)
    let base = setup.encoder.parameters
    var adapters: LoRAAdapters<Double> = try Self.adapters()
    setup.encoder.parameters = adapters.merged(into: base)
    let (weightGradient, _) = setup.analytic()
    let gradient = adapters.gradients(
      weightGradients: weightGradient, layout: base.layout)
    var random = Xoshiro256(seed: 12)
    var nonZero = 0
    for entry in adapters.entries {
      let r = adapters.configuration.rank
      for (part, range) in [
        ("A", entry.a..<entry.b), ("B", entry.b..<(entry.b + entry.outFeatures * r)),
      ] {
        for _ in 0..<3 {
          let index = range.lowerBound + Int(random.next() % UInt64(range.count))
          let original = adapters.values[index]
          let numeric = GradientCheckTests.numeric { delta in
            adapters.values[index] = original + delta
            defer { adapters.values[index] = original }
            setup.encoder.parameters = adapters.merged(into: base)
            return setup.lossValue()
          }
          GradientCheckTests.assertClose(gradient[index], numeric, "\(entry.weight) \(part)")
          if abs(numeric) > 1e-8 { nonZero += 1 }
        }
      }
    }
    XCTAssertGreaterThan(nonZero, adapters.entries.count * 6 * 3 / 4)
  }

  /// Naming only the adapted weights (as the LoRA trainers do) leaves their gradients and so
  /// the adapters' gradient exactly as a full backward pass gives them, and the other linear
  /// weights' gradients zero.
  func testOnlyTheAdaptedWeightsGradientsAreComputedAndTheyAreUnchanged() throws {
    let setup = try GradientCheckTests.Setup(dropout: 0.1)
    let base = setup.encoder.parameters
    let adapters: LoRAAdapters<Double> = try Self.adapters([.query, .value])
    setup.encoder.parameters = adapters.merged(into: base)
    let (full, _) = setup.analytic()
    let adapted = Set(adapters.entries.map(\.weight))
    setup.encoder.weightGradientsComputed = adapted
    let (restricted, _) = setup.analytic()
    setup.encoder.weightGradientsComputed = nil
    XCTAssertEqual(
      adapters.gradients(weightGradients: restricted, layout: base.layout),
      adapters.gradients(weightGradients: full, layout: base.layout))
    var frozen = 0
    for entry in base.layout.entries where entry.name.hasSuffix("dense.weight") {
      let values = Array(restricted[entry.offset..<(entry.offset + entry.count)])
      XCTAssertTrue(values.allSatisfy { $0 == 0 }, entry.name)
      XCTAssertTrue(full[entry.offset..<(entry.offset + entry.count)].contains { $0 != 0 })
      frozen += 1
    }
    XCTAssertEqual(frozen, 3 * GradientCheckTests.tiny.layerCount, "three dense weights a layer")
    for name in adapted {
      let entry = base.layout.entry(named: name)!
      XCTAssertEqual(
        restricted[entry.offset..<(entry.offset + entry.count)],
        full[entry.offset..<(entry.offset + entry.count)], name)
    }
  }

  /// A linear layer with merged weights equals the base layer plus the low-rank path:
  /// `x·(W + s·B·A)ᵀ + b = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ`.
  func testMergedWeightsEqualTheUnmergedLowRankPath() throws {
    let base = try EncoderParameters<Double>(randomFor: GradientCheckTests.tiny, seed: 4)
    let adapters: LoRAAdapters<Double> = try Self.adapters()
    let merged = adapters.merged(into: base)
    let s = adapters.configuration.scale
    let r = adapters.configuration.rank
    var random = Xoshiro256(seed: 3)
    let rows = 5
    for entry in adapters.entries {
      let (out, inputs) = (entry.outFeatures, entry.inFeatures)
      let x = (0..<(rows * inputs)).map { _ in Double(random.nextUnitFloat()) - 0.5 }
      let offset = base.layout.entry(named: entry.weight)!.offset
      let bias = [Double](repeating: 0.25, count: out)
      var viaMerged = [Double](repeating: 0, count: rows * out)
      var viaPath = [Double](repeating: 0, count: rows * out)
      merged.values.withUnsafeBufferPointer { w in
        Kernels.linear(
          x, rows: rows, inputs: inputs, weight: w.baseAddress! + offset, bias: bias,
          outputs: out, into: &viaMerged)
      }
      base.values.withUnsafeBufferPointer { w in
        Kernels.linear(
          x, rows: rows, inputs: inputs, weight: w.baseAddress! + offset, bias: bias,
          outputs: out, into: &viaPath)
      }
      let a = Array(adapters.values[entry.a..<entry.b])
      let b = Array(adapters.values[entry.b..<(entry.b + out * r)])
      for row in 0..<rows {
        for k in 0..<r {
          var xa = 0.0
          for i in 0..<inputs { xa += x[row * inputs + i] * a[k * inputs + i] }
          for o in 0..<out { viaPath[row * out + o] += s * xa * b[o * r + k] }
        }
      }
      for i in viaMerged.indices {
        XCTAssertEqual(viaMerged[i], viaPath[i], accuracy: 1e-12, "\(entry.weight)[\(i)]")
      }
    }
    // Only the adapted weights change.
    let adapted = Set(adapters.entries.map(\.weight))
    for entry in base.layout.entries where !adapted.contains(entry.name) {
      XCTAssertEqual(merged.values[entry.range], base.values[entry.range], entry.name)
    }
  }

  func testFreshAdaptersLeaveTheModelUnchangedAndRoundTrip() throws {
    let base = try EncoderParameters<Float>(randomFor: TrainerTests.tiny, seed: 4)
    let fresh = try LoRAAdapters<Float>(
      config: base.config, configuration: LoRAConfiguration(rank: 4), seed: 1)
    XCTAssertEqual(fresh.merged(into: base), base)
    XCTAssertEqual(fresh.entries.count, 2 * 4)  // 2 layers × q, k, v, attention output
    let trained: LoRAAdapters<Float> = try Self.adapters([.query, .value, .output], rank: 2)
    let again = try LoRAAdapters<Float>(
      config: base.config, configuration: trained.configuration, tensors: trained.tensors())
    XCTAssertEqual(again, trained)
    var tensors = trained.tensors()
    tensors["encoder.layer.1.output.dense.weight.lora_B"] = Tensor(
      shape: [2, 2], values: [0, 0, 0, 0])
    XCTAssertThrowsError(
      try LoRAAdapters<Float>(
        config: base.config, configuration: trained.configuration, tensors: tensors)
    ) { XCTAssertTrue("\($0)".contains("encoder.layer.1.output.dense.weight.lora_B"), "\($0)") }
    XCTAssertThrowsError(
      try LoRAAdapters<Float>(
        config: base.config, configuration: LoRAConfiguration(rank: 0), seed: 1))
  }

  /// A LoRA run lowers the loss of a toy task, moves only the adapted weights, and resumes
  /// from a checkpoint bit for bit.
  func testLoRATrainingLearnsAndResumesExactly() throws {
    let base = try EncoderParameters<Float>(randomFor: TrainerTests.tiny, seed: 1)
    let examples = TrainerTests.examples(count: 16)
    var configuration = TrainerTests.configuration(epochs: 6)
    configuration.learningRate = 1e-2
    let lora = LoRAConfiguration(rank: 4, alpha: 8)
    let trainer = try EncoderTrainer(
      parameters: base, examples: examples, configuration: configuration, lora: lora)
    let before = trainer.evaluateLoss(examples)
    trainer.run(steps: 5)
    let saved = try trainer.checkpoint()
    trainer.run()
    XCTAssertLessThan(trainer.evaluateLoss(examples), before * 0.9)
    let adapted = Set(trainer.lora!.entries.map(\.weight))
    for entry in base.layout.entries {
      let changed = trainer.encoder.parameters.values[entry.range] != base.values[entry.range]
      XCTAssertEqual(changed, adapted.contains(entry.name), entry.name)
    }
    let resumed = try EncoderTrainer(resuming: saved, examples: examples)
    resumed.run()
    XCTAssertEqual(resumed.lora, trainer.lora)
    XCTAssertEqual(resumed.encoder.parameters, trainer.encoder.parameters)
  }
}
