import Foundation

/// libFuzzer entry: a WordPiece vocabulary and a text. The first byte picks the
/// options (bits 0-3) and whether the input brings its own vocabulary (bit 7): then up
/// to the first NUL byte is the vocabulary (one token a line) and the rest the text;
/// otherwise all of it is text for a small fixed vocabulary. With its own vocabulary, the
/// options a `tokenizer.json` sets may come from it too: the unknown, classifier and
/// separator tokens and the verbatim ones from its first lines (bit 4), the continuation
/// prefix from its fourth (bit 5), the word-length limit from the text's first byte, less
/// 8 (bit 6). Every id the tokenizer returns must be in the vocabulary.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let bytes = UnsafeBufferPointer(start: data, count: size)
  let choice = bytes[0] & 0x0F
  var text = bytes.dropFirst()
  let tokenizer: WordPieceTokenizer
  if bytes[0] & 0x80 != 0, let separator = text.firstIndex(of: 0) {
    let vocabulary = String(decoding: text[..<separator], as: UTF8.self)
      .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    text = text[(separator + 1)...]
    // Building one costs tens of milliseconds (its normalisation table), so most inputs
    // take the cached tokenizers below.
    var options = options(choice)
    if bytes[0] & 0x10 != 0, vocabulary.count >= 3 {
      (options.unknownToken, options.classifierToken, options.separatorToken) = (
        vocabulary[0], vocabulary[1], vocabulary[2]
      )
      options.specialTokens = Array(vocabulary.prefix(5))
    }
    if bytes[0] & 0x20 != 0, vocabulary.count >= 4 { options.continuationPrefix = vocabulary[3] }
    if bytes[0] & 0x40 != 0, let first = text.first {
      options.maxCharactersPerWord = Int(first) - 8
      text = text.dropFirst()
    }
    guard let built = try? WordPieceTokenizer(vocabulary: vocabulary, options: options)
    else { return 0 }
    tokenizer = built
  } else {
    tokenizer = fixedTokenizers[Int(choice)]
  }
  let string = String(decoding: text, as: UTF8.self)
  for ids in [tokenizer.encode(string, maxLength: 64), tokenizer.wordPieceIDs(string)] {
    precondition(
      ids.allSatisfy { tokenizer.vocabulary.indices.contains($0) }, "id outside the vocabulary")
  }
  return 0
}

private func options(_ choice: UInt8) -> WordPieceTokenizer.Options {
  var options = WordPieceTokenizer.Options()
  options.lowercase = choice & 1 != 0
  options.stripAccents = choice & 6 == 0 ? nil : choice & 2 != 0
  options.splitCJKCharacters = choice & 8 != 0
  return options
}

private let fixedTokenizers = (0..<16).map { choice in
  try! WordPieceTokenizer(
    vocabulary: [
      "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##aff", "##able", "hnsw",
      "graph", "##s", "é", "中", "a", "##b", ",", ".", "!",
    ], options: options(UInt8(choice)))
}
