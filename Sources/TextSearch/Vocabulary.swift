import Foundation

/// The terms of one write's documents, numbered: each distinct lower-cased word is
/// checked against the stop words and stemmed once, and its term given a small integer
/// id, so that counting a document's terms costs one hash-table probe per word and no
/// string.
///
///     let vocabulary = Vocabulary(analyzer: .english)
///     let (counts, length) = vocabulary.count("The cats, the cat.")
///     // counts: [(term: 0, count: 2)], vocabulary.terms[0] == "cat", length 2
///
/// ASCII text (most of English) is scanned on its bytes; other text takes the analyzer's
/// Unicode path, word by word, into the same table. Either gives the terms of
/// `Analyzer.terms` (the tests compare them). Not thread-safe (nor is the C stemmer):
/// one per thread of work, such as a write transaction.
public final class Vocabulary {
  /// One term's count in a document.
  public struct TermCount: Equatable, Sendable {
    public var term: Int
    public var count: UInt32
  }

  public var analyzer: Analyzer { table.analyzer }
  /// The terms by id, in order of first occurrence.
  public var terms: [String] { table.terms }
  /// The number of distinct words seen (bounded memory: `removeAll` when large).
  public var wordCount: Int { table.wordCount }

  // The state is a struct, counted in one mutating call per text: the hot loop then
  // touches no class property (each access of one is checked for exclusivity at run
  // time, which cost more than the counting itself).
  private var table: Table

  public init(analyzer: Analyzer) { table = Table(analyzer: analyzer) }

  /// Forgets every word and term: ids given before mean nothing after.
  public func removeAll() { table = Table(analyzer: table.analyzer) }

  /// Each term's count in `text`, in order of first occurrence, and the number of terms
  /// (stop words left out): what indexing a document needs.
  public func count(_ text: String) -> (counts: [TermCount], length: Int) {
    table.count(text)
  }
}

private struct Table {
  let analyzer: Analyzer
  private(set) var terms: [String] = []
  private var termIDs: [String: Int] = [:]
  private let stemmer = Stemmer()

  /// A word seen, lower-cased.
  private struct Word {
    var key: Key
    /// Where its bytes are in `bytes`.
    var start: Int32
    var count: Int32
    /// Its term's id; −1: a stop word.
    var term: Int32
  }

  /// What a lookup compares first: a word of at most 8 bytes is equal to another with
  /// the same count and prefix (no memory compare).
  private struct Key: Equatable {
    var hash: UInt64
    /// The first 8 bytes, little-endian, zero past the word's end.
    var prefix: UInt64
  }

  /// The words seen, and their bytes one after another.
  private var words: [Word] = []
  private var bytes: [UInt8] = []
  /// Index into the words per slot; −1: empty. A power of two, at most half full.
  private var slots = [Int32](repeating: -1, count: 1024)

  /// The document being counted: its count per term id (0 for the others) and the ids
  /// it has, in order of first occurrence.
  private var counts: [UInt32] = []
  private var touched: [Int] = []
  /// The scanner of ASCII texts (its buffers are reused): each word it gives is
  /// followed by 8 readable bytes, as `Table.key(_:padded: true)` needs.
  private var scanner = ASCIIWords()

  init(analyzer: Analyzer) { self.analyzer = analyzer }

  var wordCount: Int { words.count }

  mutating func count(_ text: String) -> (counts: [Vocabulary.TermCount], length: Int) {
    var text = text
    var length = 0
    if let ascii = text.withUTF8({ countASCII($0) }) {
      length = ascii
    } else {
      analyzer.forEachWord(text, asciiFastPath: false) { word in
        var word = word
        word.withUTF8 { add(term(of: $0, key: Table.key($0, padded: false))) }
        length += 1
      }
    }
    var result: [Vocabulary.TermCount] = []
    result.reserveCapacity(touched.count)
    for term in touched {
      result.append(Vocabulary.TermCount(term: term, count: counts[term]))
      counts[term] = 0
    }
    touched.removeAll(keepingCapacity: true)
    return (result, length)
  }

  /// Counts the words of `text` into `counts` and returns the number of terms; nil
  /// (nothing counted) when `text` is not all ASCII.
  private mutating func countASCII(_ text: UnsafeBufferPointer<UInt8>) -> Int? {
    var scanner = ASCIIWords()
    swap(&scanner, &self.scanner)  // out of self while the loop below mutates self
    defer { swap(&scanner, &self.scanner) }
    var length = 0
    let ascii = scanner.forEach(in: text) { word in
      let term = term(of: word, key: Table.key(word, padded: true))
      add(term)
      if term >= 0 { length += 1 }
    }
    return ascii ? length : nil
  }

  /// Counts one occurrence of the term `term` (−1: a stop word, not counted).
  private mutating func add(_ term: Int) {
    guard term >= 0 else { return }
    if counts[term] == 0 { touched.append(term) }
    counts[term] += 1
  }

  /// The term id of the lower-cased `word` (−1: a stop word), from the table, or
  /// added to it (stemmed) when new.
  private mutating func term(of word: UnsafeBufferPointer<UInt8>, key: Key) -> Int {
    let mask = slots.count - 1
    var slot = Int(truncatingIfNeeded: key.hash) & mask
    while slots[slot] >= 0 {
      let known = words[Int(slots[slot])]
      if known.key == key, Int(known.count) == word.count,
        word.count <= 8 || equal(known, word)
      {
        return Int(known.term)
      }
      slot = (slot + 1) & mask
    }
    slots[slot] = Int32(words.count)
    let term = term(of: String(decoding: word, as: UTF8.self))
    words.append(
      Word(key: key, start: Int32(bytes.count), count: Int32(word.count), term: Int32(term)))
    bytes.append(contentsOf: word)
    if words.count * 2 > slots.count { grow() }
    return term
  }

  /// The term id of the lower-cased `word`, new or not; −1 for a stop word.
  private mutating func term(of word: String) -> Int {
    if analyzer.isStopWord(word) { return -1 }
    let term = stemmer.stem(Analyzer.dropPossessive(word))
    if let id = termIDs[term] { return id }
    let id = terms.count
    terms.append(term)
    termIDs[term] = id
    counts.append(0)
    return id
  }

  private func equal(_ known: Word, _ word: UnsafeBufferPointer<UInt8>) -> Bool {
    bytes.withUnsafeBufferPointer { bytes in
      memcmp(bytes.baseAddress! + Int(known.start), word.baseAddress!, word.count) == 0
    }
  }

  private mutating func grow() {
    slots = [Int32](repeating: -1, count: slots.count * 2)
    let mask = slots.count - 1
    for (index, word) in words.enumerated() {
      var slot = Int(truncatingIfNeeded: word.key.hash) & mask
      while slots[slot] >= 0 { slot = (slot + 1) & mask }
      slots[slot] = Int32(index)
    }
  }

  /// The word's key: its first 8 bytes and a hash of all, 8 bytes at a time (words are
  /// short: one or two rounds). `padded`: 8 bytes may be read past the word's end.
  private static func key(_ word: UnsafeBufferPointer<UInt8>, padded: Bool) -> Key {
    guard let base = word.baseAddress else { return Key(hash: 0, prefix: 0) }
    let count = word.count
    // Up to 8 bytes from `offset`, zero past the end.
    @inline(__always) func load(_ offset: Int) -> UInt64 {
      let bytes = min(8, count - offset)
      if padded {
        let value = UInt64(
          littleEndian: UnsafeRawPointer(base).loadUnaligned(
            fromByteOffset: offset, as: UInt64.self))
        return bytes == 8 ? value : value & (1 << UInt64(bytes * 8) - 1)
      }
      var value: UInt64 = 0
      for index in 0..<bytes { value |= UInt64(base[offset + index]) << UInt64(index * 8) }
      return value
    }
    let prefix = load(0)
    var hash = mix(prefix ^ UInt64(count) &* 0x9E37_79B9_7F4A_7C15)
    var offset = 8
    while offset < count {
      hash = mix(hash ^ load(offset))
      offset += 8
    }
    return Key(hash: hash ^ (hash >> 29), prefix: prefix)
  }

  private static func mix(_ value: UInt64) -> UInt64 {
    let product = value.multipliedFullWidth(by: 0xBF58_476D_1CE4_E5B9)
    return product.high ^ product.low
  }
}
