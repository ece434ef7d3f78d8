import Foundation
import Tensor
import XCTest

@testable import Embedding

final class PrecisionTests: XCTestCase {
  /// The float32 encoder's weights at `precision`.
  private static func converted(to precision: SentenceEncoder.Precision) -> Result<
    SentenceEncoder, Error
  > {
    Result {
      let encoder = try Fixtures.encoder.get()
      var settings = encoder.settings
      settings.precision = precision
      return try SentenceEncoder(
        settings: settings, vocabulary: encoder.tokenizer.vocabulary, weights: encoder.weights)
    }
  }
  private static let bfloat16 = converted(to: .bfloat16)
  private static let int8 = converted(to: .int8)
  private static let w8a8 = converted(to: .w8a8)

  /// Every golden text at cosine ≥ `minimum` against float32's reference vectors, with
  /// `format`'s kernel at every level the CPU has above plain C (AMX, AVX-512, AVX-VNNI,
  /// AVX2: as the format has them).
  private func assertGoldenCosines(
    _ encoder: SentenceEncoder, minimum: Double, format: PackedWeights.Format
  ) throws {
    let items = try Fixtures.golden("minilm_reference_embeddings.json")
    defer { PackedWeights.KernelLevel.use(nil, for: format) }
    for level in PackedWeights.KernelLevel.available(format).reversed() where level != .plain {
      PackedWeights.KernelLevel.use(level, for: format)
      let vectors = encoder.embed(items.map(\.text))
      for (item, vector) in zip(items, vectors) {
        let similarity = cosine(vector, item.embedding ?? [])
        XCTAssertGreaterThanOrEqual(
          similarity, minimum, "\(level.name(format)) item \(item.id): \(item.text.prefix(40))")
      }
    }
  }

  /// A single input splits each layer over the cores by columns; batches run whole on one
  /// core: both give the same vectors.
  private func assertBatchedEqualsSingle(_ encoder: SentenceEncoder) {
    let texts = ["short", "", String(repeating: "many words here ", count: 40)]
    for (text, vector) in zip(texts, encoder.embed(texts, batchSize: 2)) {
      let single = encoder.embed(text)
      let largest = zip(vector, single).map { abs($0 - $1) }.max() ?? 0
      XCTAssertLessThan(largest, 1e-5, "\(encoder.precision) '\(text.prefix(20))'")
    }
  }

  /// The quality bar: every golden text at cosine ≥ 0.999 against float32's
  /// reference vectors (bfloat16 measures ≥ 0.9999), on the widest kernel and on the
  /// AVX2 fallback where the CPU has it.
  func testBFloat16GoldenCosines() throws {
    let encoder = try Self.bfloat16.get()
    XCTAssertEqual(encoder.precision, .bfloat16)
    try assertGoldenCosines(encoder, minimum: 0.9999, format: .bfloat16)
  }

  /// int8 (blocks of 32, int16 activations) keeps every golden text at cosine ≥ 0.999,
  /// on AVX-512 VNNI and on the AVX2 path where the CPU has them.
  func testInt8GoldenCosines() throws {
    let encoder = try Self.int8.get()
    XCTAssertEqual(encoder.precision, .int8)
    try assertGoldenCosines(encoder, minimum: 0.999, format: .int8)
  }

  /// w8a8 (rotated, 8-bit weights and activations per block of 32) keeps every golden
  /// text at cosine ≥ 0.999, on AVX-512 VNNI and on the AVX2 path where the CPU has them.
  func testW8A8GoldenCosines() throws {
    let encoder = try Self.w8a8.get()
    XCTAssertEqual(encoder.precision, .w8a8)
    try assertGoldenCosines(encoder, minimum: 0.999, format: .w8a8)
  }

  func testW8A8BatchedEqualsSingle() throws {
    assertBatchedEqualsSingle(try Self.w8a8.get())
  }

  func testBFloat16BatchedEqualsSingle() throws {
    assertBatchedEqualsSingle(try Self.bfloat16.get())
  }

  func testInt8BatchedEqualsSingle() throws {
    assertBatchedEqualsSingle(try Self.int8.get())
  }

  /// Precision is part of the stored settings; settings stored before it existed are
  /// float32, and the weights an encoder hands back are its float32 ones.
  func testPrecisionRoundTripsThroughSettings() throws {
    let float32 = try Fixtures.encoder.get()
    let encoder = try Self.bfloat16.get()
    let json = try JSONEncoder().encode(encoder.settings)
    let decoded = try JSONDecoder().decode(SentenceEncoder.Settings.self, from: json)
    XCTAssertEqual(decoded.precision, .bfloat16)
    XCTAssertEqual(decoded, encoder.settings)
    var old = try JSONSerialization.jsonObject(with: json) as! [String: Any]
    old["precision"] = nil
    let legacy = try JSONDecoder().decode(
      SentenceEncoder.Settings.self, from: try JSONSerialization.data(withJSONObject: old))
    XCTAssertEqual(legacy.precision, .float32)
    let name = "encoder.layer.3.intermediate.dense.weight"
    XCTAssertEqual(encoder.weights[name]?.values, float32.weights[name]?.values)
  }
}
