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
    // The loop left the directory without model.safetensors.
    FileManager.default.createFile(atPath: path("pytorch_model.bin"), contents: Data())
    assertLoadFails(
      "\(path("pytorch_model.bin")): unsupported: PyTorch pickle weights without"
        + " model.safetensors (sentence-transformers writes one:"
        + " SentenceTransformer(DIR).save(NEW_DIR))")
  }

  /// Without `max_seq_length`, texts are cut where sentence-transformers cuts them: at the
  /// smaller of the position table and the tokenizer's `model_max_length`.
  func testTheSequenceLengthFollowsTheTokenizerWithoutMaxSeqLength() throws {
    try FileManager.default.removeItem(atPath: path("sentence_bert_config.json"))
    let config = path("tokenizer_config.json")
    for (limit, length) in [("128", 128), ("1e30", 512), ("null", 512)] {
      try #"{"do_lower_case": true, "model_max_length": \#(limit)}"#.write(
        toFile: config, atomically: true, encoding: .utf8)
      let encoder = try SentenceEncoder(directory: directory)
      XCTAssertEqual(encoder.settings.maxSequenceLength, length, limit)
      XCTAssertEqual(encoder.tokenize(String(repeating: "word ", count: 1000)).count, length)
    }
  }

  /// `config_sentence_transformers.json`'s prompts, under the names sentence-transformers'
  /// `encode_query` and `encode_document` use; stored settings keep them.
  func testPromptsAreReadByTheirNames() throws {
    let file = path("config_sentence_transformers.json")
    let cases: [(String, SentenceEncoder.Prompts)] = [
      (
        #"{"prompts": {"query": "q: ", "document": "d: ", "passage": "p: "}}"#,
        .init(query: "q: ", document: "d: ")
      ),
      (#"{"prompts": {"query": "q: ", "passage": "p: "}}"#, .init(query: "q: ", document: "p: ")),
      (#"{"prompts": {"corpus": "c: ", "query": null}}"#, .init(document: "c: ")),
      (#"{"prompts": {}, "default_prompt_name": null}"#, .init()),
      (#"{"__version__": {"sentence_transformers": "2.0.0"}}"#, .init()),
    ]
    for (json, prompts) in cases {
      try json.write(toFile: file, atomically: true, encoding: .utf8)
      let encoder = try SentenceEncoder(directory: directory)
      XCTAssertEqual(encoder.prompts, prompts, json)
      XCTAssertEqual(encoder.prompted(["a"], as: .query), [prompts.query + "a"])
      XCTAssertEqual(encoder.prompted(["a"], as: .document), [prompts.document + "a"])
      let stored = try JSONDecoder().decode(
        SentenceEncoder.Settings.self, from: JSONEncoder().encode(encoder.settings))
      XCTAssertEqual(stored.prompts, prompts)
    }
    try #"{"prompts": ["query: "]}"#.write(toFile: file, atomically: true, encoding: .utf8)
    assertLoadFails("\(file): field 'prompts' must be an object")
    // Pooling that leaves the prompt out is not what vdb computes.
    try #"{"prompts": {"query": "q: "}}"#.write(toFile: file, atomically: true, encoding: .utf8)
    let pooling = path("1_Pooling/config.json")
    try #"{"pooling_mode_mean_tokens": true, "include_prompt": false}"#.write(
      toFile: pooling, atomically: true, encoding: .utf8)
    assertLoadFails(
      "\(pooling): unsupported: include_prompt false (pooling that leaves the prompt's tokens out)")
    try #"{"prompts": {}}"#.write(toFile: file, atomically: true, encoding: .utf8)
    XCTAssertNoThrow(try SentenceEncoder(directory: directory), "no prompt to leave out")
  }

  func testSimilarityIsReadByItsName() throws {
    let file = path("config_sentence_transformers.json")
    let cases: [(String, SentenceEncoder.Similarity)] = [
      (#"{"similarity_fn_name": "dot"}"#, .dot),
      (#"{"similarity_fn_name": "euclidean", "prompts": {}}"#, .euclidean),
      (#"{"similarity_fn_name": "cosine"}"#, .cosine),
      (#"{"similarity_fn_name": null}"#, .cosine),
      (#"{"prompts": {"query": "q: "}}"#, .cosine),
    ]
    for (json, similarity) in cases {
      try json.write(toFile: file, atomically: true, encoding: .utf8)
      let encoder = try SentenceEncoder(directory: directory)
      XCTAssertEqual(encoder.similarity, similarity, json)
      let encoded = try JSONEncoder().encode(encoder.settings)
      XCTAssertEqual(
        try JSONDecoder().decode(SentenceEncoder.Settings.self, from: encoded).similarity,
        similarity)
      // Cosine is not stored: settings stored before similarity was read are the same.
      XCTAssertEqual(
        String(decoding: encoded, as: UTF8.self).contains("similarity"), similarity != .cosine)
    }
    try #"{"similarity_fn_name": "manhattan"}"#.write(
      toFile: file, atomically: true, encoding: .utf8)
    assertLoadFails(
      "\(file): unsupported: similarity_fn_name 'manhattan' (vdb compares by cosine, dot or"
        + " euclidean)")
    try #"{"similarity_fn_name": 1}"#.write(toFile: file, atomically: true, encoding: .utf8)
    assertLoadFails("\(file): field 'similarity_fn_name' must be a string")
  }

  /// A directory as `transformers` 5 saves it: no `vocab.txt`, the vocabulary and the
  /// tokenizer's options in `tokenizer.json` (what the fast tokenizer reads). It
  /// tokenizes and embeds as the same model with `vocab.txt` does.
  func testTokenizerJSONStandsInForVocabTxt() throws {
    let texts = [
      "Hello World, naïve café 東京!", "[MASK] unaffable tokenizers'", "", "a\u{0}b\tc  d",
      String(repeating: "x", count: 150),
    ]
    let reference = try SentenceEncoder(directory: directory)
    try FileManager.default.removeItem(atPath: path("vocab.txt"))
    try FileManager.default.copyItem(
      at: Fixtures.modelDirectory.appendingPathComponent("tokenizer.json"),
      to: directory.appendingPathComponent("tokenizer.json"))
    let encoder = try SentenceEncoder(directory: directory)
    XCTAssertEqual(encoder.tokenizer.vocabulary, reference.tokenizer.vocabulary)
    XCTAssertEqual(encoder.settings.tokenizer, reference.settings.tokenizer)
    for text in texts {
      XCTAssertEqual(encoder.tokenize(text), reference.tokenize(text), text)
    }
    XCTAssertEqual(encoder.embed(texts), reference.embed(texts))
  }

  /// A `tokenizer.json` that would tokenize otherwise than BERT's WordPiece is refused
  /// by name, as is a vocabulary whose ids are not 0…n−1 (they index an array).
  func testTokenizerJSONThatIsNotBertsIsRefused() throws {
    try FileManager.default.removeItem(atPath: path("vocab.txt"))
    let file = path("tokenizer.json")
    let original =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: Fixtures.modelDirectory.appendingPathComponent("tokenizer.json")))
      as! [String: Any]
    func write(_ edit: (inout [String: Any]) -> Void) throws {
      var object = original
      edit(&object)
      try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: file))
    }
    let suffix = " (vdb runs BERT's WordPiece tokenizer)"
    let cases: [(String, (inout [String: Any]) -> Void)] = [
      ("unsupported: model type 'BPE'" + suffix, { $0["model"] = ["type": "BPE", "vocab": [:]] }),
      ("unsupported: normalizer none" + suffix, { $0["normalizer"] = NSNull() }),
      (
        "unsupported: normalizer 'NFKC'" + suffix,
        { $0["normalizer"] = ["type": "NFKC"] }
      ),
      (
        "unsupported: pre_tokenizer 'Whitespace'" + suffix,
        { $0["pre_tokenizer"] = ["type": "Whitespace"] }
      ),
      (
        "unsupported: post_processor none other than [CLS] text [SEP]" + suffix,
        { $0["post_processor"] = NSNull() }
      ),
      (
        "missing field 'model.vocab'", { $0["model"] = ["type": "WordPiece"] }
      ),
      (
        #"token "b" has id 5: the 2 ids must be 0…1, each once"#,
        { $0["model"] = ["type": "WordPiece", "vocab": ["a": 0, "b": 5]] }
      ),
      (
        #"token "b" has id -1: the 2 ids must be 0…1, each once"#,
        { $0["model"] = ["type": "WordPiece", "vocab": ["a": 0, "b": -1]] }
      ),
    ]
    for (message, edit) in cases {
      try write(edit)
      XCTAssertThrowsError(try SentenceEncoder(directory: directory), message) {
        XCTAssertTrue("\($0)".hasPrefix(file + ": "), "\($0)")
        XCTAssertTrue("\($0)".contains(message), "\($0) does not say \(message)")
      }
    }
    // Two tokens with one id (JSON objects have no order, so either may be named).
    try write { $0["model"] = ["type": "WordPiece", "vocab": ["a": 0, "b": 0]] }
    XCTAssertThrowsError(try SentenceEncoder(directory: directory)) {
      XCTAssertTrue("\($0)".contains("has id 0: the 2 ids must be 0…1, each once"), "\($0)")
    }
    // A BertProcessing post-processor names the tokens around a text.
    try write {
      $0["post_processor"] = [
        "type": "BertProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101],
      ]
    }
    XCTAssertEqual(try SentenceEncoder(directory: directory).tokenize("hi").first, 101)
  }

  func testAnotherModelTypeIsRejected() throws {
    try editConfig { $0["model_type"] = "roberta" }
    assertLoadFails(
      "\(path("config.json")): unsupported: model_type 'roberta' (vdb runs BERT encoders)")
    try editConfig { $0.removeValue(forKey: "model_type") }
    XCTAssertNoThrow(try SentenceEncoder(directory: directory), "early BERT configs have none")
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

  /// Older `transformers` releases wrote special tokens as `AddedToken` objects; the
  /// token is their `content`.
  func testSpecialTokensAsAddedTokenObjectsAreRead() throws {
    let config = path("tokenizer_config.json")
    let plain = try SentenceEncoder(directory: directory).tokenize("Special tokens.")
    func token(_ text: String) -> String {
      #"{"__type": "AddedToken", "content": "\#(text)", "lstrip": false, "rstrip": false}"#
    }
    let tokens = [("unk_token", "[UNK]"), ("cls_token", "[CLS]"), ("sep_token", "[SEP]")]
    try ("{" + tokens.map { #""\#($0)": \#(token($1))"# }.joined(separator: ", ") + "}")
      .write(toFile: config, atomically: true, encoding: .utf8)
    XCTAssertEqual(try SentenceEncoder(directory: directory).tokenize("Special tokens."), plain)
    try #"{"cls_token": \#(token("[NOPE]"))}"#.write(
      toFile: config, atomically: true, encoding: .utf8)
    assertLoadFails("\(path("vocab.txt")): invalid vocabulary: special token '[NOPE]' is missing")
    for (value, message) in [
      (#"{"__type": "AddedToken"}"#, "missing field 'cls_token.content'"),
      ("5", "field 'cls_token' must be a string"),
    ] {
      try #"{"cls_token": \#(value)}"#.write(toFile: config, atomically: true, encoding: .utf8)
      assertLoadFails("\(config): \(message)")
    }
  }

  /// A checkpoint published in float16 (as many are) loads, its weights widened: its
  /// vectors are the float32 model's to within float16's rounding of the weights.
  func testAFloat16CheckpointLoads() throws {
    let weights = try SafeTensors(
      contentsOf: Fixtures.modelDirectory.appendingPathComponent("model.safetensors")
    ).floatTensors()
    var header: [String] = []
    var data: [UInt8] = []
    for (name, tensor) in weights.sorted(by: { $0.key < $1.key }) {
      header.append(
        #""\#(name)":{"dtype":"F16","shape":\#(tensor.shape),"#
          + #""data_offsets":[\#(data.count),\#(data.count + 2 * tensor.values.count)]}"#)
      for value in tensor.values {
        let bits = Float16(value).bitPattern
        data += [UInt8(bits & 0xFF), UInt8(bits >> 8)]
      }
    }
    let json = Array(("{" + header.joined(separator: ",") + "}").utf8)
    var length = UInt64(json.count).littleEndian
    let bytes = withUnsafeBytes(of: &length) { Array($0) } + json + data
    let file = directory.appendingPathComponent("model.safetensors")
    try FileManager.default.removeItem(at: file)
    try Data(bytes).write(to: file)
    let texts = try Fixtures.golden("minilm_reference_embeddings.json").prefix(8).map(\.text)
    let half = try SentenceEncoder(directory: directory).embed(texts)
    let full = try Fixtures.encoder.get().embed(texts)
    for (a, b) in zip(half, full) { XCTAssertGreaterThan(cosine(a, b), 0.999) }
  }

  /// Pooling modes and modules vdb does not run would change every vector: each is refused
  /// by name, never skipped.
  func testPoolingAndModulesThatWouldChangeTheVectorsAreRefused() throws {
    let pooling = path("1_Pooling/config.json")
    func setPooling(_ modes: [String: Bool]) throws {
      let fields = modes.map { #""pooling_mode_\#($0)": \#($1)"# }.joined(separator: ", ")
      try #"{"word_embedding_dimension": 384, \#(fields)}"#.write(
        toFile: pooling, atomically: true, encoding: .utf8)
    }
    let mean = try SentenceEncoder(directory: directory).embed("Pooling.")
    try setPooling(["cls_token": true, "mean_tokens": false, "lasttoken": false])
    let cls = try SentenceEncoder(directory: directory).embed("Pooling.")
    XCTAssertLessThan(cosine(mean, cls), 0.99, "the CLS token's vector, not the mean")
    for (modes, feature) in [
      (["mean_tokens": true, "lasttoken": true], "pooling by lasttoken + mean"),
      (["mean_tokens": false, "weightedmean_tokens": true], "pooling by weightedmean"),
      (["mean_tokens": false, "cls_token": false], "no pooling mode set"),
    ] {
      try setPooling(modes)
      assertLoadFails("\(pooling): unsupported: \(feature) (vdb pools by mean or by CLS token)")
    }
    // As sentence-transformers 5.3 and later write it: one `pooling_mode`, a name or a list
    // (it wins over the older flags).
    for (mode, expected) in [
      (#""cls""#, cls), (#"["mean"]"#, mean), (#""mean", "pooling_mode_cls_token": true"#, mean),
    ] {
      try #"{"embedding_dimension": 384, "pooling_mode": \#(mode), "include_prompt": true}"#.write(
        toFile: pooling, atomically: true, encoding: .utf8)
      XCTAssertEqual(try SentenceEncoder(directory: directory).embed("Pooling."), expected, mode)
    }
    for (mode, message) in [
      (
        #"["mean", "max"]"#,
        "unsupported: pooling by max + mean (vdb pools by mean or by CLS token)"
      ),
      (#""lasttoken""#, "unsupported: pooling by lasttoken (vdb pools by mean or by CLS token)"),
      ("5", "field 'pooling_mode' must be an array"),
    ] {
      try #"{"pooling_mode": \#(mode)}"#.write(toFile: pooling, atomically: true, encoding: .utf8)
      assertLoadFails("\(pooling): \(message)")
    }
    try setPooling(["mean_tokens": true])
    let modules = path("modules.json")
    let module = { (type: String) in #"{"type": "sentence_transformers.models.\#(type)"}"# }
    try
      "[\(module("Transformer")), \(module("Pooling")), \(module("Dense")), \(module("Normalize"))]"
      .write(toFile: modules, atomically: true, encoding: .utf8)
    assertLoadFails(
      "\(modules): unsupported: module sentence_transformers.models.Dense (vdb runs"
        + " Transformer, Pooling and Normalize)")
    try "[\(module("Transformer")), \(module("Pooling"))]".write(
      toFile: modules, atomically: true, encoding: .utf8)
    let raw = try SentenceEncoder(directory: directory).embed("Pooling.")
    XCTAssertGreaterThan(cosine(raw, mean), 0.9999)
    XCTAssertGreaterThan(abs(raw.reduce(0) { $0 + $1 * $1 } - 1), 0.01, "not normalised")
  }

  /// A field of the wrong type is named with the JSON type it must be ("an integer"),
  /// not Swift's ("Int", "Dictionary<String, Any>").
  func testWrongFieldTypesAreNamedInJSONWords() throws {
    let config = path("config.json")
    let cases: [(field: String, value: Any, message: String)] = [
      ("hidden_size", "384", "field 'hidden_size' must be an integer"),
      ("hidden_size", true, "field 'hidden_size' must be an integer"),
      ("layer_norm_eps", "1e-12", "field 'layer_norm_eps' must be a number"),
      ("hidden_act", 5, "field 'hidden_act' must be a string"),
      ("hidden_size", NSNull(), "field 'hidden_size' is null; it must be an integer"),
      ("num_hidden_layers", [6], "field 'num_hidden_layers' must be an integer"),
    ]
    let original = try Data(contentsOf: URL(fileURLWithPath: config))
    for (field, value, message) in cases {
      try original.write(to: URL(fileURLWithPath: config))
      try editConfig { $0[field] = value }
      assertLoadFails("\(config): \(message)")
    }
    try "[1,2]".write(toFile: config, atomically: true, encoding: .utf8)
    assertLoadFails("\(config): the top-level value must be an object")
    try original.write(to: URL(fileURLWithPath: config))
    let modules = path("modules.json")
    try #"{"type": "x"}"#.write(toFile: modules, atomically: true, encoding: .utf8)
    assertLoadFails("\(modules): the top-level value must be an array")
    try #"[{"type": 5}]"#.write(toFile: modules, atomically: true, encoding: .utf8)
    assertLoadFails("\(modules): field '0.type' must be a string")
  }

  /// Text that is not JSON is placed by line and column, in words of ours; a number too
  /// large for any reader (1e400) is such a place.
  func testInvalidJSONIsPlacedByLineAndColumn() throws {
    let config = directory.appendingPathComponent("config.json")
    let original = try String(contentsOf: config, encoding: .utf8)
    let edited = original.replacingOccurrences(
      of: "\"layer_norm_eps\": 1e-12", with: "\"layer_norm_eps\": 1e400")
    XCTAssertNotEqual(edited, original)
    try edited.write(to: config, atomically: true, encoding: .utf8)
    let lines = edited.split(separator: "\n", omittingEmptySubsequences: false)
    let line = lines.firstIndex { $0.contains("1e400") }!
    let column = String(lines[line]).components(separatedBy: "1e400")[0].utf8.count
    assertLoadFails(
      "\(config.path): not valid JSON at line \(line + 1), column \(column + 1): the number"
        + " 1e400 is beyond the range of a double")
    for (text, message) in [
      ("{\"hidden_size\": }", "line 1, column 17: unexpected '}' where a value should be"),
      (
        "{\n  \"a\": 1,\n  \"b\": tru\n}",
        "line 3, column 8: unexpected 't' where a value should be"
      ),
      ("{\"a\": 1", "line 1, column 8: unexpected end of text"),
      ("{\"a\": \"x\\u12\"}", "line 1, column 9: \\u is not followed by 4 hex digits"),
      ("{\"a\": 1} x", "line 1, column 10: unexpected 'x' after the end of the value"),
      ("{\"a\": [1 2]}", "line 1, column 10: unexpected '2' where ',' or ']' should be"),
      (
        String(repeating: "[", count: 600),
        "line 1, column 513: containers nest deeper than 512 levels"
      ),
    ] {
      try text.write(to: config, atomically: true, encoding: .utf8)
      assertLoadFails("\(config.path): not valid JSON at \(message)")
    }
  }

  /// A directory where a file should be is said to be one, not "NSCocoaErrorDomain
  /// error 256" (or "No such device" for the mapped weights).
  func testADirectoryInPlaceOfAFileIsNamed() throws {
    for name in ["config.json", "vocab.txt", "model.safetensors", "sentence_bert_config.json"] {
      try setUpWithError()
      try FileManager.default.removeItem(atPath: path(name))
      try FileManager.default.createDirectory(
        atPath: path(name), withIntermediateDirectories: false)
      assertLoadFails("\(path(name)): cannot read: it is a directory, not a file")
    }
  }

  /// A max_seq_length the position table cannot hold is blamed on the file that sets
  /// it, not on model.safetensors.
  func testMaxSequenceLengthNamesSentenceBertConfig() throws {
    let sentence = path("sentence_bert_config.json")
    for length in [0, -5, 1_000_000] {
      try "{\"max_seq_length\": \(length)}".write(
        toFile: sentence, atomically: true, encoding: .utf8)
      assertLoadFails(
        "\(sentence): max_seq_length \(length) is outside 2...512 (max_position_embeddings in"
          + " config.json)")
    }
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

  /// Finite weights whose products overflow float32 (as in a model damaged by scaling)
  /// are refused when the directory is read, naming the weights file and the probe text.
  func testWeightsThatOverflowAreRefused() throws {
    var weights = try Fixtures.encoder.get().weights
    let name = "encoder.layer.0.attention.self.query.weight"
    let query = weights[name]!
    weights[name] = Tensor(
      shape: query.shape, values: [Float](repeating: 3e38, count: query.values.count))
    let url = directory.appendingPathComponent("model.safetensors")
    try FileManager.default.removeItem(at: url)
    try Data(SafeTensors.serialize(weights)).write(to: url)
    assertLoadFails(
      "\(url.path): the model's vector of the text \"\" holds NaN or infinite values"
        + " (its arithmetic overflows float32)")
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
