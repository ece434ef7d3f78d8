import Tensor
import XCTest

@testable import Training

/// Hand-computed cases for the evaluator's formulas (see docs/evaluation.md).
final class RetrievalMetricsTests: XCTestCase {
  func hits(_ pairs: [(String, Double)]) -> [ScoredHit] {
    pairs.map { ScoredHit(id: $0.0, score: $0.1) }
  }

  func testTiesAreBrokenByAscendingIDWhateverTheInputOrder() {
    let given = hits([("d3", 0.9), ("d2", 0.8), ("d10", 0.8), ("d1", 0.8), ("d4", 0.5)])
    // Python compares strings by code point: "d1" < "d10" < "d2".
    XCTAssertEqual(RetrievalMetrics.rank(given), ["d3", "d1", "d10", "d2", "d4"])
  }

  func testSeveralRelevantDocumentsAndATie() throws {
    // Ranked d3, d1, d2, d4 (d1 wins the tie with d2); relevant d1 (rank 2) and d4 (rank 4).
    let ranked = RetrievalMetrics.rank(hits([("d3", 0.9), ("d2", 0.8), ("d1", 0.8), ("d4", 0.5)]))
    let m = try XCTUnwrap(RetrievalMetrics.query(ranked: ranked, judgements: ["d1": 1, "d4": 1]))
    XCTAssertEqual(m["accuracy@1"], 0)
    XCTAssertEqual(m["accuracy@3"], 1)
    XCTAssertEqual(m["precision@1"], 0)
    XCTAssertEqual(m["precision@3"]!, 1.0 / 3, accuracy: 1e-12)
    XCTAssertEqual(m["precision@5"]!, 2.0 / 5, accuracy: 1e-12)
    XCTAssertEqual(m["precision@10"]!, 2.0 / 10, accuracy: 1e-12)
    XCTAssertEqual(m["recall@1"], 0)
    XCTAssertEqual(m["recall@3"], 0.5)
    XCTAssertEqual(m["recall@5"], 1)
    XCTAssertEqual(m["mrr@10"], 0.5)
    // (1/log2 3 + 1/log2 5) / (1 + 1/log2 3)
    XCTAssertEqual(m["ndcg@10"]!, 0.650_920_929_807_132_6, accuracy: 1e-12)
    // (1/2 + 2/4) / min(100, 2)
    XCTAssertEqual(m["map@100"]!, 0.5, accuracy: 1e-12)
  }

  func testFewerResultsThanK() throws {
    let m = try XCTUnwrap(
      RetrievalMetrics.query(ranked: ["d1"], judgements: ["d1": 1, "d5": 1, "d6": 1]))
    XCTAssertEqual(m["precision@10"]!, 0.1, accuracy: 1e-12)  // divides by k, not by hits
    XCTAssertEqual(m["recall@10"]!, 1.0 / 3, accuracy: 1e-12)
    XCTAssertEqual(m["mrr@10"], 1)
    // 1 / (1 + 1/log2 3 + 1/2)
    XCTAssertEqual(m["ndcg@10"]!, 0.469_278_726_022_756_44, accuracy: 1e-12)
    XCTAssertEqual(m["map@100"]!, 1.0 / 3, accuracy: 1e-12)
  }

  func testRelevantOnlyBeyondTheCutoffScoresZeroAtThatCutoff() throws {
    let ranked = (1...12).map { "x\($0)" }
    let m = try XCTUnwrap(RetrievalMetrics.query(ranked: ranked, judgements: ["x11": 1]))
    XCTAssertEqual(m["mrr@10"], 0)
    XCTAssertEqual(m["ndcg@10"], 0)
    XCTAssertEqual(m["accuracy@10"], 0)
    XCTAssertEqual(m["recall@100"], 1)
    XCTAssertEqual(m["map@100"]!, 1.0 / 11, accuracy: 1e-12)
  }

  func testQueriesWithoutRelevantDocumentsAreSkippedAndMissingResultsScoreZero() {
    let evaluation = RetrievalMetrics.evaluate(
      results: [
        "q1": hits([("d1", 0.9), ("d2", 0.1)]),
        "q2": hits([("d1", 0.5)]),  // judged only "not relevant" (grade 0): skipped
      ],
      qrels: ["q1": ["d1": 1], "q2": ["d1": 0], "q3": ["d9": 1]])  // q3 retrieved nothing
    XCTAssertEqual(evaluation.skippedQueries, ["q2"])
    XCTAssertEqual(evaluation.queries, 2)
    XCTAssertEqual(evaluation.perQuery["q3"]?["ndcg@10"], 0)
    XCTAssertEqual(evaluation.means["ndcg@10"], 0.5)  // (1 + 0) / 2
    XCTAssertEqual(evaluation.means["mrr@10"], 0.5)
    XCTAssertEqual(evaluation.means["recall@1"], 0.5)
  }

  func testGradedRelevanceIsAnOption() throws {
    let judgements = ["a": 1, "b": 2]
    let binary = try XCTUnwrap(RetrievalMetrics.query(ranked: ["a", "b"], judgements: judgements))
    XCTAssertEqual(binary["ndcg@10"]!, 1, accuracy: 1e-12)  // the evaluator ignores grades
    let graded = try XCTUnwrap(
      RetrievalMetrics.query(ranked: ["a", "b"], judgements: judgements, gain: .graded))
    // (1 + 2/log2 3) / (2 + 1/log2 3)
    XCTAssertEqual(graded["ndcg@10"]!, 0.859_718_699_852_197_2, accuracy: 1e-12)
    XCTAssertEqual(graded["recall@10"], binary["recall@10"])  // only nDCG uses grades
  }

  func testCutoffsAreConfigurable() throws {
    var cutoffs = MetricCutoffs()
    cutoffs.ndcg = [1, 3]
    cutoffs.accuracy = []
    let m = try XCTUnwrap(
      RetrievalMetrics.query(ranked: ["b", "a"], judgements: ["a": 1], cutoffs: cutoffs))
    XCTAssertEqual(m["ndcg@1"], 0)
    XCTAssertEqual(m["ndcg@3"]!, 1 / log2(3.0), accuracy: 1e-12)
    XCTAssertNil(m["accuracy@1"])
    XCTAssertEqual(cutoffs.deepest, 100)
  }
}

final class PairedBootstrapTests: XCTestCase {
  func testAClearImprovementPassesAndNoiseDoesNot() {
    var random = Xoshiro256(seed: 1)
    let current = (0..<200).map { _ in Double(random.nextUnitFloat()) }
    let better = current.map { min(1, $0 + 0.05 + 0.02 * (Double(random.nextUnitFloat()) - 0.5)) }
    let test = PairedBootstrap(resamples: 2000, seed: 7)
    let verdict = test.compare(current: current, candidate: better)
    XCTAssertTrue(verdict.improves, verdict.reason)
    XCTAssertLessThan(verdict.lower, verdict.meanDelta)
    XCTAssertGreaterThan(verdict.upper, verdict.meanDelta)

    // Candidate = current with random ± swings: mean near 0, interval straddles 0.
    let noisy = current.map { $0 + 0.3 * (Double(random.nextUnitFloat()) - 0.5) }
    let noise = test.compare(current: current, candidate: noisy)
    XCTAssertFalse(noise.improves, noise.reason)
    XCTAssertLessThan(noise.lower, 0)

    let worse = test.compare(current: better, candidate: current)
    XCTAssertFalse(worse.improves)
    XCTAssertLessThan(worse.upper, 0)
  }

  func testSeededAndIdenticalModelsDoNotImprove() {
    let scores = [0.1, 0.5, 0.9, 0.3]
    let test = PairedBootstrap(resamples: 500, seed: 3)
    XCTAssertEqual(
      test.compare(current: scores, candidate: scores.map { $0 + 0.01 }),
      test.compare(current: scores, candidate: scores.map { $0 + 0.01 }))
    let same = test.compare(current: scores, candidate: scores)
    XCTAssertFalse(same.improves)
    XCTAssertEqual(same.meanDelta, 0)
    XCTAssertTrue(same.reason.contains("over 4 queries"), same.reason)
  }
}
