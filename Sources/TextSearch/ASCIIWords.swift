/// The words of ASCII text by the rules of `Analyzer.words` (one byte per character,
/// no ideographs, no marks), lower-cased, found without a branch per byte: the text is
/// classified 8 bytes at a time into a bit mask of its word parts (one bit per byte),
/// the single bytes between two word parts are checked for a joining mark, and the
/// words are the runs of set bits of the word parts with the marks that join. A branch
/// per byte mispredicted at every word's end, which made the byte loop this replaces
/// most of the cost of indexing a document.
///
/// Reusable: its buffers grow to the longest text seen.
struct ASCIIWords {
  /// The text lower-cased, zero from its end to a multiple of 64 bytes, and 8 bytes to
  /// spare: a word's bytes are always followed by 8 readable ones.
  private var lower: [UInt8] = []
  /// Per 64 bytes of text, bit i for byte i: word parts (letters, digits, '_'), and
  /// the words' bytes (the parts and the marks that join them).
  private var parts: [UInt64] = []
  private var words: [UInt64] = []

  /// Calls `body` with each word of `text`, lower-cased, in order, and returns true;
  /// returns false without calling it when `text` is not all ASCII. At least 8 bytes
  /// may be read past each word's end (see `lower`).
  mutating func forEach(
    in text: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Void
  ) -> Bool {
    guard let source = text.baseAddress else { return true }
    let count = text.count
    let chunks = (count + 63) / 64
    if lower.count < chunks * 64 + 8 { lower = [UInt8](repeating: 0, count: chunks * 64 + 8) }
    if parts.count < chunks {
      parts = [UInt64](repeating: 0, count: chunks)
      words = parts
    }
    return lower.withUnsafeMutableBufferPointer { lower in
      parts.withUnsafeMutableBufferPointer { parts in
        words.withUnsafeMutableBufferPointer { words in
          let destination = UnsafeMutableRawPointer(lower.baseAddress!)
          var high: UInt64 = 0  // any byte's high bit: not ASCII
          for chunk in 0..<chunks {
            var found: UInt64 = 0
            for lane in 0..<8 {
              let offset = chunk * 64 + lane * 8
              var bytes: UInt64 = 0
              if offset + 8 <= count {
                bytes = UInt64(
                  littleEndian: UnsafeRawPointer(source).loadUnaligned(
                    fromByteOffset: offset, as: UInt64.self))
              } else if offset < count {
                for index in offset..<count {
                  bytes |= UInt64(source[index]) << UInt64((index - offset) * 8)
                }
              }
              high |= bytes
              // With 0x20 set in every byte, letters of either case are 'a'...'z' and no
              // other byte is: the letters, and the text lower-cased.
              let letters = ASCIIWords.inRange(bytes | 0x2020_2020_2020_2020, 0x61, 0x7A)
              bytes |= letters >> 2
              destination.storeBytes(
                of: bytes.littleEndian, toByteOffset: offset, as: UInt64.self)
              let part =
                letters | ASCIIWords.inRange(bytes, 0x30, 0x39)
                | ASCIIWords.inRange(bytes, 0x5F, 0x5F)
              found |= ASCIIWords.bits(part) << UInt64(lane * 8)
            }
            parts[chunk] = found
          }
          guard high & 0x8080_8080_8080_8080 == 0 else { return false }
          // A single byte between two word parts (mostly a space) joins them if it is a
          // mark the rules say joins them: it becomes part of the word. Bit i of a mask
          // is byte i, so the byte before has bit i − 1 (0 past either end).
          for chunk in 0..<chunks {
            let before = parts[chunk] << 1 | (chunk > 0 ? parts[chunk - 1] >> 63 : 0)
            let after = parts[chunk] >> 1 | (chunk + 1 < chunks ? parts[chunk + 1] << 63 : 0)
            var candidates = ~parts[chunk] & before & after
            var joining: UInt64 = 0
            while candidates != 0 {
              let bit = candidates.trailingZeroBitCount
              candidates &= candidates - 1
              let index = chunk << 6 | bit
              if ASCIIWords.joins(lower[index], lower[index + 1], after: lower[index - 1]) {
                joining |= 1 << UInt64(bit)
              }
            }
            words[chunk] = parts[chunk] | joining
          }
          let runs = words
          /// The first byte from `start` on whose bit in `runs` is `set`; `count` if none.
          func next(_ set: Bool, from start: Int) -> Int {
            var chunk = start >> 6
            guard chunk < chunks else { return count }
            var bits = (set ? runs[chunk] : ~runs[chunk]) & (~0 << UInt64(start & 63))
            while bits == 0 {
              chunk += 1
              if chunk == chunks { return count }
              bits = set ? runs[chunk] : ~runs[chunk]
            }
            return min(count, chunk << 6 | bits.trailingZeroBitCount)
          }
          func isPart(_ index: Int) -> Bool { parts[index >> 6] >> UInt64(index & 63) & 1 != 0 }
          func word(_ start: Int, _ end: Int) {
            body(UnsafeBufferPointer(rebasing: UnsafeBufferPointer(lower)[start..<end]))
          }
          var start = next(true, from: 0)
          while start < count {
            let end = next(false, from: start)
            if end - start <= Analyzer.maxWordCharacters {
              word(start, end)
            } else {
              // Cut into pieces of `maxWordCharacters` word parts (joining marks do
              // not count): a rare, long run, walked byte by byte.
              var piece = start
              var characters = 0
              for index in start..<end where isPart(index) {
                if characters == Analyzer.maxWordCharacters {
                  word(piece, index)
                  piece = index
                  characters = 0
                }
                characters += 1
              }
              word(piece, end)
            }
            start = next(true, from: end)
          }
          return true
        }
      }
    }
  }

  /// Whether the mark `middle` between two word parts joins them (UAX #29 WB6/7,
  /// WB11/12; `Analyzer.joins` for ASCII).
  private static func joins(_ middle: UInt8, _ after: UInt8, after before: UInt8) -> Bool {
    func isLetter(_ byte: UInt8) -> Bool { byte &- 0x61 < 26 }  // lower-cased
    func isDigit(_ byte: UInt8) -> Bool { byte &- 0x30 < 10 }
    switch middle {
    case UInt8(ascii: "'"), UInt8(ascii: "."):
      if isLetter(before) && isLetter(after) { return true }
      return middle == UInt8(ascii: ".") && isDigit(before) && isDigit(after)
    case UInt8(ascii: ","):
      return isDigit(before) && isDigit(after)
    default:
      return false
    }
  }

  /// 0x80 in each byte of `bytes` within `low...high`, 0 in the others; every byte
  /// must be below 0x80 (ASCII), so no sum carries into the next byte.
  private static func inRange(_ bytes: UInt64, _ low: UInt64, _ high: UInt64) -> UInt64 {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let atLeastLow = bytes &+ ones &* (0x80 - low)
    let aboveHigh = bytes &+ ones &* (0x7F - high)
    return atLeastLow & ~aboveHigh & 0x8080_8080_8080_8080
  }

  /// The high bits of the 8 bytes as 8 bits (bit i: byte i).
  private static func bits(_ highBits: UInt64) -> UInt64 {
    ((highBits >> 7) &* 0x0102_0408_1020_4080) >> 56
  }
}
