import CStemmer
import Foundation

/// Turns text into index terms: Unicode word segmentation, lower case, English stop
/// words removed, Snowball English stems.
///
///     Analyzer.english.terms("The cats were running.")   // ["cat", "were", "run"]
///
/// Words are maximal runs of letters, digits and combining marks; an apostrophe or a
/// period between two letters, and a period or comma between two digits, stay inside
/// the word ("don't", "u.s", "3.14"), as in Unicode's word-boundary rules (UAX #29).
/// Han ideographs and kana have no spaces between words, so each such character is a
/// word of its own (as Lucene's StandardTokenizer does): CJK text is searchable, never
/// dropped. A word longer than `maxWordCharacters` is cut into pieces of that length,
/// and one longer than `maxWordBytes` (combining marks do not count as characters) into
/// pieces of at most that many bytes.
///
/// The name and version identify what the analyzer does; a database stores them with
/// each text index and rebuilds the index when they change.
public struct Analyzer: Sendable, Equatable {
  public let name: String
  public let version: Int
  let stopWords: Set<String>
  /// The longest stop word's UTF-8 length: longer words skip the set lookup.
  private let longestStopWord: Int

  init(name: String, version: Int, stopWords: Set<String>) {
    self.name = name
    self.version = version
    self.stopWords = stopWords
    longestStopWord = stopWords.map(\.utf8.count).max() ?? 0
  }

  /// Lucene's English stop words (33), as Anserini's BM25 baselines use them.
  public static let english = Analyzer(
    name: "english", version: 1,
    stopWords: [
      "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
      "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
      "these", "they", "this", "to", "was", "will", "with",
    ])

  /// The longest word kept whole, in characters (Lucene's StandardTokenizer: 255).
  public static let maxWordCharacters = 64

  /// The longest word kept whole, in UTF-8 bytes once lower-cased: a letter under
  /// hundreds of combining marks is one character. Every term fits a database key
  /// (vdb's text keys: LMDB's 511 bytes, 11 of them other fields); stems are never
  /// longer than their words.
  public static let maxWordBytes = 500

  /// The terms of `text`, in order, repeated as often as they occur.
  public func terms(_ text: String) -> [String] { terms(text, asciiFastPath: true) }

  /// `terms`, with the byte-level path for ASCII text on or off (it gives the same terms:
  /// the tests compare the two).
  func terms(_ text: String, asciiFastPath: Bool) -> [String] {
    let stemmer = Stemmer()
    var stems: [String: String] = [:]  // words repeat: stem each once
    var terms: [String] = []
    forEachWord(text, asciiFastPath: asciiFastPath) { lower in
      if let stem = stems[lower] {
        terms.append(stem)
      } else {
        let stem = stemmer.stem(Analyzer.dropPossessive(lower))
        stems[lower] = stem
        terms.append(stem)
      }
    }
    return terms
  }

  /// Whether the lower-cased `word` is a stop word.
  func isStopWord(_ word: String) -> Bool {
    word.utf8.count <= longestStopWord && stopWords.contains(word)
  }

  /// Calls `body` with each word of `text` lower-cased, stop words left out.
  func forEachWord(_ text: String, asciiFastPath: Bool, _ body: (String) -> Void) {
    func word(_ lower: String) {
      if lower.utf8.count > Analyzer.maxWordBytes {
        Analyzer.forEachPiece(of: lower, body)  // none is a stop word: they are long
      } else if !isStopWord(lower) {
        body(lower)
      }
    }
    var text = text
    let done =
      asciiFastPath
      && text.withUTF8 { bytes in
        var words = ASCIIWords()
        return words.forEach(in: bytes) { word(String(decoding: $0, as: UTF8.self)) }
      }
    if !done {
      for each in Analyzer.words(text) { word(Analyzer.lowercased(each)) }
    }
  }

  /// Calls `body` with the pieces of `word`, cut between scalars, of at most
  /// `maxWordBytes` bytes each.
  private static func forEachPiece(of word: String, _ body: (String) -> Void) {
    var piece = String.UnicodeScalarView()
    var bytes = 0
    for scalar in word.unicodeScalars {
      let width = UTF8.width(scalar)
      if bytes + width > maxWordBytes {
        body(String(piece))
        piece = String.UnicodeScalarView()
        bytes = 0
      }
      piece.append(scalar)
      bytes += width
    }
    if !piece.isEmpty { body(String(piece)) }
  }

  /// Unicode lower case, with a fast path for ASCII words (most of English text).
  private static func lowercased(_ word: Substring) -> String {
    guard word.utf8.allSatisfy({ $0 < 0x80 }) else { return word.lowercased() }
    return String(
      decoding: word.utf8.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
  }

  /// "ada's" → "ada" (Lucene's English possessive filter).
  static func dropPossessive(_ word: String) -> String {
    for suffix in ["'s", "\u{2019}s"] where word.hasSuffix(suffix) && word.count > 2 {
      return String(word.dropLast(2))
    }
    return word
  }

  /// The words of `text` (see the type's documentation), not yet lower-cased.
  static func words(_ text: String) -> [Substring] {
    var words: [Substring] = []
    let scalars = text.unicodeScalars
    var start: String.Index? = nil
    var count = 0
    var index = scalars.startIndex
    func close(at end: String.Index) {
      if let begin = start { words.append(Substring(scalars[begin..<end])) }
      start = nil
      count = 0
    }
    while index < scalars.endIndex {
      let scalar = scalars[index]
      let next = scalars.index(after: index)
      if isIdeographic(scalar) {
        close(at: index)
        words.append(Substring(scalars[index..<next]))
      } else if isWordPart(scalar) {
        if start == nil || count == maxWordCharacters {
          close(at: index)
          start = index
        }
        // Combining marks belong to the letter before them: not a character of their own.
        if scalar.isASCII || !scalar.properties.generalCategory.isMark { count += 1 }
      } else if start != nil, next < scalars.endIndex,
        joins(scalar, scalars[next], after: scalars[scalars.index(before: index)])
      {
        // A mid-word apostrophe or period, or a digit separator: part of the word.
      } else {
        close(at: index)
      }
      index = next
    }
    close(at: scalars.endIndex)
    return words
  }

  /// Whether `middle` between `before` and `after` continues a word (UAX #29 WB6/7, WB11/12).
  private static func joins(
    _ middle: Unicode.Scalar, _ after: Unicode.Scalar, after before: Unicode.Scalar
  )
    -> Bool
  {
    switch middle {
    case "'", "\u{2019}", ".":
      if isLetter(before) && isLetter(after) { return true }
      return middle == "." && isDigit(before) && isDigit(after)
    case ",":
      return isDigit(before) && isDigit(after)
    default:
      return false
    }
  }

  // ASCII answers come first: Unicode property lookups are most of the analyzer's time.

  private static func isDigit(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.isASCII { return ("0"..."9").contains(scalar) }
    return scalar.properties.numericType == .decimal
  }

  private static func isLetter(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.isASCII { return ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) }
    return scalar.properties.isAlphabetic && !isIdeographic(scalar)
  }

  private static func isWordPart(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.isASCII { return isLetter(scalar) || isDigit(scalar) || scalar == "_" }
    let category = scalar.properties.generalCategory
    return scalar.properties.isAlphabetic || category.isMark || category == .decimalNumber
      || category == .letterNumber || category == .otherNumber
  }

  /// Han, Hiragana and Katakana: scripts written without spaces between words.
  private static func isIdeographic(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.value < 0x2E80 { return false }  // below the CJK blocks
    if scalar.properties.isIdeographic { return true }
    switch scalar.value {
    case 0x3040...0x309F, 0x30A0...0x30FF, 0x31F0...0x31FF, 0xFF66...0xFF9D: return true
    default: return false
    }
  }
}

extension Unicode.GeneralCategory {
  fileprivate var isMark: Bool {
    self == .nonspacingMark || self == .spacingMark || self == .enclosingMark
  }
}

/// One Snowball English stemmer (the C stemmer is not thread-safe: one per use).
final class Stemmer {
  private let handle: OpaquePointer

  init() {
    // Only fails for an unknown algorithm or out of memory; "english"/"UTF_8" is built in.
    handle = sb_stemmer_new("english", "UTF_8")!
  }

  deinit { sb_stemmer_delete(handle) }

  func stem(_ word: String) -> String {
    var utf8 = Array(word.utf8)
    return utf8.withUnsafeMutableBufferPointer { buffer -> String in
      guard let stemmed = sb_stemmer_stem(handle, buffer.baseAddress, Int32(buffer.count)) else {
        return word  // out of memory in the stemmer: the word itself still matches itself
      }
      let length = Int(sb_stemmer_length(handle))
      return String(decoding: UnsafeBufferPointer(start: stemmed, count: length), as: UTF8.self)
    }
  }
}
