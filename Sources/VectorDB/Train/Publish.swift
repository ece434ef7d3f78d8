import Foundation
import LMDB

extension DocumentCollection {
  /// Stores the candidate's version with its lineage and, when the gate promoted it, puts
  /// it to work: an adapter activated in the same transaction; an encoder by a re-embed
  /// into a new generation. The run's records go in the same transaction as the version.
  /// Returns the version, and for a promoted encoder its generation and whether it is
  /// built.
  func publish(
    _ candidate: Candidate?, run: TrainingRun, gate: GateDecision,
    progress: ((TrainingStage) throws -> Void)?
  ) throws -> (ModelInfo, generation: Int?, reembedded: Bool) {
    let promoted = gate.promoted
    let lineage = run.lineage(gate: gate, losses: candidate?.losses ?? [], collection: self.name)
    let models = database.models
    let options = run.options
    let name = "fine-tune of v\(run.baseModel) on \(self.name)"
    let runKeys = [CollectionMetaKey.Record.trainCheckpoint, .trainRun, .trainFit].map(blobKey)
    let schema = self.schema
    // A later run's gate lets none of these vote while the version serves.
    let trainedOn = Set((candidate?.queries ?? []).map(Self.queryHash))
    switch candidate?.model {
    case .adapter(let adapter):
      let parent = try database.model(version: run.baseModel)
      let info = try write { txn, collection in
        let info = try models.add(
          adapter: adapter, name: "query adapter over v\(run.baseModel) on \(self.name)",
          state: promoted ? .ready : .rejected, parent: parent, lineage: lineage, in: txn)
        try models.setTrainedQueries(trainedOn, version: info.version, in: txn)
        if promoted { try setAdapter(info, in: txn, collection: collection) }
        for key in runKeys { try txn.delete(schema.meta, key: key) }
        return info
      }
      return (info, nil, false)
    case .encoder(let encoder, let lora) where promoted || options.keepRejected || lora != nil:
      // A LoRA candidate is stored as its adapters (a few MB), even when rejected.
      let info = try storage {
        try database.environment.write { txn in
          let info = try models.add(
            encoder: encoder, lora: lora,
            name: lora == nil ? name : "LoRA of v\(run.baseModel) on \(self.name)",
            state: promoted ? .ready : .rejected,
            parent: run.baseModel, lineage: lineage, in: txn)
          try models.setTrainedQueries(trainedOn, version: info.version, in: txn)
          for key in runKeys { try txn.delete(schema.meta, key: key) }
          return info
        }
      }
      guard promoted else { return (info, nil, false) }
      // The new generation: a resumable re-embed job; the active one answers meanwhile.
      if options.waitForReembed {
        let report = try reembed(
          to: info.version, all: true, batchSize: options.reembedBatchSize
        ) { try progress?(.embedding($0)) }
        return (info, report.generation, true)
      }
      let record = try startGeneration(model: info.version)
      return (info, record.building.map(Int.init), false)
    default:
      // A rejected encoder: its lineage and metrics, not its weights.
      let base = try database.model(version: run.baseModel)
      let info = try storage {
        try database.environment.write { txn in
          let info = try models.addLineage(
            name: name, parent: base, lineage: lineage, in: txn)
          for key in runKeys { try txn.delete(schema.meta, key: key) }
          return info
        }
      }
      return (info, nil, false)
    }
  }
}

extension TrainingRun {
  /// What the candidate's model version records of how it was made.
  func lineage(gate: GateDecision, losses: [Double], collection: String) -> [String: JSONValue] {
    let verdict = gate.verdict
    return [
      "tier": .string(options.tier.rawValue),
      "generation": .number(Double(generation)),
      "judged_queries": .number(Double(data.judgedQueries)),
      "train_pairs": .number(Double(data.trainPairs)),
      "negatives": .number(Double(data.negatives)),
      "heldout_queries": .number(Double(data.heldOutQueries)),
      "folds": .number(Double(folds.count)),
      "epochs": .number(Double(options.epochCount)),
      "batch_size": .number(Double(options.batchSize)),
      "learning_rate": .number(options.peakLearningRate),
      "max_seq_length": .number(Double(options.maxSequenceLength)),
      "hard_negatives": .number(Double(options.hardNegatives)),
      "seed": .number(Double(options.seed)),
      "losses": .array(losses.map { .number($0) }),
      "gate": .object([
        "delta": .number(verdict.delta), "ci_low": .number(verdict.ciLow),
        "ci_high": .number(verdict.ciHigh), "queries": .number(Double(verdict.queries)),
        "promoted": .bool(verdict.promoted), "method": .string(verdict.method),
      ]),
      "reason": .string(gate.reason),
      "collection": .string(collection),
      "heldout_before": .object(gate.before.means.mapValues { .number($0) }),
      "heldout_after": .object(gate.after.mapValues { .number($0) }),
    ]
  }
}
