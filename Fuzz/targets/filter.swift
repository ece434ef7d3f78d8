import Foundation

/// libFuzzer entry: one metadata filter (`Filter(json:)`), matched against a document.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  if let filter = try? Filter(json: text) {
    _ = filter.matches([
      "topic": "storage", "year": 2024, "tags": ["a", "b"], "author": ["name": "Ada"],
    ])
  }
  return 0
}
