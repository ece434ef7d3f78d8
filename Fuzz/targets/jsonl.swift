import Foundation

/// libFuzzer entry: one JSON Lines documents file (`Collection.importJSONL`'s parser).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  try? JSONLines.forEach(in: Data(bytes: data, count: size)) { line, bytes in
    _ = try? JSONLines.document(from: bytes, source: "fuzz", line: line)
  }
  return 0
}
