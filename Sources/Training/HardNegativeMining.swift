/// Chooses hard negatives for a (query, positive) pair from the current model's ranking —
/// a pure function over scores, so a training run can store and replay its mined set.
///
/// Rules (DESIGN.md §7, and the recipe of the peer benchmark):
/// 1. Documents known to be relevant for the query are never negatives.
/// 2. Documents explicitly marked "not relevant" for the query come first, in the order given:
///    a person said they are wrong, so no score threshold applies to them.
/// 3. Then the top-ranked remaining candidates, skipping any that scores above
///    `margin × score(query, positive)` — so close to (or above) the positive that it is more
///    likely an unlabelled positive than a negative.
/// 4. At most ``count`` negatives (1–3), no document twice.
///
/// ```swift
/// let mining = HardNegativeMining(count: 1)
/// let mined = mining.negatives(
///   ranked: [("d7", 0.81), ("d2", 0.64), ("d9", 0.60)], positiveScore: 0.70,
///   positives: ["d7"])
/// mined.negatives          // ["d9"]: d7 is a positive, d2 scores above 0.95 × 0.70
/// mined.skippedByMargin    // 1
/// ```
public struct HardNegativeMining: Sendable, Equatable, Codable {
  /// Negatives wanted per pair.
  public var count: Int
  /// Relative ceiling: candidates scoring above `margin ×` the positive's score are skipped.
  public var margin: Double

  public init(count: Int = 1, margin: Double = 0.95) {
    precondition(count >= 1, "count must be at least 1")
    self.count = count
    self.margin = margin
  }

  /// What ``negatives(ranked:positiveScore:positives:notRelevant:)`` chose.
  public struct Mined<ID: Hashable>: Equatable {
    /// The chosen negatives, best first (explicit "not relevant" ones leading).
    public var negatives: [ID]
    /// Candidates passed over because they scored above the margin.
    public var skippedByMargin: Int
  }

  /// The negatives for one pair.
  ///
  /// - Parameters:
  ///   - ranked: candidates with the current model's scores, best first (ties as given).
  ///   - positiveScore: the current model's score for the pair's positive.
  ///   - positives: every document known to be relevant for the query.
  ///   - notRelevant: documents marked not relevant for the query, preferred in this order.
  public func negatives<ID: Hashable>(
    ranked: [(id: ID, score: Double)], positiveScore: Double, positives: Set<ID>,
    notRelevant: [ID] = []
  ) -> Mined<ID> {
    var chosen: [ID] = []
    var taken = Set<ID>()
    for id in notRelevant where chosen.count < count {
      if positives.contains(id) || taken.contains(id) { continue }
      chosen.append(id)
      taken.insert(id)
    }
    let ceiling = margin * positiveScore
    var skipped = 0
    for (id, score) in ranked where chosen.count < count {
      if positives.contains(id) || taken.contains(id) { continue }
      if score > ceiling {
        skipped += 1
        continue
      }
      chosen.append(id)
      taken.insert(id)
    }
    return Mined(negatives: chosen, skippedByMargin: skipped)
  }
}
