import Foundation

/// libFuzzer entry: one CSV documents file (`DocumentCollection.importCSV`'s reading).
/// The first byte picks the delimiter (bits 0-1: comma, tab, semicolon or a quote, which
/// must be refused) and whether the ids come from a column named `id` (bit 3); the rest is
/// the file, its text in the column `text`. Records are read a chunk at a time; the
/// records read whole must be those read in chunks of 1 to 8 bytes (bits 4-6).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let choice = data[0]
  let delimiter: Unicode.Scalar = [",", "\t", ";", "\""][Int(choice & 3)]
  let file = Data(bytes: data + 1, count: size - 1)
  /// What a reading gives: documents, bad records, an error, in order.
  enum Outcome: Equatable {
    case document(line: Int, Document)
    case bad(line: Int, reason: String)
    case error(String)
  }
  func read(chunkSize: Int) -> [Outcome] {
    var seen: [Outcome] = []
    let input = InputFile(file, source: "fuzz", chunkSize: chunkSize)
    do {
      try CSVDocuments.forEach(
        in: input, textColumn: "text", idColumn: choice & 8 != 0 ? "id" : nil,
        delimiter: delimiter
      ) { line, document in
        precondition(line >= 2, "a record placed on the header's line")
        switch document {
        case .success(let document):
          precondition((try? document.validate()) != nil, "invalid document")
          seen.append(.document(line: line, document))
        case .failure(let bad): seen.append(.bad(line: line, reason: bad.reason))
        }
      }
    } catch {
      return [.error("\(error)")]
    }
    precondition(delimiter != "\"", "a quote was taken as the delimiter")
    return seen
  }
  let whole = read(chunkSize: max(1, file.count))
  precondition(read(chunkSize: 1 + Int(choice >> 4 & 7)) == whole, "chunks read otherwise")
  return 0
}
