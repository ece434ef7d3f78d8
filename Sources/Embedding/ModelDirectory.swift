import Foundation

extension SentenceEncoder {
  /// The files of a sentence-transformers model directory holding this encoder, by
  /// relative path: `config.json`, `model.safetensors`, `vocab.txt`,
  /// `tokenizer_config.json`, `special_tokens_map.json`, `sentence_bert_config.json`,
  /// `modules.json`, `1_Pooling/config.json`, and `config_sentence_transformers.json`
  /// for a model with prompts or a similarity other than cosine.
  ///
  /// `SentenceEncoder(directory:)` and Python's `SentenceTransformer(directory)` both
  /// load the directory back and embed as this encoder does.
  ///
  /// ```swift
  /// for (name, bytes) in try encoder.modelDirectoryFiles() {
  ///   try Data(bytes).write(to: directory.appendingPathComponent(name))
  /// }
  /// ```
  ///
  /// - Throws: ``EmbeddingError/unsupported(source:feature:)`` when the tokenizer's
  ///   options have no equivalent in Hugging Face's `BertTokenizer` (a continuation
  ///   prefix other than `##`, a word-length limit other than 100).
  public func modelDirectoryFiles() throws -> [String: [UInt8]] {
    let options = tokenizer.options
    guard options.continuationPrefix == "##", options.maxCharactersPerWord == 100 else {
      throw EmbeddingError.unsupported(
        source: "model export",
        feature: "a tokenizer with continuation prefix '\(options.continuationPrefix)' and"
          + " \(options.maxCharactersPerWord) characters a word (BertTokenizer has '##', 100)")
    }
    let c = config
    // The Float's shortest decimal (1e-12), not its binary value widened (9.99…e-13).
    let epsilon = Double(c.layerNormEpsilon.description) ?? Double(c.layerNormEpsilon)
    let specials = Dictionary(
      uniqueKeysWithValues: [
        ("unk_token", options.unknownToken), ("cls_token", options.classifierToken),
        ("sep_token", options.separatorToken), ("pad_token", "[PAD]"), ("mask_token", "[MASK]"),
      ].filter { tokenizer.id(of: $0.1) != nil })
    var tokenizerConfig: [String: Any] = specials
    tokenizerConfig["do_lower_case"] = options.lowercase
    tokenizerConfig["strip_accents"] = options.stripAccents ?? NSNull()
    tokenizerConfig["tokenize_chinese_chars"] = options.splitCJKCharacters
    tokenizerConfig["tokenizer_class"] = "BertTokenizer"
    tokenizerConfig["model_max_length"] = c.maxPositions

    var modules: [[String: Any]] = [
      ["idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"],
      ["idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"],
    ]
    if normalizesOutput {
      modules.append([
        "idx": 2, "name": "2", "path": "2_Normalize",
        "type": "sentence_transformers.models.Normalize",
      ])
    }
    let files: [String: Any] = [
      "config.json": [
        "architectures": ["BertModel"], "model_type": "bert",
        "hidden_size": c.hiddenSize, "num_hidden_layers": c.layerCount,
        "num_attention_heads": c.headCount, "intermediate_size": c.intermediateSize,
        "vocab_size": c.vocabularySize, "max_position_embeddings": c.maxPositions,
        "type_vocab_size": c.typeVocabularySize, "layer_norm_eps": epsilon,
        "hidden_act": c.hiddenActivation, "position_embedding_type": c.positionEmbeddingType,
        "pad_token_id": tokenizer.id(of: "[PAD]") ?? 0,
      ],
      "tokenizer_config.json": tokenizerConfig,
      "special_tokens_map.json": specials,
      "sentence_bert_config.json": ["max_seq_length": maxSequenceLength, "do_lower_case": false],
      "modules.json": modules,
      "1_Pooling/config.json": [
        "word_embedding_dimension": dimension,
        "pooling_mode_cls_token": pooling == .cls, "pooling_mode_mean_tokens": pooling == .mean,
        "pooling_mode_max_tokens": false, "pooling_mode_mean_sqrt_len_tokens": false,
      ],
    ]
    var result: [String: [UInt8]] = [:]
    var allFiles = files
    if !prompts.isEmpty || similarity != .cosine {
      var sentenceTransformers: [String: Any] = ["similarity_fn_name": similarity.rawValue]
      if !prompts.isEmpty {
        sentenceTransformers["prompts"] = ["query": prompts.query, "document": prompts.document]
        sentenceTransformers["default_prompt_name"] = NSNull()
      }
      allFiles["config_sentence_transformers.json"] = sentenceTransformers
    }
    for (name, value) in allFiles {
      // Sorted keys: an export is byte-for-byte repeatable.
      let json = try JSONSerialization.data(
        withJSONObject: value, options: [.prettyPrinted, .sortedKeys])
      result[name] = Array(json) + [UInt8(ascii: "\n")]
    }
    result["vocab.txt"] = Array((tokenizer.vocabulary.joined(separator: "\n") + "\n").utf8)
    // Hugging Face refuses safetensors files without a "format" entry.
    result["model.safetensors"] = SafeTensors.serialize(weights, metadata: ["format": "pt"])
    return result
  }
}
