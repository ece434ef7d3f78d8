import Embedding
import Foundation
import Tensor
import XCTest

final class SafeTensorsTests: XCTestCase {
  private let tensors: [String: Tensor] = [
    "b.weight": Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, -6.5]),
    "a.bias": Tensor(shape: [3], values: [0.25, .infinity, -0]),
    "empty": Tensor(shape: [0, 4], values: []),
  ]

  /// Safetensors bytes with a hand-written header and `dataSize` bytes of data.
  private func file(header: String, dataSize: Int) -> [UInt8] {
    var length = UInt64(header.utf8.count).littleEndian
    return withUnsafeBytes(of: &length) { Array($0) } + Array(header.utf8)
      + [UInt8](repeating: 0, count: dataSize)
  }

  private func assertInvalid(
    _ bytes: [UInt8], _ message: String, file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertThrowsError(
      try SafeTensors(bytes: bytes, source: "m.safetensors"), file: file, line: line
    ) {
      XCTAssertEqual("\($0)", message, file: file, line: line)
    }
  }

  func testWriteThenReadRoundTrips() throws {
    let bytes = SafeTensors.serialize(
      tensors, metadata: ["format": "pt", "note": "a \"quoted\" value"])
    XCTAssertEqual(bytes.count % 4, 0)
    let file = try SafeTensors(bytes: bytes)
    XCTAssertEqual(file.names, ["a.bias", "b.weight", "empty"])
    XCTAssertEqual(file.metadata, ["format": "pt", "note": "a \"quoted\" value"])
    for (name, tensor) in tensors {
      XCTAssertEqual(try file.tensor(name), tensor, name)
    }
    XCTAssertEqual(try file.floatTensors(), tensors)
  }

  func testMemoryMappedFileReadsLikeBytes() throws {
    let url = FileManager.default.temporaryDirectory
      .appendingPathComponent("vdb-safetensors-\(UUID().uuidString).safetensors")
    defer { try? FileManager.default.removeItem(at: url) }
    try Data(SafeTensors.serialize(tensors)).write(to: url)
    let file = try SafeTensors(contentsOf: url)
    XCTAssertEqual(file.source, url.path)
    XCTAssertEqual(try file.floatTensors(), tensors)
  }

  func testMissingFileAndMissingTensorAreNamed() throws {
    XCTAssertThrowsError(
      try SafeTensors(contentsOf: URL(fileURLWithPath: "/nonexistent/m.safetensors"))
    ) {
      XCTAssertEqual("\($0)", "/nonexistent/m.safetensors: file not found")
    }
    let file = try SafeTensors(bytes: SafeTensors.serialize(tensors), source: "m.safetensors")
    XCTAssertThrowsError(try file.tensor("c")) {
      XCTAssertEqual("\($0)", "m.safetensors: tensor 'c' is missing")
    }
  }

  func testTruncatedFilesAreRejected() {
    let bytes = SafeTensors.serialize(tensors)
    assertInvalid(
      Array(bytes.prefix(5)),
      "m.safetensors: invalid safetensors: 5 bytes is too short for the 8-byte header length (truncated?)"
    )
    assertInvalid(
      Array(bytes.prefix(20)),
      "m.safetensors: invalid safetensors: header length \(bytes.count - 8 - 36) exceeds the 12 bytes"
        + " that follow it (truncated?)")
    assertInvalid(
      Array(bytes.dropLast(4)),
      "m.safetensors: tensor 'b.weight': data ends at byte 36 of a data section of 32 bytes"
        + " (file truncated?)")
  }

  func testMalformedHeadersAreRejected() {
    assertInvalid(
      file(header: "{not json", dataSize: 0),
      "m.safetensors: invalid safetensors: header is not valid JSON at line 1, column 2:"
        + " unexpected 'n' where a key (a string) should be")
    assertInvalid(
      file(header: #"{"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#, dataSize: 4),
      "m.safetensors: tensor 'w': unknown dtype 'F33'")
    assertInvalid(
      file(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, dataSize: 4),
      "m.safetensors: tensor 'w': data_offsets [0, 4] hold 4 bytes but shape [2] of F32 needs 8")
    assertInvalid(
      file(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, dataSize: 4),
      "m.safetensors: tensor 'w': data_offsets [4, 0] is not [begin, end] with 0 ≤ begin ≤ end")
    assertInvalid(
      file(
        header: #"{"v":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
          + #""w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, dataSize: 8),
      "m.safetensors: tensor 'w': data overlaps tensor 'v'")
    assertInvalid(
      file(header: #"{"w":{"dtype":"F32","shape":[1]}}"#, dataSize: 4),
      "m.safetensors: tensor 'w': missing field 'data_offsets'")
  }

  /// A header field of the wrong type is named with the JSON type it must be, not in
  /// Swift's words ("Expected to decode String but found number instead").
  func testWrongHeaderTypesAreNamedInJSONWords() {
    assertInvalid(
      file(header: #"{"__metadata__":{"format":5}}"#, dataSize: 0),
      "m.safetensors: invalid safetensors: field '__metadata__.format' must be a string")
    assertInvalid(
      file(header: #"{"__metadata__":[1]}"#, dataSize: 0),
      "m.safetensors: invalid safetensors: field '__metadata__' must be an object")
    assertInvalid(
      file(header: "[1,2,3]", dataSize: 0),
      "m.safetensors: invalid safetensors: header must be an object")
    assertInvalid(
      file(header: #"{"w":[1]}"#, dataSize: 4), "m.safetensors: tensor 'w': entry must be an object"
    )
    assertInvalid(
      file(header: #"{"w":{"dtype":5,"shape":[1],"data_offsets":[0,4]}}"#, dataSize: 4),
      "m.safetensors: tensor 'w': field 'dtype' must be a string")
    assertInvalid(
      file(header: #"{"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#, dataSize: 4),
      "m.safetensors: tensor 'w': field 'shape' must be an array")
    assertInvalid(
      file(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,null]}}"#, dataSize: 4),
      "m.safetensors: tensor 'w': field 'data_offsets.1' is null; it must be an integer")
    assertInvalid(
      file(header: #"{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, dataSize: 4),
      "m.safetensors: tensor 'w': field 'shape.0': 1.5 is out of range or not a whole number")
  }

  /// Sizes that would trap or allocate without bound are errors, before any allocation.
  func testHostileSizesAreRejected() {
    assertInvalid(
      file(header: #"{"w":{"dtype":"F32","shape":[-1,16],"data_offsets":[0,4]}}"#, dataSize: 4),
      "m.safetensors: tensor 'w': shape [-1, 16] has a negative dimension")
    assertInvalid(
      file(
        header: #"{"w":{"dtype":"F32","shape":[9223372036854775807,16],"data_offsets":[0,4]}}"#,
        dataSize: 4),
      "m.safetensors: tensor 'w': shape [9223372036854775807, 16] of F32 is too large to address")
    assertInvalid(
      file(
        header: #"{"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,4]}}"#,
        dataSize: 4),
      "m.safetensors: tensor 'w': shape [2305843009213693952] of F64 is too large to address")
    assertInvalid(
      file(
        header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, dataSize: 4),
      "m.safetensors: tensor 'w': data_offsets [-4, 0] is not [begin, end] with 0 ≤ begin ≤ end")
    // An offset beyond Int64: a decoding error naming the tensor, not a trap.
    let huge = file(
      header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999999999]}}"#,
      dataSize: 4)
    XCTAssertThrowsError(try SafeTensors(bytes: huge, source: "m.safetensors")) {
      XCTAssertTrue("\($0)".hasPrefix("m.safetensors: "), "\($0)")
    }
    // A header length of 2⁶⁴ − 1 in a 16-byte file.
    assertInvalid(
      [UInt8](repeating: 0xFF, count: 8) + [UInt8](repeating: 0x20, count: 8),
      "m.safetensors: invalid safetensors: header length 18446744073709551615 exceeds the 8"
        + " bytes that follow it (truncated?)")
  }

  /// F16 and BF16 (how many models are published) widen to float32 exactly; integer and
  /// F64 tensors are not weights this reads, and are named when asked for.
  func testHalfPrecisionTensorsWidenToFloat32AndOtherDTypesAreNamed() throws {
    // 1, −2.5, 65504 (F16's largest), 2⁻²⁴ (its smallest subnormal), −0, +inf as F16;
    // 1, −2.5, 3.3895e38 (BF16's largest) as BF16.
    let f16: [UInt16] = [0x3C00, 0xC100, 0x7BFF, 0x0001, 0x8000, 0x7C00]
    let bf16: [UInt16] = [0x3F80, 0xC020, 0x7F7F]
    let header =
      #"{"h":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"#
      + #""b":{"dtype":"BF16","shape":[3],"data_offsets":[12,18]},"#
      + #""ids":{"dtype":"I64","shape":[2],"data_offsets":[18,34]},"#
      + #""d":{"dtype":"F64","shape":[1],"data_offsets":[34,42]}}"#
    var bytes = file(header: header, dataSize: 0)
    for half in f16 + bf16 { bytes += [UInt8(half & 0xFF), UInt8(half >> 8)] }
    bytes += [UInt8](repeating: 0, count: 24)
    let file = try SafeTensors(bytes: bytes, source: "m.safetensors")
    let h = try file.tensor("h")
    XCTAssertEqual(h.shape, [2, 3])
    XCTAssertEqual(h.values, [1, -2.5, 65504, 0x1p-24, -0.0, .infinity])
    XCTAssertEqual(h.values[4].sign, .minus)
    XCTAssertEqual(try file.tensor("b").values, [1, -2.5, Float(bitPattern: 0x7F7F_0000)])
    XCTAssertEqual(Set(try file.floatTensors().keys), ["h", "b"])
    XCTAssertEqual(file.entries["ids"]?.dtype, .i64)
    for (name, dtype) in [("ids", "I64"), ("d", "F64")] {
      XCTAssertThrowsError(try file.tensor(name)) {
        XCTAssertEqual(
          "\($0)",
          "m.safetensors: tensor '\(name)' has dtype \(dtype); weights are read from F32, F16 or BF16"
        )
      }
    }
  }
}
