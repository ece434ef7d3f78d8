import Foundation
import XCTest

@testable import VectorDB

/// A small real retrieval task for training tests: 40 training queries of SciFact, their
/// relevant abstracts and 160 others (first 600 characters each), with the judgements
/// logged — or, when `shuffled`, each query given another query's documents.
enum SciFactSlice {
  static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../../shared/datasets/scifact").standardized.path

  static func make(database path: String, shuffled: Bool = false) throws -> DocumentCollection {
    let database = try Database(path: path)
    try database.importModel(directory: DefaultModel.directory)
    let collection = try database.collection("s")
    let queries = try BEIR.queries(path: directory + "/queries.jsonl")
    let qrels = try BEIR.qrels(path: directory + "/qrels/train.tsv")
    let chosen = Array(qrels.keys.sorted().prefix(40))
    let needed = Set(chosen.flatMap { qrels[$0]!.keys })
    var documents: [Document] = []
    var others = 0
    let corpus = try Data(contentsOf: URL(fileURLWithPath: directory + "/corpus.jsonl"))
    try JSONLines.forEach(in: corpus) { line, bytes in
      let document = try JSONLines.document(from: bytes, source: "corpus", line: line)
      let isNeeded = needed.contains(document.id)
      if isNeeded || others < 160 {
        if !isNeeded { others += 1 }
        documents.append(Document(id: document.id, text: String(document.text.prefix(600))))
      }
    }
    try collection.upsert(documents)
    var positives = chosen.map { qrels[$0]! }
    if shuffled { positives = Array(positives[1...]) + [positives[0]] }
    try collection.judge(
      zip(chosen, positives).map { Judgement(query: queries[$0]!, relevant: $1) })
    return collection
  }
}
