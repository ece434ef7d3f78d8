import Foundation

/// libFuzzer entry: one `.npy` file (`VectorFile`'s reader).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  _ = try? VectorFile.npy(InputFile(Data(bytes: data, count: size), source: "fuzz.npy")).all()
  return 0
}
