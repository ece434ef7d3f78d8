import Foundation

/// libFuzzer entry: one `.fvecs` file (`VectorFile`'s reader).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  _ = try? VectorFile.records(InputFile(Data(bytes: data, count: size), source: "fuzz.fvecs")) {
    Float(bitPattern: $0)
  }.all()
  return 0
}
