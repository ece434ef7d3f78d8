import Foundation
import XCTest

@testable import VectorDB

/// A database's model images: written by the first load, mapped by the next, rewritten
/// when damaged, removed with the last model that has those weights.
final class ModelImageStoreTests: XCTestCase {
  var path: String!

  override func setUpWithError() throws {
    XCTAssertTrue(DefaultModel.isFetched, "run tools/fetch-model.sh first")
    path = NSTemporaryDirectory() + "vdb-model-images-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: path)
  }

  private var images: [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path + "/images")) ?? []).sorted()
  }

  /// The vectors of a few texts from a fresh process's view: a new `Database`, so the
  /// encoder is loaded from storage, not taken from a cache.
  private func vectors(readOnly: Bool = false) throws -> [[Float]] {
    var options = Database.Options()
    options.readOnly = readOnly
    let db = try Database(path: path, options: options)
    let encoder = try db.encoder(version: XCTUnwrap(db.defaultModelVersion()))
    return encoder.embed(["graph index", "a key-value store on a B+tree"])
  }

  func testTheFirstLoadWritesAnImageThatLaterLoadsMap() throws {
    let info = try Database(path: path).importModel(directory: DefaultModel.directory)
    let image = info.weightsHash + ".image"
    let expected = try vectors()
    XCTAssertEqual(images, [image])
    let imagePath = path + "/images/" + image
    let written = try FileManager.default.attributesOfItem(atPath: imagePath)
    XCTAssertEqual(try vectors(), expected)
    XCTAssertEqual(
      try FileManager.default.attributesOfItem(atPath: imagePath)[.modificationDate] as? Date,
      written[.modificationDate] as? Date, "a sound image is mapped, not written again")

    // A damaged image is not used: the load copies the stored weights and writes it again.
    var bytes = try Data(contentsOf: URL(fileURLWithPath: imagePath))
    let sound = bytes
    bytes[bytes.count - 100] ^= 0x10
    try bytes.write(to: URL(fileURLWithPath: imagePath))
    XCTAssertEqual(try vectors(), expected)
    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: imagePath)), sound)
  }

  func testAReadOnlyDatabaseReadsImagesAndWritesNone() throws {
    try Database(path: path).importModel(directory: DefaultModel.directory)
    let expected = try vectors(readOnly: true)
    XCTAssertEqual(images, [])
    XCTAssertEqual(try vectors(), expected)
    XCTAssertEqual(images.count, 1)
    XCTAssertEqual(try vectors(readOnly: true), expected)
  }

  func testPruningRemovesTheImagesNoModelHas() throws {
    let db = try Database(path: path)
    let info = try db.importModel(directory: DefaultModel.directory)
    _ = try vectors()
    let stray = String(repeating: "ab", count: 32) + ".image"
    for name in [stray, info.weightsHash + ".image.123.tmp"] {
      XCTAssertTrue(FileManager.default.createFile(atPath: path + "/images/" + name, contents: nil))
    }
    XCTAssertEqual(try db.pruneModels(), [])
    XCTAssertEqual(images, [info.weightsHash + ".image"])
  }
}
