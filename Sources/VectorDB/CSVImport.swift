import Foundation

extension DocumentCollection {
  /// Imports CSV (RFC 4180, UTF-8, a header row): one document per record, its text
  /// from the column `textColumn`, its id from `idColumn` (default: a column named
  /// `id` or `_id`, else the record number, 1 for the first after the header), and
  /// every other column as metadata (strings, as CSV has no types; empty fields are
  /// left out). `delimiter` separates fields: `,` (CSV) by default, `\t` for TSV; it must
  /// be one ASCII character other than a quote or a line break.
  ///
  ///     try notes.importCSV(InputFile("notes.csv"), textColumn: "body")
  ///
  /// As ``importJSONL(_:options:progress:)``: the whole input is checked before anything
  /// is written (with `options.skipBadLines`, bad records are reported by the line they
  /// start on, and skipped), then read again and written in batches; an id in several
  /// records is written once, from its last; memory holds a chunk and a record, not the
  /// input. Blank lines are skipped (they are no record, and count for no id).
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the input and the line: no such
  ///   column, a record with more or fewer fields than the header, an empty or
  ///   over-long id, input that is not UTF-8 CSV, a quoted field never closed or text
  ///   after a closing quote (which other readers take silently otherwise), a record
  ///   longer than 256 MiB; the file changed while it was read. `.storage` for I/O errors.
  @discardableResult
  public func importCSV(
    _ file: InputFile, textColumn: String, idColumn: String? = nil,
    delimiter: Unicode.Scalar = ",", options: ImportOptions = ImportOptions(),
    progress: ((OperationProgress) throws -> Void)? = nil
  ) throws -> ImportReport {
    let start = Date()
    func forEachDocument(_ body: (Int, Result<Document, CSVDocuments.BadRecord>) throws -> Void)
      throws
    {
      try CSVDocuments.forEach(
        in: file, textColumn: textColumn, idColumn: idColumn, delimiter: delimiter, body)
    }
    var skipped: [ImportReport.SkippedLine] = []
    // Each id's last good record, by the line it starts on: only that one is written.
    var lastLine: [String: Int] = [:]
    try forEachDocument { line, document in
      switch document {
      case .success(let document):
        lastLine[document.id] = line
      case .failure(let bad):
        guard options.skipBadLines else {
          throw VectorDBError.invalidInput(source: file.source, line: line, reason: bad.reason)
        }
        skipped.append(.init(line: line, reason: bad.reason))
      }
    }
    var writer = BatchWriter(
      collection: self, batchSize: options.batchSize ?? ImportOptions.embeddedBatchSize,
      total: lastLine.count, progress: progress)
    try file.checkUnchanged()
    let skippedLines = Set(skipped.map(\.line))
    var superseded = 0
    try forEachDocument { line, document in
      guard !skippedLines.contains(line) else { return }
      // The record was good when it was checked.
      guard case .success(let document) = document else { throw file.changed(line: line) }
      guard lastLine[document.id] == line else {
        superseded += 1
        return
      }
      try writer.add(document)
    }
    try writer.finish()
    try file.checkUnchanged()
    return ImportReport(
      imported: writer.imported, superseded: superseded, skipped: skipped,
      seconds: Date().timeIntervalSince(start))
  }
}
