import Foundation

/// libFuzzer entry: one `.fvecs` file (`VectorFile`'s reader).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  _ = try? VectorFile.records(Data(bytes: data, count: size), path: "fuzz.fvecs", limit: .max) {
    Float(bitPattern: $0)
  }
  return 0
}
