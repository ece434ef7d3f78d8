import Foundation

/// libFuzzer entry: a WordPiece vocabulary and a text. The first byte picks the
/// options; up to the first NUL byte the input is the vocabulary (one token a line),
/// the rest the text (with no NUL, all of it is text for a small fixed vocabulary).
/// Every id the tokenizer returns must be in the vocabulary.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let bytes = UnsafeBufferPointer(start: data, count: size)
  var options = WordPieceTokenizer.Options()
  options.lowercase = bytes[0] & 1 != 0
  options.stripAccents = bytes[0] & 6 == 0 ? nil : bytes[0] & 2 != 0
  options.splitCJKCharacters = bytes[0] & 8 != 0
  let rest = bytes.dropFirst()
  var vocabulary = fixedVocabulary
  var text = rest[...]
  if let separator = rest.firstIndex(of: 0) {
    vocabulary = String(decoding: rest[..<separator], as: UTF8.self)
      .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    text = rest[(separator + 1)...]
  }
  guard let tokenizer = try? WordPieceTokenizer(vocabulary: vocabulary, options: options) else {
    return 0
  }
  let string = String(decoding: text, as: UTF8.self)
  for ids in [tokenizer.encode(string, maxLength: 64), tokenizer.wordPieceIDs(string)] {
    precondition(ids.allSatisfy { vocabulary.indices.contains($0) }, "id outside the vocabulary")
  }
  return 0
}

private let fixedVocabulary = [
  "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##aff", "##able", "hnsw", "graph",
  "##s", "é", "中", "a", "##b", ",", ".", "!",
]
