import Foundation

extension DocumentCollection {
  /// Imports CSV (RFC 4180, UTF-8, a header row): one document per record, its text
  /// from the column `textColumn`, its id from `idColumn` (default: a column named
  /// `id` or `_id`, else the record number, 1 for the first after the header), and
  /// every other column as metadata (strings, as CSV has no types; empty fields are
  /// left out). `delimiter` separates fields: `,` (CSV) by default, `\t` for TSV; it must
  /// be one ASCII character other than a quote or a line break.
  ///
  /// The whole input is checked before anything is written; with
  /// `options.skipBadLines`, bad records are reported (by the line they start on) and
  /// skipped. Blank lines are skipped (they are no record, and count for no id).
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `source` and the line: no such
  ///   column, a record with more or fewer fields than the header, an empty or
  ///   over-long id, input that is not UTF-8 CSV, a quoted field never closed or text
  ///   after a closing quote (which the parser would read silently wrong).
  @discardableResult
  public func importCSV(
    data: Data, source: String, textColumn: String, idColumn: String? = nil,
    delimiter: Unicode.Scalar = ",", options: ImportOptions = ImportOptions(),
    progress: ((OperationProgress) throws -> Void)? = nil
  ) throws -> ImportReport {
    let start = Date()
    let (documents, bad) = try CSVDocuments.read(
      data, source: source, textColumn: textColumn, idColumn: idColumn, delimiter: delimiter,
      skipBadRecords: options.skipBadLines)
    let skipped = bad.map { ImportReport.SkippedLine(line: $0.line, reason: $0.reason) }
    // A repeated id: the last record wins, the ones it replaces are not written.
    var lastIndex: [String: Int] = [:]
    for (index, document) in documents.enumerated() { lastIndex[document.id] = index }
    var writer = BatchWriter(
      collection: self, batchSize: options.batchSize ?? ImportOptions.embeddedBatchSize,
      total: lastIndex.count, progress: progress)
    for (index, document) in documents.enumerated() where lastIndex[document.id] == index {
      try writer.add(document)
    }
    try writer.finish()
    return ImportReport(
      imported: writer.imported, superseded: documents.count - lastIndex.count, skipped: skipped,
      seconds: Date().timeIntervalSince(start))
  }
}
