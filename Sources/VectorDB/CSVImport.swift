import CSV
import Foundation

extension Collection {
  /// Imports CSV (RFC 4180, UTF-8, a header row): one document per record, its text
  /// from the column `textColumn`, its id from `idColumn` (default: a column named
  /// `id` or `_id`, else the record number, 1 for the first after the header), and
  /// every other column as metadata (strings, as CSV has no types; empty fields are
  /// left out).
  ///
  /// The whole input is checked before anything is written; with
  /// `options.skipBadLines`, bad records are reported (by record number) and skipped.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming `source` and the record: no such
  ///   column, a record with more or fewer fields than the header, an empty or
  ///   over-long id, input that is not UTF-8 CSV.
  @discardableResult
  public func importCSV(
    data: Data, source: String, textColumn: String, idColumn: String? = nil,
    options: ImportOptions = ImportOptions(),
    progress: ((OperationProgress) throws -> Void)? = nil
  ) throws -> ImportReport {
    let start = Date()
    func fail(_ record: Int?, _ reason: String) -> VectorDBError {
      .invalidInput(
        source: source, line: nil, reason: (record.map { "record \($0): " } ?? "") + reason)
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw fail(nil, "the file is not UTF-8 text")
    }
    let reader: CSVReader
    do {
      reader = try CSVReader(string: text, hasHeaderRow: true)
    } catch {
      throw fail(nil, "no header row")
    }
    guard let header = reader.headerRow, !header.isEmpty else {
      throw fail(nil, "no header row")
    }
    guard let textIndex = header.firstIndex(of: textColumn) else {
      throw fail(
        nil, "no column \"\(textColumn)\" for the text (columns: \(header.joined(separator: ", ")))"
      )
    }
    let idName = idColumn ?? ["id", "_id"].first(where: header.contains)
    let idIndex = try idName.map { name in
      guard let index = header.firstIndex(of: name) else {
        throw fail(
          nil, "no column \"\(name)\" for the ids (columns: \(header.joined(separator: ", ")))")
      }
      return index
    }
    var documents: [Document] = []
    var skipped: [ImportReport.SkippedLine] = []
    var record = 0
    struct Bad: Error { var reason: String }
    while let fields = reader.next() {
      record += 1
      do {
        guard fields.count == header.count else {
          throw Bad(reason: "\(fields.count) fields; the header has \(header.count)")
        }
        var metadata: [String: JSONValue] = [:]
        for (index, name) in header.enumerated()
        where index != textIndex && index != idIndex && !fields[index].isEmpty {
          metadata[name] = .string(fields[index])
        }
        let document = Document(
          id: idIndex.map { fields[$0] } ?? String(record), text: fields[textIndex],
          metadata: metadata)
        do {
          try document.validate()
        } catch VectorDBError.invalidDocument(_, let reason) {
          throw Bad(reason: reason)
        }
        documents.append(document)
      } catch let bad as Bad {
        guard options.skipBadLines else { throw fail(record, bad.reason) }
        skipped.append(.init(line: record, reason: bad.reason))
      }
    }
    if let error = reader.error { throw fail(record + 1, "cannot read the record (\(error))") }
    var writer = BatchWriter(
      collection: self, batchSize: options.batchSize, total: documents.count, progress: progress)
    for document in documents { try writer.add(document) }
    try writer.finish()
    return ImportReport(
      imported: writer.imported, skipped: skipped, seconds: Date().timeIntervalSince(start))
  }
}
