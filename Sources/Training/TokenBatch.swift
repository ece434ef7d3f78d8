/// Token-id sequences packed end to end with no padding: sequence `s` occupies rows
/// `offsets[s]..<offsets[s + 1]` of every activation matrix, so each linear layer is one
/// matrix product over all the batch's tokens and no work is spent on padding.
///
/// ```swift
/// // [CLS] … [SEP] ids from the tokenizer, already truncated to the training length:
/// let batch = try TokenBatch([[101, 7592, 102], [101, 2088, 2003, 102]], vocabulary: 30522)
/// batch.count        // 2 sequences
/// batch.tokenCount   // 7 tokens
/// ```
public struct TokenBatch: Sendable, Equatable {
  /// All token ids, sequence after sequence.
  public let tokenIDs: [Int32]
  /// Token-type (segment) ids, parallel to ``tokenIDs``.
  public let tokenTypes: [Int32]
  /// Start of each sequence in ``tokenIDs``, plus one final entry equal to ``tokenCount``.
  public let offsets: [Int]

  /// Packs `sequences`; every id must be below `vocabulary` and every sequence non-empty
  /// and at most `maximumLength` long. Token types default to 0.
  public init(
    _ sequences: [[Int32]], tokenTypes: [[Int32]]? = nil, vocabulary: Int,
    maximumLength: Int = 512, tokenTypeCount: Int = 2
  ) throws(TrainingError) {
    if let tokenTypes, tokenTypes.count != sequences.count {
      throw .badInput(
        "\(tokenTypes.count) token-type sequences for \(sequences.count) token sequences")
    }
    var ids: [Int32] = []
    var types: [Int32] = []
    var offsets = [0]
    ids.reserveCapacity(sequences.reduce(0) { $0 + $1.count })
    for (s, sequence) in sequences.enumerated() {
      if sequence.isEmpty { throw .badSequence(index: s, reason: "is empty") }
      if sequence.count > maximumLength {
        throw .badSequence(
          index: s, reason: "has \(sequence.count) tokens, more than \(maximumLength)")
      }
      if let bad = sequence.firstIndex(where: { $0 < 0 || Int($0) >= vocabulary }) {
        throw .badSequence(
          index: s,
          reason: "token \(bad) has id \(sequence[bad]), outside the vocabulary 0..<\(vocabulary)")
      }
      ids += sequence
      if let tokenTypes {
        let typesOfSequence = tokenTypes[s]
        if typesOfSequence.count != sequence.count {
          throw .badSequence(
            index: s,
            reason: "has \(typesOfSequence.count) token types for \(sequence.count) tokens")
        }
        if let bad = typesOfSequence.firstIndex(where: { $0 < 0 || Int($0) >= tokenTypeCount }) {
          throw .badSequence(
            index: s, reason: "token \(bad) has token type \(typesOfSequence[bad])")
        }
        types += typesOfSequence
      } else {
        types += repeatElement(0, count: sequence.count)
      }
      offsets.append(ids.count)
    }
    self.tokenIDs = ids
    self.tokenTypes = types
    self.offsets = offsets
  }

  /// Number of sequences.
  public var count: Int { offsets.count - 1 }
  /// Number of tokens over all sequences.
  public var tokenCount: Int { tokenIDs.count }
  /// Token rows of sequence `s`.
  public func rows(of s: Int) -> Range<Int> { offsets[s]..<offsets[s + 1] }
  /// The longest sequence's length.
  public var longest: Int { (0..<count).map { offsets[$0 + 1] - offsets[$0] }.max() ?? 0 }

  /// The sequences `range` as a batch of their own.
  public func slice(_ range: Range<Int>) -> TokenBatch {
    let start = offsets[range.lowerBound]
    let end = offsets[range.upperBound]
    return TokenBatch(
      tokenIDs: Array(tokenIDs[start..<end]), tokenTypes: Array(tokenTypes[start..<end]),
      offsets: offsets[range.lowerBound...range.upperBound].map { $0 - start })
  }

  private init(tokenIDs: [Int32], tokenTypes: [Int32], offsets: [Int]) {
    self.tokenIDs = tokenIDs
    self.tokenTypes = tokenTypes
    self.offsets = offsets
  }
}
