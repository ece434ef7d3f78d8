// The summary statistics every benchmark reports, defined once so that "p99" means the
// same in every report.

/// The median of `values` (the mean of the two middle values for an even count); NaN
/// when there are none.
public func median(_ values: [Double]) -> Double {
  let sorted = values.sorted()
  guard !sorted.isEmpty else { return .nan }
  let middle = sorted.count / 2
  return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// The nearest-rank percentile: the smallest value with at least `fraction` of the values
/// at or below it (`percentile(x, 0.99)` of 100 values is the 99th smallest); NaN when
/// there are none.
public func percentile(_ values: [Double], _ fraction: Double) -> Double {
  let sorted = values.sorted()
  guard !sorted.isEmpty else { return .nan }
  let rank = Int((Double(sorted.count) * fraction).rounded(.up))
  return sorted[min(sorted.count, max(1, rank)) - 1]
}

/// The arithmetic mean; NaN when there are no values.
public func mean(_ values: [Double]) -> Double {
  values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
}

/// "median [min-max]" with `digits` decimals, e.g. `12.3 [11.8-14.0]`.
public func summary(_ values: [Double], digits: Int = 1) -> String {
  let format = "%.\(digits)f"
  return String(
    format: "\(format) [\(format)-\(format)]", median(values), values.min() ?? .nan,
    values.max() ?? .nan)
}
