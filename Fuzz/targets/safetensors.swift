import Foundation

/// libFuzzer entry: one safetensors file (`SafeTensors(bytes:)`), every tensor read.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard let file = try? SafeTensors(bytes: Array(UnsafeBufferPointer(start: data, count: size)))
  else { return 0 }
  for name in file.names {
    _ = try? file.tensor(name)
  }
  _ = try? file.floatTensors()
  return 0
}
