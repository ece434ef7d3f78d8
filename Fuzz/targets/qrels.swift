import Foundation

/// libFuzzer entry: one qrels TSV (`BEIR.qrels`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  _ = try? BEIR.qrels(Data(bytes: data, count: size), source: "fuzz.tsv")
  return 0
}
