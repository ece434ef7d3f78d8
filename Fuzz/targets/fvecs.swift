import Foundation

/// libFuzzer entry: one `.fvecs` file (`VectorFile`'s reader).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  _ = try? VectorFile.fvecs(Data(bytes: data, count: size), path: "fuzz.fvecs")
  return 0
}
