import Foundation
import Tensor

/// AdamW (Loshchilov & Hutter) exactly as `torch.optim.AdamW` steps it, with weight decay only
/// on the parameters whose ``ParameterLayout/Entry/decays`` is true (not biases, not LayerNorm),
/// as Hugging Face's trainer groups them.
///
/// For each parameter `θ` with gradient `g` at step `t` (counting from 1) and rate `η`:
///
///     θ ← θ − η·λ·θ                        (decoupled decay, λ = weightDecay, if it decays)
///     m ← β₁·m + (1 − β₁)·g
///     v ← β₂·v + (1 − β₂)·g²
///     θ ← θ − η/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε)
///
/// Every parameter is updated every step, including word-embedding rows with a zero gradient
/// (their moments decay and they keep moving), because that is what PyTorch does with the dense
/// gradient of an `nn.Embedding`.
///
/// ```swift
/// var optimizer = AdamW<Float>(layout: weights.layout)
/// optimizer.step(parameters: &weights.values, gradients: grads, learningRate: 2e-5)
/// ```
public struct AdamW<Scalar: TensorScalar>: Sendable {
  public var beta1: Double = 0.9
  public var beta2: Double = 0.999
  public var epsilon: Double = 1e-8
  public var weightDecay: Double = 0.01
  /// Steps taken so far (`t` of the bias corrections).
  public internal(set) var step = 0
  /// First and second moment estimates, laid out as the parameters.
  public internal(set) var firstMoment: [Scalar]
  public internal(set) var secondMoment: [Scalar]
  /// For each scalar index range, whether it decays.
  let decayRanges: [(range: Range<Int>, decays: Bool)]

  public init(layout: ParameterLayout, weightDecay: Double = 0.01) {
    self.weightDecay = weightDecay
    firstMoment = [Scalar](repeating: 0, count: layout.count)
    secondMoment = [Scalar](repeating: 0, count: layout.count)
    decayRanges = layout.entries.map { ($0.range, $0.decays) }
  }

  /// A flat optimiser over `count` parameters that all decay (or none), e.g. an adapter matrix.
  public init(count: Int, decays: Bool, weightDecay: Double = 0.01) {
    self.weightDecay = weightDecay
    firstMoment = [Scalar](repeating: 0, count: count)
    secondMoment = [Scalar](repeating: 0, count: count)
    decayRanges = [(0..<count, decays)]
  }

  /// Applies one update with learning rate `learningRate`.
  public mutating func step(
    parameters: inout [Scalar], gradients: [Scalar], learningRate: Double
  ) {
    precondition(parameters.count == firstMoment.count && gradients.count == firstMoment.count)
    step += 1
    let coefficients = AdamWStep(
      beta1: Scalar(beta1), beta2: Scalar(beta2),
      stepSize: Scalar(learningRate / (1 - Foundation.pow(beta1, Double(step)))),
      inverseCorrection2: Scalar(1 / (1 - Foundation.pow(beta2, Double(step))).squareRoot()),
      epsilon: Scalar(epsilon), decay: 1)
    let decayFactor = 1 - Scalar(learningRate) * Scalar(weightDecay)
    let ranges = decayRanges
    parameters.withUnsafeMutableBufferPointer { theta in
      gradients.withUnsafeBufferPointer { g in
        firstMoment.withUnsafeMutableBufferPointer { m in
          secondMoment.withUnsafeMutableBufferPointer { v in
            for (range, decays) in ranges {
              var part = coefficients
              if decays { part.decay = decayFactor }
              Parallel.forEachChunk(range.count, minimumPerChunk: 1 << 15) { chunk in
                let i = range.lowerBound + chunk.lowerBound
                Scalar.adamWUpdate(
                  count: chunk.count, parameters: theta.baseAddress! + i,
                  gradients: g.baseAddress! + i, firstMoment: m.baseAddress! + i,
                  secondMoment: v.baseAddress! + i, part)
              }
            }
          }
        }
      }
    }
  }
}

/// Linear warm-up then linear decay to zero, as `transformers.get_linear_schedule_with_warmup`:
/// the rate for the step with index `t` (0-based, so the very first update uses `t = 0`) is
///
///     η(t) = η₀ · t / w                      for t < w
///     η(t) = η₀ · max(0, (T − t) / (T − w))  otherwise
///
/// with `w = ⌈warmupRatio · T⌉` warm-up steps out of `T` (Hugging Face rounds the ratio up).
public struct LinearWarmupSchedule: Sendable, Equatable, Codable {
  public var peak: Double
  public var totalSteps: Int
  public var warmupSteps: Int

  public init(peak: Double, totalSteps: Int, warmupRatio: Double = 0.1) {
    self.peak = peak
    self.totalSteps = totalSteps
    warmupSteps = Int((warmupRatio * Double(totalSteps)).rounded(.up))
  }

  /// The learning rate of the update with 0-based index `step`.
  public func learningRate(atStep step: Int) -> Double {
    if step < warmupSteps { return peak * Double(step) / Double(max(1, warmupSteps)) }
    return peak * max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps)))
  }
}

/// Gradient-norm clipping as `torch.nn.utils.clip_grad_norm_`: with `n = ‖g‖₂` over all
/// parameters, the gradients are multiplied by `min(1, maxNorm / (n + 1e-6))`.
public enum GradientClipping {
  /// The multiplier for a gradient of norm `norm`.
  public static func factor(norm: Double, maxNorm: Double) -> Double {
    min(1, maxNorm / (norm + 1e-6))
  }

  /// Scales `gradient` down to norm `maxNorm` when it is longer (norm accumulated in Double).
  public static func clip(_ gradient: inout [Float], maxNorm: Double) {
    let norm = gradient.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    let factor = Float(factor(norm: norm, maxNorm: maxNorm))
    if factor < 1 { for i in gradient.indices { gradient[i] *= factor } }
  }
}
