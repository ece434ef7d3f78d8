import Foundation

/// What ``EncoderTrainer`` and ``AdapterTrainer`` share: a planned sequence of optimiser
/// steps over the ranking loss, taken one at a time, with a checkpoint of the whole state.
///
/// ```swift
/// let trainer: any RankingTrainer = try AdapterTrainer(dimension: 384, examples: examples)
/// trainer.run { print("step \($0.step)/\($0.totalSteps) loss \($0.loss)") }
/// ```
public protocol RankingTrainer: AnyObject {
  /// The batches and learning rate of every step.
  var plan: TrainingPlan { get }
  /// Steps taken so far.
  var step: Int { get }
  /// Loss of every step taken, in order.
  var lossHistory: [Double] { get }
  /// One optimiser step on the next planned batch; returns its loss.
  @discardableResult func takeStep() -> Double
  /// The complete state of the run as bytes, to resume from.
  func checkpoint() throws -> Data
}

extension RankingTrainer {
  /// Steps in the whole run.
  public var totalSteps: Int { plan.totalSteps }

  /// The 0-based epoch of the 0-based `step`.
  public func epoch(atStep step: Int) -> Int { plan.batch(atStep: step).epoch }

  /// The learning rate of the 0-based `step`.
  public func learningRate(atStep step: Int) -> Double { plan.schedule.learningRate(atStep: step) }

  /// Whether every planned step has been taken.
  public var isFinished: Bool { step >= totalSteps }

  /// Takes steps until the run is finished or `steps` more were taken, calling `progress`
  /// after each.
  public func run(steps: Int? = nil, progress: ((TrainingProgress) -> Void)? = nil) {
    let start = Date()
    let first = step
    let last = min(totalSteps, steps.map { step + $0 } ?? totalSteps)
    while step < last {
      let epoch = epoch(atStep: step)
      let rate = learningRate(atStep: step)
      let stepLoss = takeStep()
      let elapsed = max(Date().timeIntervalSince(start), 1e-9)
      progress?(
        TrainingProgress(
          step: step, totalSteps: totalSteps, epoch: epoch, loss: stepLoss,
          learningRate: rate, stepsPerSecond: Double(step - first) / elapsed))
    }
  }
}
