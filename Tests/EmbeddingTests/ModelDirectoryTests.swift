import Embedding
import Foundation
import Tensor
import XCTest

/// Bad model directories: each error names the file and the problem.
final class ModelDirectoryTests: XCTestCase {
  private var directory: URL!

  /// A copy of the real model directory (the weights file is linked, not copied).
  override func setUpWithError() throws {
    let source = Fixtures.modelDirectory
    guard FileManager.default.fileExists(atPath: source.path) else {
      throw FixtureError("model not found at \(source.path): run tools/fetch-model.sh first")
    }
    directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("vdb-model-\(UUID().uuidString)")
    try FileManager.default.createDirectory(
      at: directory.appendingPathComponent("1_Pooling"), withIntermediateDirectories: true)
    for name in [
      "config.json", "vocab.txt", "tokenizer_config.json", "sentence_bert_config.json",
      "1_Pooling/config.json", "modules.json",
    ] {
      try FileManager.default.copyItem(
        at: source.appendingPathComponent(name), to: directory.appendingPathComponent(name))
    }
    try FileManager.default.createSymbolicLink(
      at: directory.appendingPathComponent("model.safetensors"),
      withDestinationURL: source.appendingPathComponent("model.safetensors"))
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(at: directory)
  }

  private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

  private func editConfig(_ edit: (inout [String: Any]) -> Void) throws {
    let url = directory.appendingPathComponent("config.json")
    var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    edit(&object)
    try JSONSerialization.data(withJSONObject: object).write(to: url)
  }

  private func assertLoadFails(_ message: String, line: UInt = #line) {
    XCTAssertThrowsError(try SentenceEncoder(directory: directory), line: line) {
      XCTAssertEqual("\($0)", message, line: line)
    }
  }

  func testMissingFilesAreNamed() throws {
    for name in ["config.json", "vocab.txt", "model.safetensors"] {
      try setUpWithError()
      try FileManager.default.removeItem(atPath: path(name))
      assertLoadFails("\(path(name)): file not found")
    }
  }

  func testUnknownActivationIsRejected() throws {
    try editConfig { $0["hidden_act"] = "gelu_new" }
    assertLoadFails(
      "\(path("config.json")): unsupported: hidden_act 'gelu_new' (only \"gelu\", the exact erf"
        + " form, is implemented)")
  }

  func testMalformedConfigIsRejected() throws {
    try editConfig { $0["num_attention_heads"] = 7 }
    assertLoadFails(
      "\(path("config.json")): hidden_size 384 is not a multiple of num_attention_heads 7")
    try editConfig { $0.removeValue(forKey: "hidden_size") }
    assertLoadFails("\(path("config.json")): missing field 'hidden_size'")
  }

  /// Foundation's decoder calls a number that does not fit its field "not valid JSON";
  /// the message names the field instead, and keeps "not valid JSON" for text that is not.
  func testANumberThatDoesNotFitNamesItsField() throws {
    let config = directory.appendingPathComponent("config.json")
    let original = try String(contentsOf: config, encoding: .utf8)
    for value in ["1e30", "3.5", "99999999999999999999"] {
      try original.replacingOccurrences(
        of: "\"hidden_size\": 384", with: "\"hidden_size\": \(value)"
      )
      .write(to: config, atomically: true, encoding: .utf8)
      XCTAssertThrowsError(try SentenceEncoder(directory: directory)) {
        XCTAssertTrue("\($0)".hasPrefix("\(config.path): field 'hidden_size': "), "\($0)")
        XCTAssertTrue("\($0)".hasSuffix(" is out of range or not a whole number"), "\($0)")
      }
    }
    try original.replacingOccurrences(
      of: "\"layer_norm_eps\": 1e-12", with: "\"layer_norm_eps\": 1e300"
    )
    .write(to: config, atomically: true, encoding: .utf8)
    assertLoadFails(
      "\(path("config.json")): field 'layer_norm_eps': 1e+300 is out of range or not a whole number"
    )
    try "{\"hidden_size\": }".write(to: config, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try SentenceEncoder(directory: directory)) {
      XCTAssertTrue("\($0)".hasPrefix("\(config.path): not valid JSON"), "\($0)")
    }
    try original.write(to: config, atomically: true, encoding: .utf8)
    let sentence = directory.appendingPathComponent("sentence_bert_config.json")
    try "{\"max_seq_length\": 256.5, \"do_lower_case\": false}"
      .write(to: sentence, atomically: true, encoding: .utf8)
    assertLoadFails(
      "\(sentence.path): field 'max_seq_length': 256.5 is out of range or not a whole number")
  }

  func testWrongShapeIsNamed() throws {
    try editConfig { $0["intermediate_size"] = 1024 }
    assertLoadFails(
      "\(path("model.safetensors")): tensor 'encoder.layer.0.intermediate.dense.weight' has"
        + " shape [1536, 384], expected [1024, 384]")
  }

  func testTruncatedWeightsAreRejected() throws {
    let url = directory.appendingPathComponent("model.safetensors")
    let bytes = try Data(contentsOf: url.resolvingSymlinksInPath())
    try FileManager.default.removeItem(at: url)
    try bytes.prefix(bytes.count / 2).write(to: url)
    XCTAssertThrowsError(try SentenceEncoder(directory: directory)) {
      let message = "\($0)"
      XCTAssertTrue(message.hasPrefix("\(url.path): tensor '"), message)
      XCTAssertTrue(message.hasSuffix("(file truncated?)"), message)
    }
  }

  /// A config.json claiming 10⁹ layers fails on the layer count, before any table the
  /// size of the claim is built; so do more or fewer layers than the weights hold.
  func testLayerCountIsCheckedAgainstTheWeights() throws {
    for layers in [1_000_000_000, 7, 5] {
      try editConfig { $0["num_hidden_layers"] = layers }
      assertLoadFails(
        "\(path("model.safetensors")): config.json says num_hidden_layers \(layers) but the"
          + " weights hold 6 layers (encoder.layer.N tensors)")
    }
  }

  /// Weights with a NaN or an infinity are refused, naming the tensor — in a small tensor,
  /// and in the last piece of the word embeddings (large enough to be copied on every core).
  func testNonFiniteWeightsAreRefused() throws {
    let encoder = try Fixtures.encoder.get()
    let words = encoder.weights["embeddings.word_embeddings.weight"]!.values.count
    let cases = [
      ("encoder.layer.2.attention.self.key.weight", 17),
      ("embeddings.word_embeddings.weight", words - 3),
    ]
    for bad in [Float.nan, .infinity, -.infinity] {
      for (name, index) in cases {
        var weights = encoder.weights
        var values = weights[name]!.values
        values[index] = bad
        weights[name] = Tensor(shape: weights[name]!.shape, values: values)
        let message = "stored: tensor '\(name)' holds a NaN or infinite value (at index \(index))"
        XCTAssertThrowsError(
          try SentenceEncoder(
            config: encoder.config, tokenizer: encoder.tokenizer, weights: weights, source: "stored"
          )
        ) { XCTAssertEqual("\($0)", message) }
        // The same, read in place from safetensors bytes (as a stored model is).
        XCTAssertThrowsError(
          try SentenceEncoder(
            settings: encoder.settings, vocabulary: encoder.tokenizer.vocabulary,
            weights: SafeTensors(bytes: SafeTensors.serialize(weights)), source: "stored")
        ) { XCTAssertEqual("\($0)", message) }
      }
    }
  }

  /// An encoder built from safetensors bytes where they lie — 4-byte aligned, read in
  /// place, or not, copied first — computes exactly what the one built from tensors does.
  func testEncoderFromBytesInPlaceOrMisalignedEqualsFromTensors() throws {
    let encoder = try Fixtures.encoder.get()
    let bytes = SafeTensors.serialize(encoder.weights)
    let texts = ["What is HNSW?", "LMDB is a B+tree key-value store"]
    let expected = encoder.embed(texts)
    for shift in [0, 1, 2] {
      let raw = UnsafeMutableRawBufferPointer.allocate(
        byteCount: bytes.count + shift, alignment: 16)
      defer { raw.deallocate() }
      bytes.withUnsafeBytes {
        raw.baseAddress!.advanced(by: shift).copyMemory(
          from: $0.baseAddress!, byteCount: bytes.count)
      }
      let rebuilt = try SafeTensors.withBytes(
        UnsafeRawBufferPointer(rebasing: raw[shift...]), source: "shifted by \(shift)"
      ) {
        try SentenceEncoder(
          settings: encoder.settings, vocabulary: encoder.tokenizer.vocabulary, weights: $0)
      }
      XCTAssertEqual(rebuilt.embed(texts), expected, "shifted by \(shift) bytes")
    }
  }

  func testMissingTensorIsNamed() throws {
    let encoder = try Fixtures.encoder.get()
    var weights = encoder.weights
    weights["encoder.layer.3.output.dense.bias"] = nil
    XCTAssertThrowsError(
      try SentenceEncoder(
        config: encoder.config, tokenizer: encoder.tokenizer, weights: weights, source: "stored")
    ) {
      XCTAssertEqual("\($0)", "stored: tensor 'encoder.layer.3.output.dense.bias' is missing")
    }
  }
}
