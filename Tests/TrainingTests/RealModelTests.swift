import Embedding
import Foundation
import XCTest

@testable import Training

/// The trainer on the real all-MiniLM-L6-v2 (from `tools/fetch-model.sh`; the tests fail with
/// a hint when it is missing, as the Embedding tests do).
final class RealModelTests: XCTestCase {
  static let projectRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  static let modelDirectory = SentenceEncoder.defaultModelDirectory

  static let model: Result<SentenceEncoder, Error> = Result {
    try SentenceEncoder(directory: modelDirectory)
  }

  func loadModel() throws -> SentenceEncoder {
    do {
      return try Self.model.get()
    } catch {
      XCTFail(
        "cannot load the model at \(Self.modelDirectory.path) (run tools/fetch-model.sh): \(error)")
      throw error
    }
  }

  struct Golden: Decodable {
    var id: Int
    var inputIDs: [Int]?
    var embedding: [Float]?
    enum CodingKeys: String, CodingKey {
      case id, embedding
      case inputIDs = "input_ids"
    }
  }

  struct GoldenFile: Decodable { var items: [Golden] }

  func golden(_ name: String) throws -> [Golden] {
    let url = Self.projectRoot.deletingLastPathComponent()
      .appendingPathComponent("shared/reference/\(name)")
    let data = try XCTUnwrap(FileManager.default.contents(atPath: url.path), "missing \(url.path)")
    return try JSONDecoder().decode(GoldenFile.self, from: data).items
  }

  /// The training forward pass (dropout off) reproduces sentence-transformers' embeddings.
  func testForwardPassMatchesTheReferenceEmbeddings() throws {
    let model = try loadModel()
    let encoder = TrainableEncoder(parameters: try EncoderParameters(model))
    let tokens = Dictionary(
      uniqueKeysWithValues: try golden("minilm_reference_tokens.json").map { ($0.id, $0) })
    let references = try golden("minilm_reference_embeddings.json")
    var sequences: [[Int32]] = []
    var expected: [[Float]] = []
    for reference in references {
      guard let ids = tokens[reference.id]?.inputIDs, let embedding = reference.embedding else {
        continue
      }
      // The reference truncates to 256 tokens, keeping [SEP] last.
      let truncated = ids.count > 256 ? Array(ids.prefix(255)) + [ids.last!] : ids
      sequences.append(truncated.map(Int32.init))
      expected.append(embedding)
    }
    XCTAssertGreaterThan(sequences.count, 10)
    let embeddings = encoder.embed(
      try TokenBatch(sequences, vocabulary: encoder.config.vocabularySize))
    for (i, reference) in expected.enumerated() {
      let mine = Array(embeddings[(i * 384)..<((i + 1) * 384)])
      var dot = 0.0
      for (a, b) in zip(mine, reference) { dot += Double(a) * Double(b) }
      XCTAssertGreaterThanOrEqual(dot, 0.9999, "reference item \(i): cosine \(dot)")
    }
  }

  /// (query, relevant abstract) pairs of SciFact's training qrels, tokenised at `maxLength`
  /// (short by default: the debug build is slow).
  func scifactExamples(_ model: SentenceEncoder, count: Int, maxLength: Int = 64) throws
    -> [TrainingExample]
  {
    let directory = Self.projectRoot.deletingLastPathComponent()
      .appendingPathComponent("shared/datasets/scifact")
    func lines(_ name: String) throws -> [Substring] {
      try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        .split(whereSeparator: \.isNewline)  // "\r\n" is one Character: not split by "\n"
    }
    struct Record: Decodable {
      var _id: String
      var title: String?
      var text: String
    }
    var pairs: [(String, String)] = []
    for line in try lines("qrels/train.tsv") {
      let fields = line.split(separator: "\t").map {
        $0.trimmingCharacters(in: .whitespacesAndNewlines)
      }
      if fields.count == 3, Int(fields[2]) ?? 0 > 0 { pairs.append((fields[0], fields[1])) }
      if pairs.count == count { break }
    }
    let wantedQueries = Set(pairs.map(\.0))
    let wantedDocuments = Set(pairs.map(\.1))
    var queries: [String: String] = [:]
    for line in try lines("queries.jsonl") {
      let record = try JSONDecoder().decode(Record.self, from: Data(line.utf8))
      if wantedQueries.contains(record._id) { queries[record._id] = record.text }
    }
    var documents: [String: String] = [:]
    for line in try lines("corpus.jsonl") {
      let record = try JSONDecoder().decode(Record.self, from: Data(line.utf8))
      if wantedDocuments.contains(record._id) {
        documents[record._id] = [record.title ?? "", record.text].filter { !$0.isEmpty }
          .joined(separator: " ")
      }
    }
    return pairs.map { query, document in
      TrainingExample(
        query: queries[query]!, positive: (id: document, text: documents[document]!),
        tokenizer: model.tokenizer, maxLength: maxLength)
    }
  }

  /// A few optimiser steps on one fixed batch lower its loss.
  func testAFewStepsLowerTheLossOnAFixedBatch() throws {
    let model = try loadModel()
    let examples = try scifactExamples(model, count: 4)
    var configuration = TrainingConfiguration()
    configuration.batchSize = examples.count  // every step sees the same batch
    configuration.epochs = 2
    configuration.warmupRatio = 0
    let trainer = try EncoderTrainer(
      parameters: try EncoderParameters(model), examples: examples, configuration: configuration)
    let before = trainer.evaluateLoss(examples)
    trainer.run()
    let after = trainer.evaluateLoss(examples)
    XCTAssertEqual(trainer.step, 2)
    XCTAssertLessThan(after, before * 0.5, "loss on the fixed batch: \(before) → \(after)")
    XCTAssertGreaterThan(trainer.peakActivationBytes, 0)
  }
}

extension RealModelTests {
  /// Loss and gradients on the real model equal PyTorch's. Reference values from
  /// sentence-transformers 6.2.0 on torch 2.15 (CPU, `model.eval()` so no dropout,
  /// `max_seq_length` 128): `MultipleNegativesRankingLoss(model)([queries, documents])` for the
  /// first 8 positive rows of SciFact's `qrels/train.tsv`, then `loss.backward()`, and the
  /// Frobenius norm of every parameter's `.grad` (and of all of them together).
  func testLossAndGradientsMatchPyTorch() throws {
    let model = try loadModel()
    let examples = try scifactExamples(model, count: 8, maxLength: 128)
    let encoder = TrainableEncoder(parameters: try EncoderParameters(model))
    let batch = try TokenBatch(
      examples.map(\.query) + examples.map(\.positive), vocabulary: encoder.config.vocabularySize)
    var peak = 0
    let loss = EncoderTrainer.rankingLossGradients(
      encoder: encoder, sequences: batch, queryCount: 8, loss: MultipleNegativesRankingLoss(),
      dropoutSeeds: nil, miniBatchSize: nil, peakActivationBytes: &peak)
    XCTAssertEqual(loss, 0.196_531_534_194_946_3, accuracy: 2e-5)
    XCTAssertEqual(
      encoder.gradientSquaredNorm().squareRoot(), 1.865_097_487_368_964_7, accuracy: 2e-4)
    let torchNorms: [String: Double] = [
      "embeddings.word_embeddings.weight": 0.361_233_926_985_099_1,
      "embeddings.LayerNorm.weight": 0.038_438_355_141_275_19,
      "encoder.layer.0.attention.self.query.weight": 0.070_956_197_187_008_49,
      "encoder.layer.5.output.dense.weight": 0.417_790_119_099_632_43,
    ]
    for (name, expected) in torchNorms {
      let range = try XCTUnwrap(encoder.layout.entry(named: name)).range
      let norm = encoder.gradients[range].reduce(0.0) { $0 + Double($1) * Double($1) }
        .squareRoot()
      XCTAssertEqual(norm, expected, accuracy: expected * 1e-4, name)
    }
  }
}
