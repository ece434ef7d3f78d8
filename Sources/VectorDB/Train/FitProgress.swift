import Training

/// Where the fit of a training candidate is: `TrainingStage.training` hands one over after
/// every optimiser step.
///
///     let report = try docs.train { stage in
///       if case .training(let fit, let fold, let folds) = stage {
///         print("fit \(fold)/\(folds): step \(fit.step)/\(fit.totalSteps), loss \(fit.loss)")
///       }
///     }
public struct FitProgress: Sendable, Equatable {
  /// Steps done, from 1 (the first report says 1).
  public var step: Int
  /// Steps the fit takes in all: epochs × batches per epoch.
  public var totalSteps: Int
  /// The epoch of the step just taken, from 0.
  public var epoch: Int
  /// The step's loss: the tier's ranking loss, averaged over the batch.
  public var loss: Double
  /// The learning rate the step used: the schedule's value at this step.
  public var learningRate: Double
  /// Speed of the latest step, in steps per second.
  public var stepsPerSecond: Double
}

extension FitProgress {
  /// The trainer's report of its last step.
  init(_ progress: TrainingProgress) {
    self.init(
      step: progress.step, totalSteps: progress.totalSteps, epoch: progress.epoch,
      loss: progress.loss, learningRate: progress.learningRate,
      stepsPerSecond: progress.stepsPerSecond)
  }
}
