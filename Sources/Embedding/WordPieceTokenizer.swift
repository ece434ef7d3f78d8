import Foundation

/// BERT's WordPiece tokenizer, matching Hugging Face's `BertTokenizerFast` id for id.
///
/// The pipeline, one pass over the text's Unicode scalars:
/// 0. **Special tokens** written out in the text (`[UNK]`, `[MASK]`, …) stay whole.
/// 1. **Clean**: drop NUL, U+FFFD and control, format, private-use and surrogate
///    characters (except tab, newline and carriage return); unassigned code points stay.
///    Every whitespace character separates words.
/// 2. **CJK**: each CJK ideograph becomes a word of its own.
/// 3. **Normalise**: strip accents (canonical decomposition, then drop nonspacing
///    marks) and lowercase, for uncased models.
/// 4. **Split punctuation**: every ASCII punctuation character and every Unicode P*
///    character is a word of its own.
/// 5. **WordPiece**: each word becomes its longest vocabulary prefix, then the longest
///    `##`-continuation, and so on; a word longer than 100 characters, or with a part
///    no piece matches, becomes `[UNK]`.
/// 6. `[CLS]` … `[SEP]` around the pieces, truncated to the maximum length (which
///    counts both).
///
/// Steps 1, 3 and 4 classify characters as Hugging Face's tokenizer does, by the
/// categories of an older Unicode version than Swift's (`BertUnicode`, generated from it):
/// a mark or punctuation character added since stays inside its word there.
///
/// ```swift
/// let tokenizer = try WordPieceTokenizer(contentsOf: directory.appending(path: "vocab.txt"))
/// tokenizer.encode("Hello, world!")         // [101, 7592, 1010, 2088, 999, 102]
/// tokenizer.encode(longText, maxLength: 256) // at most 256 ids
/// ```
///
/// Matching uses a byte trie over the vocabulary, so a word costs time linear in its
/// length, and tokenising stops as soon as the maximum length is reached: a 1 MB
/// text is as cheap as its first few hundred words. ASCII takes a table-driven fast
/// path; other scalars are normalised through a table built at initialisation (up to
/// U+2FFF) or, beyond it, on the fly.
///
/// Immutable, so safe to share between threads.
public struct WordPieceTokenizer: Sendable {
  /// How text is normalised and which special tokens frame a sequence.
  public struct Options: Codable, Equatable, Sendable {
    /// Lowercase the text (`do_lower_case`; true for uncased models).
    public var lowercase: Bool = true
    /// Strip accents; `nil` follows `lowercase`, as BERT's tokenizers do.
    public var stripAccents: Bool? = nil
    /// Make each CJK ideograph a word (`tokenize_chinese_chars`).
    public var splitCJKCharacters: Bool = true
    /// Longer words become the unknown token (`max_input_chars_per_word`).
    public var maxCharactersPerWord: Int = 100
    public var unknownToken: String = "[UNK]"
    public var classifierToken: String = "[CLS]"
    public var separatorToken: String = "[SEP]"
    /// Marks a piece that continues a word.
    public var continuationPrefix: String = "##"
    /// Tokens recognised verbatim (case and all) in the input, before normalisation,
    /// as Hugging Face does for added special tokens: "a [MASK] b" has the `[MASK]` id.
    /// Those missing from the vocabulary, and the empty one, are ignored.
    public var specialTokens: [String] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    public init() {}
  }

  /// The tokens, indexed by id.
  public let vocabulary: [String]
  public let options: Options
  public let unknownID: Int
  public let classifierID: Int
  public let separatorID: Int

  private let trie: Trie
  private let normalizer: ScalarNormalizer
  /// The special tokens' UTF-8 bytes and ids, longest first.
  private let specialTokens: [(bytes: [UInt8], id: Int)]
  /// Whether a byte can start a special token.
  private let specialTokenLeads: [Bool]

  /// A tokenizer over `vocabulary` (token *i* has id *i*). `source` names the
  /// vocabulary in errors. Throws ``EmbeddingError/invalidVocabulary(source:reason:)``
  /// when it is empty or lacks one of the special tokens.
  public init(vocabulary: [String], options: Options = Options(), source: String = "<memory>")
    throws
  {
    guard !vocabulary.isEmpty else {
      throw EmbeddingError.invalidVocabulary(source: source, reason: "no tokens")
    }
    self.vocabulary = vocabulary
    self.options = options
    let trie = Trie(vocabulary: vocabulary, continuationPrefix: options.continuationPrefix)
    self.trie = trie
    func special(_ token: String) throws -> Int {
      guard let id = trie.id(of: Array(token.utf8)) else {
        throw EmbeddingError.invalidVocabulary(
          source: source, reason: "special token '\(token)' is missing")
      }
      return id
    }
    unknownID = try special(options.unknownToken)
    classifierID = try special(options.classifierToken)
    separatorID = try special(options.separatorToken)
    // An empty token would match everywhere, taking no byte: the scan would not advance.
    specialTokens = options.specialTokens.filter { !$0.isEmpty }.compactMap { token in
      trie.id(of: Array(token.utf8)).map { (Array(token.utf8), $0) }
    }.sorted { $0.bytes.count > $1.bytes.count }
    specialTokenLeads = (0..<256).map { byte in
      options.specialTokens.contains { $0.utf8.first == UInt8(byte) }
    }
    normalizer = ScalarNormalizer(
      lowercase: options.lowercase, stripAccents: options.stripAccents ?? options.lowercase)
  }

  /// Reads a `vocab.txt` (one token per line, line *i* is id *i*; LF or CRLF line ends).
  public init(contentsOf url: URL, options: Options = Options()) throws {
    let data = try readFile(url)
    guard let text = String(data: data, encoding: .utf8) else {
      throw EmbeddingError.invalidVocabulary(source: url.path, reason: "not UTF-8 text")
    }
    // A String's "\r\n" is one Character, so splitting at "\n" alone would not split it.
    var lines = text.split(
      omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }
    ).map(String.init)
    if lines.last == "" { lines.removeLast() }
    try self.init(vocabulary: lines, options: options, source: url.path)
  }

  /// The id of `token`, if it is in the vocabulary.
  public func id(of token: String) -> Int? {
    trie.id(of: Array(token.utf8))
  }

  /// The tokens for `ids` (an out-of-range id shows as the unknown token).
  public func tokens(_ ids: [Int]) -> [String] {
    ids.map { vocabulary.indices.contains($0) ? vocabulary[$0] : options.unknownToken }
  }

  /// `[CLS]`, the word pieces of `text`, `[SEP]`: at most `maxLength` ids (at least 2).
  public func encode(_ text: String, maxLength: Int = .max) -> [Int] {
    var ids = [classifierID]
    ids.reserveCapacity(min(maxLength, text.utf8.count / 3 + 8))
    appendWordPieces(of: text, limit: max(0, maxLength - 2), to: &ids)
    ids.append(separatorID)
    return ids
  }

  /// The word-piece ids of `text` without special tokens, at most `limit` of them.
  public func wordPieceIDs(_ text: String, limit: Int = .max) -> [Int] {
    var ids: [Int] = []
    appendWordPieces(of: text, limit: limit, to: &ids)
    return ids
  }

  /// Appends at most `limit` word-piece ids of `text` to `ids`.
  private func appendWordPieces(of text: String, limit: Int, to ids: inout [Int]) {
    guard limit > 0 else { return }
    let end = ids.count + limit
    var text = text
    text.withUTF8 { scan($0, until: end, into: &ids) }
    if ids.count > end { ids.removeLast(ids.count - end) }
  }

  /// Appends the pieces of `bytes` (valid UTF-8) until the text ends or `ids` has
  /// reached `end` entries (it may then hold a few more, from the last word).
  private func scan(_ bytes: UnsafeBufferPointer<UInt8>, until end: Int, into ids: inout [Int]) {
    var word = WordBuffer()
    word.bytes.reserveCapacity(64)
    // Emits the word collected so far; false once `end` is reached.
    func flush() -> Bool {
      if !word.bytes.isEmpty {
        wordPieces(of: word, into: &ids)
        word.clear()
      }
      return ids.count < end
    }
    let asciiClass = options.lowercase ? asciiClassUncased : asciiClassCased
    var i = 0
    while i < bytes.count {
      let byte = bytes[i]
      if specialTokenLeads[Int(byte)], let (id, length) = specialToken(in: bytes, at: i) {
        guard flush() else { return }
        ids.append(id)
        guard ids.count < end else { return }
        i += length
        continue
      }
      if byte < 0x80 {
        i += 1
        switch asciiClass[Int(byte)] {
        case .letter(let normalized):
          word.append(normalized)
        case .space:
          guard flush() else { return }
        case .punctuation:
          guard flush() else { return }
          word.append(byte)
          guard flush() else { return }
        case .dropped:
          break
        }
        continue
      }
      let (scalar, length) = decodeScalar(bytes, at: i)
      i += length
      switch ScalarClass(scalar) {
      case .dropped:
        break
      case .space:
        guard flush() else { return }
      case .cjk where options.splitCJKCharacters:
        guard flush() else { return }
        normalizer.forEachNormalized(scalar) { word.append($0) }
        guard flush() else { return }
      case .cjk, .other:
        var belowEnd = true
        normalizer.forEachNormalized(scalar) { normalized in
          guard belowEnd else { return }
          if isPunctuation(normalized) {
            belowEnd = flush()
            word.append(normalized)
            belowEnd = belowEnd && flush()
          } else {
            word.append(normalized)
          }
        }
        guard belowEnd else { return }
      }
    }
    _ = flush()
  }

  /// The special token (such as `[UNK]`) spelled out in `bytes` at `start`, if any.
  private func specialToken(in bytes: UnsafeBufferPointer<UInt8>, at start: Int)
    -> (id: Int, length: Int)?
  {
    for (token, id) in specialTokens where start + token.count <= bytes.count {
      if token.indices.allSatisfy({ token[$0] == bytes[start + $0] }) {
        return (id, token.count)
      }
    }
    return nil
  }

  /// Appends the pieces of one normalised word (or the unknown id).
  private func wordPieces(of word: WordBuffer, into ids: inout [Int]) {
    if word.characterCount > options.maxCharactersPerWord {
      ids.append(unknownID)
      return
    }
    let firstPiece = ids.count
    word.bytes.withUnsafeBufferPointer { bytes in
      var start = 0
      while start < bytes.count {
        guard let (id, length) = trie.longestMatch(in: bytes, from: start, continuation: start > 0)
        else {
          ids.removeLast(ids.count - firstPiece)
          ids.append(unknownID)
          return
        }
        ids.append(id)
        start += length
      }
    }
  }
}

// MARK: - Words

/// The UTF-8 bytes of the word being collected, and its length in scalars.
private struct WordBuffer {
  var bytes: [UInt8] = []
  var characterCount = 0

  mutating func append(_ byte: UInt8) {
    bytes.append(byte)
    characterCount += 1
  }

  mutating func append(_ scalar: Unicode.Scalar) {
    if scalar.value < 0x80 {
      append(UInt8(scalar.value))
      return
    }
    bytes.append(contentsOf: UTF8.encode(scalar)!)
    characterCount += 1
  }

  mutating func clear() {
    bytes.removeAll(keepingCapacity: true)
    characterCount = 0
  }
}

// MARK: - Character classes

/// The scalar whose UTF-8 encoding starts at `bytes[i]` (a lead byte of valid UTF-8),
/// and the encoding's length.
@inline(__always)
private func decodeScalar(_ bytes: UnsafeBufferPointer<UInt8>, at i: Int)
  -> (Unicode.Scalar, Int)
{
  let lead = UInt32(bytes[i])
  func continuation(_ k: Int) -> UInt32 { UInt32(bytes[i + k]) & 0x3F }
  let value: UInt32
  let length: Int
  if lead < 0xE0 {
    value = (lead & 0x1F) << 6 | continuation(1)
    length = 2
  } else if lead < 0xF0 {
    value = (lead & 0x0F) << 12 | continuation(1) << 6 | continuation(2)
    length = 3
  } else {
    value = (lead & 0x07) << 18 | continuation(1) << 12 | continuation(2) << 6 | continuation(3)
    length = 4
  }
  return (Unicode.Scalar(value) ?? "\u{FFFD}", length)
}

private enum ASCIIClass {
  case letter(UInt8)
  case space
  case punctuation
  case dropped
}

/// What each ASCII character does, for an uncased model (lowercasing is the only
/// normalisation ASCII needs, and it is applied only when the tokenizer lowercases:
/// see `asciiClassCased`).
private let asciiClassUncased: [ASCIIClass] = (0..<128).map { classify(UInt8($0), lowercase: true) }
private let asciiClassCased: [ASCIIClass] = (0..<128).map { classify(UInt8($0), lowercase: false) }

private func classify(_ byte: UInt8, lowercase: Bool) -> ASCIIClass {
  switch byte {
  case 0x09, 0x0A, 0x0D, 0x20: return .space
  case 0x00..<0x20, 0x7F: return .dropped
  case 0x21...0x2F, 0x3A...0x40, 0x5B...0x60, 0x7B...0x7E: return .punctuation
  case 0x41...0x5A where lowercase: return .letter(byte + 0x20)
  default: return .letter(byte)
  }
}

/// The class of a non-ASCII scalar before normalisation.
private enum ScalarClass {
  case dropped, space, cjk, other

  init(_ scalar: Unicode.Scalar) {
    if BertUnicode.contains(BertUnicode.dropped, scalar.value) {
      self = .dropped
    } else if scalar.properties.isWhitespace {
      self = .space
    } else if isCJKIdeograph(scalar.value) {
      self = .cjk
    } else {
      self = .other
    }
  }
}

/// The CJK ideograph blocks BERT isolates (as in Hugging Face's tokenizers).
private func isCJKIdeograph(_ value: UInt32) -> Bool {
  switch value {
  case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
    0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
    return true
  default:
    return false
  }
}

/// ASCII punctuation (which includes symbols such as `$`, `+`, `^`) or Unicode P*.
private func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
  if scalar.value < 0x80 {
    if case .punctuation = classify(UInt8(scalar.value), lowercase: false) { return true }
    return false
  }
  return BertUnicode.contains(BertUnicode.punctuation, scalar.value)
}

// MARK: - Normalisation

/// Accent stripping (NFD, then dropping nonspacing marks) and lowercasing of single
/// scalars, in that order, as Hugging Face's BertNormalizer does. Decomposition is per
/// scalar, so it is NFD of the text except for the reordering of combining marks, which
/// stripping removes anyway.
private final class ScalarNormalizer: Sendable {
  /// Scalars below this value are looked up in `table`.
  static let tableLimit: UInt32 = 0x3000

  let lowercase: Bool
  let stripAccents: Bool
  /// For scalar v: `start[v] ..< start[v + 1]` indexes its output in `output`.
  let start: [Int32]
  let output: [Unicode.Scalar]

  init(lowercase: Bool, stripAccents: Bool) {
    self.lowercase = lowercase
    self.stripAccents = stripAccents
    let scalars = (0..<Self.tableLimit).compactMap(Unicode.Scalar.init)
    var decomposed = scalars.map { [$0] }
    if stripAccents {
      // All of them decomposed in one Foundation call rather than one call each (20×
      // faster; loading a model waited for it): U+E000, a starter with no decomposition,
      // separates them, and canonical reordering never crosses a starter.
      let separator: Unicode.Scalar = "\u{E000}"
      var joined = String.UnicodeScalarView()
      for scalar in scalars {
        joined.append(scalar)
        joined.append(separator)
      }
      decomposed = String(joined).decomposedStringWithCanonicalMapping.unicodeScalars
        .split(separator: separator, omittingEmptySubsequences: false).dropLast().map(Array.init)
    }
    var start: [Int32] = [0]
    var output: [Unicode.Scalar] = []
    start.reserveCapacity(Int(Self.tableLimit) + 1)
    var next = 0
    for value in 0..<Self.tableLimit {
      if next < scalars.count, scalars[next].value == value {
        output.append(
          contentsOf: Self.normalize(
            decomposed: decomposed[next], lowercase: lowercase, stripAccents: stripAccents))
        next += 1
      }
      start.append(Int32(output.count))
    }
    self.start = start
    self.output = output
  }

  @inline(__always)
  func forEachNormalized(_ scalar: Unicode.Scalar, _ body: (Unicode.Scalar) -> Void) {
    if scalar.value < Self.tableLimit {
      let value = Int(scalar.value)
      for i in Int(start[value])..<Int(start[value + 1]) { body(output[i]) }
    } else {
      for normalized in Self.normalize(scalar, lowercase: lowercase, stripAccents: stripAccents) {
        body(normalized)
      }
    }
  }

  static func normalize(_ scalar: Unicode.Scalar, lowercase: Bool, stripAccents: Bool)
    -> [Unicode.Scalar]
  {
    let decomposed =
      stripAccents
      ? Array(
        String(String.UnicodeScalarView([scalar])).decomposedStringWithCanonicalMapping
          .unicodeScalars) : [scalar]
    return normalize(decomposed: decomposed, lowercase: lowercase, stripAccents: stripAccents)
  }

  /// `scalars`, the canonical decomposition of one scalar when `stripAccents`, without
  /// nonspacing marks (with `stripAccents`) and lowercased (with `lowercase`).
  private static func normalize(
    decomposed scalars: [Unicode.Scalar], lowercase: Bool, stripAccents: Bool
  ) -> [Unicode.Scalar] {
    var scalars = scalars
    if stripAccents {
      scalars = scalars.filter { !BertUnicode.contains(BertUnicode.nonspacingMarks, $0.value) }
    }
    if lowercase {
      scalars = scalars.flatMap { $0.properties.lowercaseMapping.unicodeScalars }
    }
    return scalars
  }
}

// MARK: - Vocabulary trie

/// The vocabulary as a trie over UTF-8 bytes, flattened into arrays.
///
/// Continuation pieces ("##ing") are found by starting the walk at the node for the
/// prefix "##", so one trie serves both kinds of lookup.
private struct Trie: Sendable {
  /// Token id ending at each node, or -1.
  private var tokenID: [Int32] = []
  /// Each node's children: `edgeStart[n] ..< edgeStart[n + 1]` in the edge arrays,
  /// sorted by byte.
  private var edgeStart: [Int32] = []
  private var edgeByte: [UInt8] = []
  private var edgeTarget: [Int32] = []
  /// The node reached by the continuation prefix, if any token has it.
  private var continuationRoot: Int32 = -1

  init(vocabulary: [String], continuationPrefix: String) {
    // Tokens in byte order (ties by id): each token shares the previous one's path up to
    // their common prefix, and every node's children are created in byte order, as
    // first-child / next-sibling links: no per-node allocation.
    var bytes: [UInt8] = []
    var ranges: [Range<Int>] = []
    ranges.reserveCapacity(vocabulary.count)
    for token in vocabulary {
      let start = bytes.count
      bytes.append(contentsOf: token.utf8)
      ranges.append(start..<bytes.count)
    }
    let sorted = bytes.withUnsafeBufferPointer { all in
      ranges.indices.sorted { a, b in
        let (x, y) = (ranges[a], ranges[b])
        let common = min(x.count, y.count)
        if common > 0 {
          let order = memcmp(
            all.baseAddress! + x.lowerBound, all.baseAddress! + y.lowerBound, common)
          if order != 0 { return order < 0 }
        }
        return x.count != y.count ? x.count < y.count : a < b
      }
    }
    var ids: [Int32] = [-1]
    var nodeByte: [UInt8] = [0]
    var firstChild: [Int32] = [-1]
    var nextSibling: [Int32] = [-1]
    var lastChild: [Int32] = [-1]
    var path: [Int32] = [0]  // the previous token's nodes, root first
    var previous = 0..<0
    for id in sorted {
      let token = ranges[id]
      var common = 0
      while common < min(previous.count, token.count),
        bytes[previous.lowerBound + common] == bytes[token.lowerBound + common]
      {
        common += 1
      }
      path.removeLast(path.count - 1 - common)
      for byte in bytes[(token.lowerBound + common)..<token.upperBound] {
        let parent = Int(path.last!)
        let node = Int32(ids.count)
        ids.append(-1)
        nodeByte.append(byte)
        firstChild.append(-1)
        nextSibling.append(-1)
        lastChild.append(-1)
        if lastChild[parent] < 0 {
          firstChild[parent] = node
        } else {
          nextSibling[Int(lastChild[parent])] = node
        }
        lastChild[parent] = node
        path.append(node)
      }
      ids[Int(path.last!)] = Int32(id)  // A repeated token keeps its last id, as in BERT's loaders.
      previous = token
    }
    // Flatten breadth-first: a node's children become one sorted run of edges.
    var order: [Int32] = [0]
    order.reserveCapacity(ids.count)
    var head = 0
    while head < order.count {
      var child = firstChild[Int(order[head])]
      while child >= 0 {
        order.append(child)
        child = nextSibling[Int(child)]
      }
      head += 1
    }
    var position = [Int32](repeating: 0, count: ids.count)
    for (index, node) in order.enumerated() { position[Int(node)] = Int32(index) }
    tokenID.reserveCapacity(ids.count)
    edgeStart.reserveCapacity(ids.count + 1)
    for node in order {
      tokenID.append(ids[Int(node)])
      edgeStart.append(Int32(edgeByte.count))
      var child = firstChild[Int(node)]
      while child >= 0 {
        edgeByte.append(nodeByte[Int(child)])
        edgeTarget.append(position[Int(child)])
        child = nextSibling[Int(child)]
      }
    }
    edgeStart.append(Int32(edgeByte.count))
    continuationRoot = walk(Array(continuationPrefix.utf8), from: 0) ?? -1
  }

  @inline(__always)
  private func child(of node: Int32, byte: UInt8) -> Int32? {
    var low = Int(edgeStart[Int(node)])
    var high = Int(edgeStart[Int(node) + 1])
    while low < high {
      let middle = (low + high) / 2
      let candidate = edgeByte[middle]
      if candidate == byte { return edgeTarget[middle] }
      if candidate < byte { low = middle + 1 } else { high = middle }
    }
    return nil
  }

  private func walk(_ bytes: [UInt8], from start: Int32) -> Int32? {
    var node = start
    for byte in bytes {
      guard let next = child(of: node, byte: byte) else { return nil }
      node = next
    }
    return node
  }

  func id(of token: [UInt8]) -> Int? {
    guard let node = walk(token, from: 0), tokenID[Int(node)] >= 0 else { return nil }
    return Int(tokenID[Int(node)])
  }

  /// The longest token that `bytes[start...]` begins with: its id and byte length.
  /// `continuation` looks among the "##" pieces instead of the word starts.
  @inline(__always)
  func longestMatch(in bytes: UnsafeBufferPointer<UInt8>, from start: Int, continuation: Bool)
    -> (id: Int, length: Int)?
  {
    var node: Int32 = continuation ? continuationRoot : 0
    guard node >= 0 else { return nil }
    var best: (id: Int, length: Int)? = nil
    var i = start
    while i < bytes.count, let next = child(of: node, byte: bytes[i]) {
      node = next
      i += 1
      let id = tokenID[Int(node)]
      if id >= 0 { best = (Int(id), i - start) }
    }
    return best
  }
}
