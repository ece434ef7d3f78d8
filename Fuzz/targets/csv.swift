import Foundation

/// libFuzzer entry: one CSV documents file (`DocumentCollection.importCSV`'s reading,
/// through the CSV.swift parser). The first byte picks the delimiter (bits 0-1: comma,
/// tab, semicolon or a quote, which must be refused), whether bad records are skipped
/// (bit 2) and whether the ids come from a column named `id` (bit 3); the rest is the
/// file, its text in the column `text`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let choice = data[0]
  let delimiter: Unicode.Scalar = [",", "\t", ";", "\""][Int(choice & 3)]
  let file = Data(bytes: data + 1, count: size - 1)
  guard
    let (documents, bad) = try? CSVDocuments.read(
      file, source: "fuzz", textColumn: "text", idColumn: choice & 8 != 0 ? "id" : nil,
      delimiter: delimiter, skipBadRecords: choice & 4 != 0)
  else { return 0 }
  precondition(delimiter != "\"", "a quote was taken as the delimiter")
  for document in documents { precondition((try? document.validate()) != nil, "invalid document") }
  precondition(bad.allSatisfy { $0.line >= 2 }, "a bad record placed on the header's line")
  return 0
}
