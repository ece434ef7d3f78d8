import Embedding
import Foundation
import XCTest

final class WordPieceTokenizerTests: XCTestCase {
  /// A tokenizer over a tiny vocabulary, for rules the golden file does not isolate.
  private func tinyTokenizer(_ options: WordPieceTokenizer.Options = .init()) throws
    -> WordPieceTokenizer
  {
    let vocabulary = [
      "[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "aff", "!", ",", "a", "##b",
      "é", "cafe", "中", "$",
    ]
    return try WordPieceTokenizer(vocabulary: vocabulary, options: options)
  }

  func testGoldenTokenSequencesMatchExactly() throws {
    let encoder = try Fixtures.encoder.get()
    let items = try Fixtures.golden("minilm_reference_tokens.json")
    XCTAssertEqual(items.count, 22)
    for item in items {
      XCTAssertEqual(encoder.tokenize(item.text), item.inputIDs, "item \(item.id): \(item.text)")
    }
  }

  func testGreedyLongestMatchWithContinuationPieces() throws {
    let tokenizer = try tinyTokenizer()
    XCTAssertEqual(
      tokenizer.tokens(tokenizer.wordPieceIDs("unaffable")), ["un", "##aff", "##able"])
    // "b" alone has no word-start piece: the whole word is unknown, not just a piece.
    XCTAssertEqual(tokenizer.tokens(tokenizer.wordPieceIDs("ab b")), ["a", "##b", "[UNK]"])
    XCTAssertEqual(tokenizer.tokens(tokenizer.wordPieceIDs("unx")), ["[UNK]"])
  }

  func testNormalisationAndPunctuation() throws {
    let tokenizer = try tinyTokenizer()
    // Lowercased, accents stripped, punctuation (ASCII symbols included) split off,
    // control characters dropped, CJK ideographs isolated.
    XCTAssertEqual(
      tokenizer.tokens(tokenizer.wordPieceIDs("CAFÉ!un\u{0007}aff,$中A")),
      ["cafe", "!", "un", "##aff", ",", "$", "中", "a"])
    var cased = WordPieceTokenizer.Options()
    cased.lowercase = false
    let casedTokenizer = try tinyTokenizer(cased)
    XCTAssertEqual(casedTokenizer.tokens(casedTokenizer.wordPieceIDs("é A")), ["é", "[UNK]"])
  }

  func testWordsOverTheCharacterLimitBecomeUnknown() throws {
    let tokenizer = try tinyTokenizer()
    let word = "a" + String(repeating: "b", count: 99)  // 100 characters: still split
    XCTAssertEqual(tokenizer.wordPieceIDs(word).count, 100)
    XCTAssertEqual(tokenizer.tokens(tokenizer.wordPieceIDs(word + "b")), ["[UNK]"])
  }

  func testEmptyTextIsClassifierAndSeparator() throws {
    let tokenizer = try tinyTokenizer()
    XCTAssertEqual(tokenizer.tokens(tokenizer.encode("")), ["[CLS]", "[SEP]"])
    XCTAssertEqual(tokenizer.tokens(tokenizer.encode(" \t\n\u{0}")), ["[CLS]", "[SEP]"])
  }

  func testTruncationCountsSpecialTokens() throws {
    let tokenizer = try tinyTokenizer()
    let ids = tokenizer.encode("unaffable unaffable", maxLength: 4)
    XCTAssertEqual(tokenizer.tokens(ids), ["[CLS]", "un", "##aff", "[SEP]"])
  }

  func testOneMegabyteTextIsTruncatedQuickly() throws {
    let encoder = try Fixtures.encoder.get()
    let sentence = "Vector databases answer nearest-neighbour queries over embeddings. "
    let repetitions = 1_000_000 / sentence.utf8.count + 1
    let text = String(repeating: sentence, count: repetitions)
    XCTAssertGreaterThan(text.utf8.count, 1_000_000)
    let ids = encoder.tokenize(text)
    XCTAssertEqual(ids.count, encoder.maxSequenceLength)
    XCTAssertEqual(ids.first, encoder.tokenizer.classifierID)
    XCTAssertEqual(ids.last, encoder.tokenizer.separatorID)
    // Without a limit the whole megabyte is tokenised, in time linear in its length.
    let pieces = encoder.tokenizer.wordPieceIDs(text)
    XCTAssertEqual(pieces.count, encoder.tokenizer.wordPieceIDs(sentence).count * repetitions)
  }

  func testVocabularyFileWithCRLFLineEndsReadsAsWithLF() throws {
    let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able"]
    let directory = FileManager.default.temporaryDirectory.appending(path: UUID().uuidString)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    for (name, end) in [("lf.txt", "\n"), ("crlf.txt", "\r\n")] {
      let file = directory.appending(path: name)
      try Data((tokens.joined(separator: end) + end).utf8).write(to: file)
      let tokenizer = try WordPieceTokenizer(contentsOf: file)
      XCTAssertEqual(tokenizer.vocabulary, tokens, name)
      XCTAssertEqual(
        tokenizer.tokens(tokenizer.wordPieceIDs("unaffable")), ["un", "##aff", "##able"])
    }
  }

  func testVocabularyWithoutSpecialTokensIsRejected() {
    XCTAssertThrowsError(try WordPieceTokenizer(vocabulary: ["a", "b"], source: "v.txt")) {
      XCTAssertEqual(
        "\($0)", "v.txt: invalid vocabulary: special token '[UNK]' is missing")
    }
    XCTAssertThrowsError(try WordPieceTokenizer(vocabulary: [], source: "v.txt"))
  }
}
