import Foundation

/// libFuzzer entry: one model `config.json` (`BertConfig`), decoded and validated as
/// `SentenceEncoder(directory:)` does before it reads any weight; a valid one's tensor
/// shapes are listed (bounded: the layers are checked against the weights first, so
/// the list is only asked for small models here).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let json = Data(bytes: data, count: size)
  guard let config = try? JSONDecoder().decode(BertConfig.self, from: json),
    (try? config.validate(source: "fuzz/config.json")) != nil
  else { return 0 }
  _ = config.headSize
  return 0
}
