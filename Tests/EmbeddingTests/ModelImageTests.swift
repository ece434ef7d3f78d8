import Foundation
import XCTest

@testable import Embedding

/// Model images: the weights in the encoder's layout, mapped by later loads.
final class ModelImageTests: XCTestCase {
  var directory: String!

  override func setUpWithError() throws {
    directory = NSTemporaryDirectory() + "vdb-model-image-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  private func mapped(_ encoder: SentenceEncoder, path: String, identity: UInt64 = 7) throws
    -> SentenceEncoder
  {
    try SentenceEncoder(
      settings: encoder.settings, vocabulary: encoder.tokenizer.vocabulary, image: path,
      identity: identity, source: "test")
  }

  func testAMappedImageEmbedsExactlyAsTheEncoderItWasWrittenFrom() throws {
    let encoder = try Fixtures.encoder.get()
    let path = directory + "/model.image"
    try encoder.writeImage(to: path, identity: 7)
    let texts = ["a short query", "", String(repeating: "a longer passage of words ", count: 30)]
    let loaded = try mapped(encoder, path: path)
    XCTAssertEqual(loaded.embed(texts), encoder.embed(texts))
    XCTAssertEqual(loaded.weights, encoder.weights)
    // At another precision the packed weights are made from the mapped ones.
    var settings = encoder.settings
    settings.precision = .int8
    let int8 = try SentenceEncoder(
      settings: settings, vocabulary: encoder.tokenizer.vocabulary, weights: encoder.weights)
    let int8Mapped = try SentenceEncoder(
      settings: settings, vocabulary: encoder.tokenizer.vocabulary, image: path, identity: 7,
      source: "test")
    XCTAssertEqual(int8Mapped.embed(texts), int8.embed(texts))
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["model.image"])
  }

  func testAnUnusableImageIsRefusedSayingWhy() throws {
    let encoder = try Fixtures.encoder.get()
    let path = directory + "/model.image"
    try encoder.writeImage(to: path, identity: 7)
    let sound = try Data(contentsOf: URL(fileURLWithPath: path))
    func assertRefused(
      _ bytes: Data, identity: UInt64 = 7, _ reason: String, line: UInt = #line
    ) throws {
      try bytes.write(to: URL(fileURLWithPath: path))
      XCTAssertThrowsError(try mapped(encoder, path: path, identity: identity), line: line) {
        guard case .invalidImage(let where_, let why) = $0 as? EmbeddingError else {
          return XCTFail("\($0)", line: line)
        }
        XCTAssertEqual(where_, path, line: line)
        XCTAssertTrue(why.contains(reason), "\(why)", line: line)
      }
    }
    var flipped = sound
    flipped[ModelImage.headerBytes + 9 << 20] ^= 0x40  // a bit of a weight in chunk 1
    try assertRefused(flipped, "chunk 1 of 11 fails its checksum")
    try assertRefused(sound.prefix(sound.count - 4096), "its header says")
    try assertRefused(sound + Data(count: 1), "its header says")
    try assertRefused(sound, identity: 8, "holds other weights")
    // Sizes and counts no file could have must not overflow anything.
    var huge = sound
    huge.replaceSubrange(24..<32, with: [UInt8](repeating: 0xff, count: 7) + [0x7f])
    try assertRefused(huge, "its header says")
    var chunked = sound
    chunked.replaceSubrange(32..<40, with: [UInt8](repeating: 0xff, count: 8))
    try assertRefused(chunked, "chunk table")
    var relaid = sound
    relaid[16] ^= 1  // the layout fingerprint
    try assertRefused(relaid, "laid out by another version")
    try assertRefused(Data("not an image".utf8), "no image header")
    try assertRefused(Data(), "no image header")
    try FileManager.default.removeItem(atPath: path)
    XCTAssertThrowsError(try mapped(encoder, path: path)) {
      XCTAssertTrue("\($0)".contains("cannot open"), "\($0)")
    }
    // A symbolic link is not followed.
    try sound.write(to: URL(fileURLWithPath: directory + "/real.image"))
    try FileManager.default.createSymbolicLink(
      atPath: path, withDestinationPath: directory + "/real.image")
    XCTAssertThrowsError(try mapped(encoder, path: path))
  }

  func testAFailedWriteLeavesNothingBehind() throws {
    let encoder = try Fixtures.encoder.get()
    XCTAssertThrowsError(
      try encoder.writeImage(to: directory + "/missing/model.image", identity: 7)
    ) {
      XCTAssertTrue("\($0)".contains("cannot create"), "\($0)")
    }
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), [])
  }
}
