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

  /// Characters whose class differs between the Unicode version Hugging Face's tokenizer
  /// uses and Swift's, each against the ids `BertTokenizerFast` gives (tokenizers 0.23.3):
  /// an unassigned code point stays in its word (and an unassigned one in the CJK
  /// compatibility block is a word of its own), and so do a format character (U+0890), a
  /// punctuation character (U+2E43) and a nonspacing mark (U+07FD) that Unicode added
  /// later; U+166D, punctuation then and a symbol now, splits; a tag character is dropped.
  func testUnicodeClassesAreHuggingFaces() throws {
    let encoder = try Fixtures.encoder.get()
    let cases: [(String, [Int])] = [
      ("vector\u{0378}search", [101, 100, 102]),
      ("vector\u{2E43}search", [101, 100, 102]),
      ("café e\u{07FD}", [101, 7668, 100, 102]),
      ("vector\u{0890}search", [101, 100, 102]),
      ("go \u{FAEA} go", [101, 2175, 100, 2175, 102]),
      ("vector\u{166D}search", [101, 9207, 100, 3945, 102]),
      ("vector\u{E0012}search", [101, 100, 102]),
      ("vector\u{E0041}search", [101, 19019, 14644, 2818, 102]),
    ]
    for (text, ids) in cases {
      XCTAssertEqual(
        encoder.tokenize(text), ids,
        text.unicodeScalars.map { "\($0.value)" }.joined(separator: " "))
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

  /// A `tokenizer.json` may list an empty added token, and a vocabulary may hold the empty
  /// string: matched verbatim, it would take no byte and the scan would never end.
  func testAnEmptySpecialTokenIsIgnored() throws {
    var options = WordPieceTokenizer.Options()
    options.specialTokens = ["", "[UNK]", "[CLS]"]
    let tokenizer = try WordPieceTokenizer(
      vocabulary: ["", "[UNK]", "[CLS]", "[SEP]", "a", "["], options: options)
    XCTAssertEqual(
      tokenizer.tokens(tokenizer.wordPieceIDs("a [x [CLS]")), ["a", "[", "[UNK]", "[CLS]"])
    XCTAssertEqual(tokenizer.encode("[", maxLength: 8).count, 3)
  }

  func testVocabularyWithoutSpecialTokensIsRejected() {
    XCTAssertThrowsError(try WordPieceTokenizer(vocabulary: ["a", "b"], source: "v.txt")) {
      XCTAssertEqual(
        "\($0)", "v.txt: invalid vocabulary: special token '[UNK]' is missing")
    }
    XCTAssertThrowsError(try WordPieceTokenizer(vocabulary: [], source: "v.txt"))
  }
}
