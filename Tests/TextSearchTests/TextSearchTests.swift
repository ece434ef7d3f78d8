import Foundation
import XCTest

@testable import TextSearch

/// Postings in an array (the database's are LMDB cursors).
final class ArrayCursor: PostingsCursor {
  let postings: [Posting]
  var index = 0
  private(set) var steps = 0

  init(_ postings: [Posting]) { self.postings = postings }

  var current: Posting? { index < postings.count ? postings[index] : nil }
  func next() {
    index += 1
    steps += 1
  }
  func advance(to target: UInt32) {
    while let posting = current, posting.document < target { index += 1 }
    steps += 1
  }
}

/// A corpus in memory: documents as term lists, and what the index would hold.
struct Corpus {
  let documents: [[String]]
  private let index: [String: [Posting]]

  init(documents: [[String]]) {
    self.documents = documents
    var index: [String: [Posting]] = [:]
    for (row, terms) in documents.enumerated() {
      var counts: [String: UInt32] = [:]
      for term in terms { counts[term, default: 0] += 1 }
      for (term, count) in counts {
        index[term, default: []].append(
          Posting(document: UInt32(row), frequency: count, length: UInt32(terms.count)))
      }
    }
    self.index = index
  }

  var averageLength: Double {
    Double(documents.map(\.count).reduce(0, +)) / Double(documents.count)
  }

  func postings(_ term: String) -> [Posting] { index[term] ?? [] }

  func scoringTerms(_ query: [String], bm25: BM25) -> [ScoringTerm] {
    var counts: [String: Int] = [:]
    for term in query { counts[term, default: 0] += 1 }
    return counts.keys.sorted().compactMap { term in
      let postings = postings(term)
      guard !postings.isEmpty else { return nil }
      return ScoringTerm(
        cursor: ArrayCursor(postings), count: counts[term]!, frequency: postings.count,
        maxFrequency: postings.map(\.frequency).max()!, documents: documents.count, bm25: bm25)
    }
  }

  /// Every document scored straight from the formula: the reference.
  func bruteForce(_ query: [String], k: Int, bm25: BM25, accept: (UInt32) -> Bool = { _ in true })
    -> [ScoredDocument]
  {
    var counts: [String: Int] = [:]
    for term in query { counts[term, default: 0] += 1 }
    let frequencies = Dictionary(uniqueKeysWithValues: counts.keys.map { ($0, postings($0).count) })
    let terms = counts.keys.sorted().filter { frequencies[$0]! > 0 }
    var scored: [ScoredDocument] = []
    for (row, document) in documents.enumerated() where accept(UInt32(row)) {
      var contributions: [Double] = []
      var matched = false
      for term in terms {
        let tf = document.filter { $0 == term }.count
        matched = matched || tf > 0
        let idf = bm25.idf(documents: documents.count, frequency: frequencies[term]!)
        contributions.append(
          Double(counts[term]!) * idf
            * (tf == 0
              ? 0
              : bm25.termScore(
                frequency: UInt32(tf), length: UInt32(document.count),
                averageLength: averageLength)))
      }
      if matched {
        scored.append(ScoredDocument(document: UInt32(row), score: contributions.reduce(0, +)))
      }
    }
    return Array(scored.sorted { $0.ranks(before: $1) }.prefix(k))
  }
}

final class AnalyzerTests: XCTestCase {
  let analyzer = Analyzer.english

  func testLowerCaseStopWordsAndStems() {
    XCTAssertEqual(
      analyzer.terms("The Cats were RUNNING to the gardens."), ["cat", "were", "run", "garden"])
  }

  func testWordsKeepInnerPunctuationOfUAX29() {
    XCTAssertEqual(
      Analyzer.words("error 0x80070005: pi is 3.14, U.S. don't stop; 1,000 items"),
      ["error", "0x80070005", "pi", "is", "3.14", "U.S", "don't", "stop", "1,000", "items"])
  }

  func testPossessiveIsDropped() {
    XCTAssertEqual(analyzer.terms("Ada's machine"), ["ada", "machin"])
  }

  func testCJKIsOneTermPerCharacterAndOtherScriptsAreWords() {
    XCTAssertEqual(analyzer.terms("東京タワー"), ["東", "京", "タ", "ワ", "ー"])
    XCTAssertEqual(analyzer.terms("Москва Столица"), ["москва", "столица"])  // English stems only
    XCTAssertEqual(analyzer.terms("서울 특별시"), ["서울", "특별시"])
  }

  func testNothingLeftIsEmpty() {
    XCTAssertEqual(analyzer.terms(""), [])
    XCTAssertEqual(analyzer.terms("  ... !!! "), [])
    XCTAssertEqual(analyzer.terms("the and of to"), [])
  }

  func testLongWordsAreCutNotDropped() {
    let word = String(repeating: "x", count: 150)
    let words = Analyzer.words(word)
    XCTAssertEqual(words.map(\.count), [64, 64, 22])
  }

  func testAWordOfManyBytesIsCutBetweenScalars() {
    let word = "A" + String(repeating: "\u{301}", count: 300)  // one character, 601 bytes
    let terms = analyzer.terms(word)
    XCTAssertEqual(terms.map(\.utf8.count), [499, 102])
    XCTAssertEqual(terms.joined(), word.lowercased())
    XCTAssertTrue(terms.allSatisfy { $0.utf8.count <= Analyzer.maxWordBytes })
  }

  func testMarksStayWithTheirLetter() {
    // "é" as e + combining acute: one word, not two.
    XCTAssertEqual(Analyzer.words("cafe\u{301} noir"), ["cafe\u{301}", "noir"])
  }
}

final class BM25Tests: XCTestCase {
  /// Three documents, worked by hand: N = 3, avgdl = (2 + 4 + 3) / 3 = 3.
  ///   "apple" is in d0 (tf 1, |d| 2) and d1 (tf 2, |d| 4): df 2, idf = ln(1 + 1.5/2.5) = ln 1.6
  ///   "pear" is in d2 only (tf 1, |d| 3): idf = ln(1 + 2.5/1.5) = ln(8/3)
  /// With k1 = 1.2, b = 0.75:
  ///   d0 apple: 1 / (1 + 1.2 · (0.25 + 0.75 · 2/3)) = 1 / 1.9 ; d0 = ln 1.6 / 1.9 = 0.247370
  ///   d1 apple: 2 / (2 + 1.2 · (0.25 + 0.75 · 4/3)) = 2 / 3.5 ; d1 = ln 1.6 · 4/7 = 0.268574
  ///   d2 pear:  1 / (1 + 1.2 · 1) = 1 / 2.2          ; d2 = ln(8/3) / 2.2 = 0.445831
  func testScoresEqualAHandComputedExample() throws {
    let corpus = Corpus(documents: [
      ["apple", "tree"], ["apple", "apple", "juice", "fresh"], ["pear", "tree", "green"],
    ])
    let bm25 = BM25(k1: 1.2, b: 0.75)
    let hits = try TopK.search(
      corpus.scoringTerms(["apple", "pear"], bm25: bm25), k: 10, bm25: bm25,
      averageLength: corpus.averageLength)
    XCTAssertEqual(hits.map(\.document), [2, 1, 0])
    let expected = [0.445831, 0.268574, 0.247370]
    for (hit, score) in zip(hits, expected) { XCTAssertEqual(hit.score, score, accuracy: 1e-6) }
  }

  func testParametersAreValidated() {
    XCTAssertTrue(BM25.defaults.isValid)
    XCTAssertFalse(BM25(k1: -1, b: 0.5).isValid)
    XCTAssertFalse(BM25(k1: 1, b: 1.5).isValid)
    XCTAssertFalse(BM25(k1: .nan, b: 0.5).isValid)
  }
}

final class TopKTests: XCTestCase {
  /// A Zipf-like random corpus, so that some terms are common and MaxScore prunes.
  func randomCorpus(documents: Int, vocabulary: Int, seed: UInt64) -> Corpus {
    var generator = SplitMix(seed: seed)
    func word() -> String {
      let u = Double(generator.next() % 1_000_000) / 1_000_000
      return "w\(Int(pow(Double(vocabulary), u)) - 1)"
    }
    return Corpus(
      documents: (0..<documents).map { _ in
        (0..<(3 + Int(generator.next() % 40))).map { _ in word() }
      })
  }

  func testMaxScoreReturnsExactlyTheExhaustiveTopK() throws {
    let corpus = randomCorpus(documents: 2_000, vocabulary: 500, seed: 7)
    var generator = SplitMix(seed: 11)
    for bm25 in [BM25.defaults, BM25(k1: 1.2, b: 0.75), BM25(k1: 2, b: 0)] {
      for _ in 0..<25 {
        let query = (0..<(1 + Int(generator.next() % 8))).map { _ in
          "w\(Int(generator.next() % 60))"
        }
        let all = corpus.bruteForce(query, k: corpus.documents.count, bm25: bm25)
        for k in [1, 10, 100] {
          let expected = Array(all.prefix(k))
          let pruned = try TopK.search(
            corpus.scoringTerms(query, bm25: bm25), k: k, bm25: bm25,
            averageLength: corpus.averageLength)
          let exhaustive = try TopK.search(
            corpus.scoringTerms(query, bm25: bm25), k: k, bm25: bm25,
            averageLength: corpus.averageLength, exhaustive: true)
          XCTAssertEqual(pruned.map(\.document), expected.map(\.document), "\(query) k \(k)")
          XCTAssertEqual(exhaustive, pruned, "\(query) k \(k)")
          for (a, b) in zip(pruned, expected) { XCTAssertEqual(a.score, b.score, accuracy: 1e-12) }
        }
      }
    }
  }

  func testMaxScoreSkipsPostingsOfCommonTerms() throws {
    let corpus = randomCorpus(documents: 5_000, vocabulary: 2_000, seed: 3)
    let query = ["w0", "w1", "w2", "w1500", "w1700"]
    let bm25 = BM25.defaults
    let terms = corpus.scoringTerms(query, bm25: bm25)
    _ = try TopK.search(terms, k: 10, bm25: bm25, averageLength: corpus.averageLength)
    let total = terms.map { ($0.cursor as! ArrayCursor).postings.count }.reduce(0, +)
    let walked = terms.map { ($0.cursor as! ArrayCursor).steps }.reduce(0, +)
    XCTAssertLessThan(walked, total / 2, "walked \(walked) of \(total) postings")
  }

  func testFilterAppliesBeforeRanking() throws {
    let corpus = randomCorpus(documents: 1_000, vocabulary: 200, seed: 5)
    let bm25 = BM25.defaults
    let accept: (UInt32) -> Bool = { $0 % 3 == 0 }
    for query in [["w1", "w7"], ["w0"], ["w3", "w4", "w5", "w150"]] {
      let hits = try TopK.search(
        corpus.scoringTerms(query, bm25: bm25), k: 20, bm25: bm25,
        averageLength: corpus.averageLength, accept: accept)
      XCTAssertEqual(
        hits.map(\.document),
        corpus.bruteForce(query, k: 20, bm25: bm25, accept: accept).map(\.document))
    }
  }

  func testNoTermsNoHits() throws {
    XCTAssertEqual(try TopK.search([], k: 10, bm25: .defaults, averageLength: 1), [])
  }
}

final class FusionTests: XCTestCase {
  let dense = [
    ScoredDocument(document: 1, score: 0.9), ScoredDocument(document: 2, score: 0.8),
    ScoredDocument(document: 3, score: 0.5),
  ]
  let keyword = [ScoredDocument(document: 3, score: 12), ScoredDocument(document: 4, score: 6)]

  func testReciprocalRankFusionOfKnownLists() {
    let fused = Fusion.reciprocalRank.fuse(dense: dense, keyword: keyword)
    // 3: 1/63 + 1/61; 1: 1/61; 2: 1/62 = 4: 1/62 (tie → lower number first).
    XCTAssertEqual(fused.map(\.document), [3, 1, 2, 4])
    XCTAssertEqual(fused[0].score, 1.0 / 63 + 1.0 / 61, accuracy: 1e-12)
    XCTAssertEqual(fused[2].score, 1.0 / 62, accuracy: 1e-12)
  }

  func testConvexCombinationOfKnownLists() {
    // Dense normalised: 1 → 1, 2 → 0.75, 3 → 0; keyword: 3 → 1, 4 → 0.
    let fused = Fusion.convex(alpha: 0.3).fuse(dense: dense, keyword: keyword)
    XCTAssertEqual(fused.map(\.document), [3, 1, 2, 4])
    assertClose(fused.map(\.score), [0.7, 0.3, 0.3 * 0.75, 0])
    XCTAssertEqual(
      Fusion.convex(alpha: 1).fuse(dense: dense, keyword: keyword).prefix(3).map(\.document),
      [1, 2, 3])
  }

  func testEmptyListsFuseToTheOther() {
    XCTAssertEqual(Fusion.reciprocalRank.fuse(dense: [], keyword: keyword).map(\.document), [3, 4])
    XCTAssertEqual(
      Fusion.convex(alpha: 0.5).fuse(dense: dense, keyword: []).map(\.document), [1, 2, 3])
  }
}

func assertClose(
  _ a: [Double], _ b: [Double], file: StaticString = #filePath, line: UInt = #line
) {
  XCTAssertEqual(a.count, b.count, file: file, line: line)
  for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-12, file: file, line: line) }
}

/// A small deterministic generator (tests must not depend on the system's randomness).
struct SplitMix {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// The byte-level ASCII path of the analyzer gives exactly the Unicode path's terms.
final class AnalyzerFastPathTests: XCTestCase {
  let analyzer = Analyzer.english
  /// Shared by every text of a test, as by every document of a write transaction.
  let vocabulary = Vocabulary(analyzer: .english)

  func testASCIIFastPathEqualsTheUnicodePathOnRandomText() {
    // The characters the word rules treat specially, and runs longer than a word may be.
    let alphabet =
      Array("aAbZz09_'.,- \n\t!?()\"/:;Ss")
      + ["The", "don't", "U.S.", "3.14", "1,000"]
      .flatMap { Array($0) }
    var state: UInt64 = 42
    func next(_ bound: Int) -> Int {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Int((state >> 33) % UInt64(bound))
    }
    for _ in 0..<2_000 {
      var text = String((0..<next(120)).map { _ in alphabet[next(alphabet.count)] })
      if next(10) == 0 { text += String(repeating: "x", count: 60 + next(80)) + "'s." }
      XCTAssertEqual(
        analyzer.terms(text, asciiFastPath: true), analyzer.terms(text, asciiFastPath: false),
        text)
      assertCountsMatchTerms(text)
    }
  }

  /// `Vocabulary.count` (which counts ASCII text on its bytes) is the Unicode path's
  /// `terms` counted, with a new vocabulary and with one that saw the texts before.
  func assertCountsMatchTerms(
    _ text: String, file: StaticString = #filePath, line: UInt = #line
  ) {
    let terms = analyzer.terms(text, asciiFastPath: false)
    let expected = terms.reduce(into: [String: UInt32]()) { $0[$1, default: 0] += 1 }
    for vocabulary in [Vocabulary(analyzer: analyzer), vocabulary] {
      let (counts, length) = vocabulary.count(text)
      XCTAssertEqual(length, terms.count, text, file: file, line: line)
      XCTAssertEqual(Set(counts.map(\.term)).count, counts.count, text, file: file, line: line)
      XCTAssertEqual(
        Dictionary(uniqueKeysWithValues: counts.map { (vocabulary.terms[$0.term], $0.count) }),
        expected, text, file: file, line: line)
    }
  }

  func testVocabularyNumbersTermsAndForgetsOnRequest() {
    let vocabulary = Vocabulary(analyzer: analyzer)
    let (counts, length) = vocabulary.count("The cats, the CAT; cat's running")
    XCTAssertEqual(length, 4)
    XCTAssertEqual(counts.map { vocabulary.terms[$0.term] }, ["cat", "run"])
    XCTAssertEqual(counts.map(\.count), [3, 1])
    // Past its first table size (many distinct words), and a word seen before keeps its id.
    let many = (0..<5_000).map { "w\($0)x" }.joined(separator: " ")
    XCTAssertEqual(vocabulary.count(many + " cat").counts.count, 5_001)
    XCTAssertEqual(vocabulary.count("cat").counts, [Vocabulary.TermCount(term: 0, count: 1)])
    XCTAssertGreaterThan(vocabulary.wordCount, 5_000)
    vocabulary.removeAll()
    XCTAssertEqual(vocabulary.wordCount, 0)
    XCTAssertEqual(
      vocabulary.count("running cat").counts.map { vocabulary.terms[$0.term] }, ["run", "cat"])
    assertCountsMatchTerms(many)
  }

  func testASCIIFastPathEqualsTheUnicodePathOnRealText() throws {
    // The project's own documentation: English prose, code, numbers, and some non-ASCII
    // lines (arrows, accents), which take the Unicode path whole.
    let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../docs").standardized
    let files = try FileManager.default.contentsOfDirectory(atPath: docs.path)
      .filter { $0.hasSuffix(".md") }
    XCTAssertFalse(files.isEmpty)
    var ascii = 0
    for file in files {
      let text = try String(contentsOf: docs.appendingPathComponent(file), encoding: .utf8)
      for line in text.split(separator: "\n") {
        let line = String(line)
        if line.utf8.allSatisfy({ $0 < 0x80 }) { ascii += 1 }
        XCTAssertEqual(
          analyzer.terms(line, asciiFastPath: true), analyzer.terms(line, asciiFastPath: false),
          line)
        assertCountsMatchTerms(line)
      }
    }
    XCTAssertGreaterThan(ascii, 1_000)
  }

  /// The ASCII scan classifies 64 bytes at a time: words and joining marks on either
  /// side of a 64-byte boundary, and a text ending on one, give the same terms.
  func testWordsAcrossThe64ByteBoundaries() {
    let words = "U.S. don't 3.14 1,000 x'y a.b. 7.x snake_case THE End's"
    for offset in 40..<140 {
      let text = String(repeating: "-", count: offset) + words
      XCTAssertEqual(
        analyzer.terms(text, asciiFastPath: true), analyzer.terms(text, asciiFastPath: false),
        text)
      assertCountsMatchTerms(text)
      assertCountsMatchTerms(String(text.prefix(64)))
      assertCountsMatchTerms(String(text.prefix(128)))
    }
  }

  func testNonASCIITextFallsBackToTheUnicodePath() {
    XCTAssertEqual(analyzer.terms("Café CAFÉ naïve"), ["café", "café", "naïv"])
    XCTAssertEqual(analyzer.terms("Tokyo 東京"), ["tokyo", "東", "京"])
    XCTAssertEqual(analyzer.terms("RUNNING cats, don't"), ["run", "cat", "don't"])
    assertCountsMatchTerms("Café café CAFÉ 東京 東 cats cat")
    assertCountsMatchTerms("cat e" + String(repeating: "\u{301}", count: 700) + " cat")
  }
}
