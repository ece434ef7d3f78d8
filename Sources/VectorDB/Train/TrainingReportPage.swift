import Foundation

extension TrainingReport {
  /// The report as one self-contained HTML page (no script, no network; the plots are
  /// inline SVG): the verdict and its interval drawn against zero, the loss curve, the
  /// metrics before and after, the judged queries that changed most, the data and the
  /// recipe. `vdb train --report FILE.html` writes it.
  ///
  /// ```swift
  /// let report = try docs.train()
  /// try report.htmlPage(collection: "docs").write(toFile: "train.html", atomically: true, encoding: .utf8)
  /// ```
  public func htmlPage(collection: String) -> String {
    let verdict = promoted ? "promoted" : "not promoted"
    let what = tier == .adapter ? "query adapter" : "encoder"
    var body = """
      <h1>vdb train: \(escape(collection)), \(what) v\(modelVersion) \(verdict)</h1>
      <p class="verdict \(promoted ? "yes" : "no")">\(escape(reason))</p>
      <h2>Change of nDCG@10 on the judged queries (95% interval)</h2>
      \(intervalPlot())
      <h2>Loss</h2>
      \(lossPlot())
      <h2>Before and after</h2>
      \(metricsTable())
      """
    if !changes.isEmpty {
      body += "\n<h2>Judged queries that changed most</h2>\n" + changesTable()
    }
    body += "\n<h2>Data and recipe</h2>\n" + recipeTable()
    return """
      <!DOCTYPE html>
      <html lang="en"><head><meta charset="utf-8">
      <title>vdb train: \(escape(collection))</title>
      <style>
      body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 900px; color: #222; }
      table { border-collapse: collapse; margin: .5em 0 1.5em; }
      td, th { border-bottom: 1px solid #ddd; padding: .25em .8em; text-align: left; }
      td.n { text-align: right; font-variant-numeric: tabular-nums; }
      .verdict { font-weight: 600; } .yes { color: #17692f; } .no { color: #9a3b00; }
      svg text { font: 12px system-ui, sans-serif; fill: #444; }
      </style></head><body>
      \(body)
      </body></html>

      """
  }

  /// The mean change and its interval on an axis that always shows zero.
  private func intervalPlot() -> String {
    let low = min(gate.ciLow, gate.delta, 0) - 0.01
    let high = max(gate.ciHigh, gate.delta, 0) + 0.01
    let width = 800.0
    func x(_ value: Double) -> String { format((value - low) / (high - low) * (width - 40) + 20) }
    let color = gate.ciLow > 0 ? "#17692f" : "#9a3b00"
    return """
      <svg id="interval" width="\(Int(width))" height="70" viewBox="0 0 \(Int(width)) 70" role="img" \
      aria-label="interval [\(format(gate.ciLow)), \(format(gate.ciHigh))]">
      <line x1="20" y1="40" x2="\(Int(width) - 20)" y2="40" stroke="#999"/>
      <line x1="\(x(0))" y1="10" x2="\(x(0))" y2="60" stroke="#222" stroke-dasharray="3 3"/>
      <text x="\(x(0))" y="68" text-anchor="middle">0</text>
      <line x1="\(x(gate.ciLow))" y1="40" x2="\(x(gate.ciHigh))" y2="40" stroke="\(color)" stroke-width="6"/>
      <circle cx="\(x(gate.delta))" cy="40" r="6" fill="\(color)"/>
      <text x="\(x(gate.ciLow))" y="25" text-anchor="middle">\(signed(gate.ciLow))</text>
      <text x="\(x(gate.ciHigh))" y="25" text-anchor="middle">\(signed(gate.ciHigh))</text>
      </svg>
      <p>mean \(signed(gate.delta)) over \(gate.queries) queries \
      (\(gate.method == "cross_fit" ? "cross-fitted, \(gate.folds) folds" : "held out"))</p>
      """
  }

  private func lossPlot() -> String {
    guard losses.count > 1, let low = losses.min(), let high = losses.max() else {
      return "<p>no steps</p>"
    }
    let width = 800.0
    let height = 200.0
    let span = max(high - low, 1e-9)
    let points = losses.enumerated().map { step, loss in
      format(Double(step) / Double(losses.count - 1) * (width - 60) + 50) + ","
        + format((high - loss) / span * (height - 40) + 10)
    }
    return """
      <svg id="loss-curve" width="\(Int(width))" height="\(Int(height))" \
      viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="loss per step">
      <polyline fill="none" stroke="#2458a6" stroke-width="1.5" points="\(points.joined(separator: " "))"/>
      <text x="5" y="15">\(format(high))</text><text x="5" y="\(Int(height) - 28)">\(format(low))</text>
      <text x="50" y="\(Int(height) - 5)">step 1</text>
      <text x="\(Int(width) - 10)" y="\(Int(height) - 5)" text-anchor="end">step \(losses.count)</text>
      </svg>
      """
  }

  private func metricsTable() -> String {
    let keys = ["ndcg@10", "mrr@10", "map@100", "recall@1", "recall@10", "recall@100"]
    let rows = keys.map { key in
      let before = heldOutBefore[key] ?? 0
      let after = heldOutAfter[key] ?? 0
      return "<tr><td>\(key)</td><td class=\"n\">\(format(before))</td>"
        + "<td class=\"n\">\(format(after))</td><td class=\"n\">\(signed(after - before))</td></tr>"
    }
    return
      "<table id=\"metrics\"><tr><th>metric</th><th>before</th><th>after</th><th>change</th></tr>"
      + rows.joined() + "</table>"
  }

  private func changesTable() -> String {
    func rank(_ value: Int?) -> String { value.map { "#\($0)" } ?? "&gt;100" }
    let rows = changes.map { change in
      "<tr><td>\(escape(change.query))</td><td class=\"n\">\(rank(change.rankBefore))</td>"
        + "<td class=\"n\">\(rank(change.rankAfter))</td>"
        + "<td class=\"n\">\(signed(change.ndcgAfter - change.ndcgBefore))</td></tr>"
    }
    return "<table id=\"changes\"><tr><th>query</th><th>rank before</th><th>rank after</th>"
      + "<th>nDCG@10 change</th></tr>" + rows.joined() + "</table>"
  }

  private func recipeTable() -> String {
    let rows: [(String, String)] = [
      ("judged queries", "\(data.judgedQueries)"),
      ("gate queries", "\(data.heldOutQueries) (\(gate.method), \(gate.folds) fold(s))"),
      ("training pairs (published fit)", "\(data.trainPairs) from \(data.trainQueries) queries"),
      ("hard negatives", "\(data.negatives)"),
      ("documents embedded to judge", "\(gate.documentsEmbedded)"),
      ("tier", tier.rawValue), ("epochs", "\(options.epochCount)"),
      ("batch size", "\(options.batchSize)"),
      ("learning rate", "\(options.peakLearningRate)"),
      ("max sequence length", "\(options.maxSequenceLength)"),
      ("hard negatives per pair", "\(options.hardNegatives)"), ("seed", "\(options.seed)"),
      ("training time", String(format: "%.1f s", trainingSeconds)),
      ("total time", String(format: "%.1f s", seconds)),
    ]
    // The encoder tiers' runs record their products' precision.
    let precision = options.matmulPrecision.map { [("matrix products", $0.rawValue)] } ?? []
    return "<table id=\"recipe\">"
      + (rows + precision).map { "<tr><td>\($0.0)</td><td>\(escape($0.1))</td></tr>" }.joined()
      + "</table>"
  }

  private func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
  }

  private func format(_ value: Double) -> String { String(format: "%.4f", value) }
  private func signed(_ value: Double) -> String { String(format: "%+.4f", value) }
}
