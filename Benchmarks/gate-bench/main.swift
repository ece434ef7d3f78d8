// How often the training gate promotes a candidate that helps, and one that hurts, as the
// judged log grows (docs/training.md, "What the gate can tell").
//
//   swift run -c release gate-bench [--sizes 50,100,200,400] [--seeds 5] [--tier adapter]
//
// SciFact (../shared/datasets/scifact): the corpus is embedded once with the default
// model; each trial is a fresh collection over those vectors whose log holds the
// judgements of `size` training queries drawn with the trial's seed. `vdb train`'s
// defaults run (the gate cross-fits below 400 judged queries); then the candidate —
// promoted or not — is scored on the 300 test queries, which no trial ever judges. A
// trial "helps" when the candidate's test nDCG@10 beats the base model's by more than
// 0.005, "hurts" when it falls short by more than 0.005. Reported per size: promotions
// of helping and of hurting candidates.
import ArgumentParser
import BenchmarkSupport
import Foundation
import Tensor
import VectorDB

@main
struct GateBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Promotion rates of the training gate on SciFact subsamples.")

  @Option(help: "Judged training queries per trial, comma-separated.")
  var sizes = CommaSeparated([50, 100, 200, 400])
  @Option(help: "Trials (seeds) per size.") var seeds = 5
  @Option(help: "full or adapter.") var tier = "adapter"
  @Option(help: "The SciFact directory.") var data = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().appendingPathComponent("../../../shared/datasets/scifact")
    .standardized.path

  func run() throws {
    guard let tier = TrainingOptions.Tier(rawValue: tier) else {
      throw ValidationError("--tier must be full or adapter")
    }
    let sizes = sizes.values
    let directory = NSTemporaryDirectory() + "vdb-gate-bench-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let db = try Database(path: directory)
    try db.importModel(directory: DefaultModel.directory)

    let queries = try BEIR.queries(path: data + "/queries.jsonl")
    let trainQrels = try BEIR.qrels(path: data + "/qrels/train.tsv")
    let testQrels = try BEIR.qrels(path: data + "/qrels/test.tsv")
    // As `vdb import --beir` reads it: the title, a space, the text.
    let documents = try String(contentsOfFile: data + "/corpus.jsonl", encoding: .utf8)
      .split(separator: "\n").map { line -> Document in
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        let title = (object["title"] as? String ?? "").trimmingCharacters(
          in: .whitespacesAndNewlines)
        let text = object["text"] as? String ?? ""
        return Document(id: "\(object["_id"]!)", text: title.isEmpty ? text : title + " " + text)
      }
    log("embedding \(documents.count) documents once")
    let vectors = try db.encoder(version: 1).embed(documents.map(\.text))

    print("tier \(tier.rawValue); helps/hurts: test nDCG@10 change beyond ±0.005")
    print("size  seed  judged  gate         delta    interval             test change  promoted")
    var summary: [Int: (helpsPromoted: Int, helps: Int, hurtsPromoted: Int, hurts: Int)] = [:]
    var base: Double?
    for size in sizes {
      for seed in 1...seeds {
        let name = "t\(size)-\(seed)"
        let collection = try db.collection(name)
        try collection.upsert(documents, vectors: vectors)
        if base == nil {
          base = try collection.evaluate(queries: queries, qrels: testQrels, exact: true)
            .metrics["ndcg@10"]
        }
        var generator = SplitMix64(seed: UInt64(seed * 1_000 + size))
        let chosen = trainQrels.keys.sorted().shuffled(using: &generator).prefix(size)
        try collection.judge(
          chosen.map { Judgement(query: queries[$0]!, relevant: trainQrels[$0]!) })
        var options = TrainingOptions()
        options.tier = tier
        options.seed = UInt64(seed)
        options.keepRejected = true
        let report = try collection.train(options: options)
        if !report.promoted { _ = try collection.activate(model: report.modelVersion) }
        let test = try collection.evaluate(queries: queries, qrels: testQrels, exact: true)
          .metrics["ndcg@10"]!
        let change = test - base!
        var row = summary[size] ?? (0, 0, 0, 0)
        if change > 0.005 {
          row.helps += 1
          if report.promoted { row.helpsPromoted += 1 }
        } else if change < -0.005 {
          row.hurts += 1
          if report.promoted { row.hurtsPromoted += 1 }
        }
        summary[size] = row
        let gate = report.gate
        print(
          String(
            format: "%4d  %4d  %6d  %-10@  %+.4f  [%+.4f, %+.4f]  %+.4f      %@", size, seed,
            report.data.judgedQueries, "\(gate.method)/\(gate.folds)", gate.delta, gate.ciLow,
            gate.ciHigh, change, report.promoted ? "yes" : "no"))
        try db.dropCollection(name)
      }
    }
    print("\nsize  helping candidates promoted  hurting candidates promoted")
    for size in sizes {
      let row = summary[size]!
      print(
        String(
          format: "%4d  %d of %d                      %d of %d", size, row.helpsPromoted, row.helps,
          row.hurtsPromoted, row.hurts))
    }
    print(String(format: "base model test nDCG@10 %.4f", base ?? 0))
  }

  private func log(_ message: String) {
    FileHandle.standardError.write(Data("gate-bench: \(message)\n".utf8))
  }
}
