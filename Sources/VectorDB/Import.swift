import Foundation

/// How `DocumentCollection.importJSONL` treats its input.
public struct ImportOptions: Sendable {
  /// Report and skip bad lines instead of stopping at the first one.
  public var skipBadLines = false
  /// Documents per write transaction; `nil` (the default) picks by what the import
  /// does: ``embeddedBatchSize`` when the texts are embedded, ``givenVectorsBatchSize``
  /// when the documents bring their vectors.
  public var batchSize: Int?
  /// The defaults: stop at the first bad line, batches by what the import does.
  public init() {}

  /// Documents a transaction when the import embeds their texts: the encoder's work
  /// (seconds a batch) dwarfs a commit's.
  public static let embeddedBatchSize = 1_000
  /// Documents a transaction when they bring their vectors. Why so many: each commit
  /// writes every index page the batch's links touched (a copy of most of the index
  /// once it is large), so without an encoder the commits dominate in small batches —
  /// 200,000 vectors took 164 s in batches of 256, 105 s of 1,000, 66 s of 10,000
  /// (docs/index.md, "Import batches").
  public static let givenVectorsBatchSize = 10_000
}

/// What an import did.
public struct ImportReport: Codable, Sendable {
  /// A line that was skipped, and why.
  public struct SkippedLine: Codable, Sendable, CustomStringConvertible {
    /// The line's number in the input, from 1 (JSON `line`).
    public var line: Int
    /// Why it was skipped (JSON `reason`).
    public var reason: String
    /// `line N: reason`, as the shell prints it.
    public var description: String { "line \(line): \(reason)" }
  }
  /// Documents written: one per distinct id (JSON `imported`).
  public var imported: Int
  /// Lines not written because a later line of the input has the same id, which
  /// replaces them (JSON `superseded`): the input's last line for an id wins, as if
  /// each line were upserted in turn, without embedding the ones it replaces.
  public var superseded: Int
  /// The lines skipped, in order (JSON `skipped`; empty unless `skipBadLines`).
  public var skipped: [SkippedLine]
  /// Wall-clock seconds the import took (JSON `seconds`).
  public var seconds: Double
}

/// Progress of a long operation: `done` out of `total` units.
public struct OperationProgress: Sendable {
  /// Units done so far.
  public var done: Int
  /// Units in all.
  public var total: Int
  /// `done` out of `total` units.
  public init(done: Int, total: Int) {
    self.done = done
    self.total = total
  }
}

extension DocumentCollection {
  /// Imports a JSON Lines file of documents.
  ///
  /// Each non-blank line is an object with `_id` or `id` (a string, or an integer),
  /// `text` (a string; a line with a `vector` may leave it out, for an empty text),
  /// optionally `title` (a string, prepended to the text with a
  /// space, as BEIR does), `metadata` (an object) and `vector` (an array of numbers, on
  /// every line or none: what `vdb export --include vector` writes; without it the text
  /// is embedded). Other top-level fields are kept
  /// as metadata too (`{"id": "1", "text": "…", "year": 2024}` has metadata
  /// `{"year": 2024}`); a field both there and in `metadata` is an error.
  ///
  ///     {"_id": "4983", "title": "Microstructural development…", "text": "Alterations of…"}
  ///
  /// An id on several lines is written once, from its last good line, as if the lines
  /// were upserted in turn; the lines it replaces are not embedded (`superseded`).
  ///
  /// `progress` is called after each committed batch; if it throws (to cancel), the
  /// import stops with that error and the batches committed so far stay.
  ///
  /// The file is checked whole before anything is written: by default the first bad
  /// line stops the import and nothing from the file is committed; with
  /// `skipBadLines`, bad lines are reported in the result and the rest imported. The
  /// documents are then written in transactions of `batchSize`; if the process dies
  /// meanwhile, the batches written so far stay (re-running the import is safe: it
  /// upserts). The input is read twice, a chunk at a time, never whole: memory does not
  /// grow with it (see ``InputFile`` for pipes and standard input).
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file and line (invalid UTF-8,
  ///   invalid JSON, a missing or mistyped field, a vector the collection cannot hold,
  ///   a line longer than 256 MiB; the file changed while it was read); `.storage` for
  ///   I/O errors.
  @discardableResult
  public func importJSONL(
    _ file: InputFile, options: ImportOptions = ImportOptions(),
    progress: ((OperationProgress) throws -> Void)? = nil
  ) throws -> ImportReport {
    let path = file.source
    let start = Date()
    var skipped: [ImportReport.SkippedLine] = []
    // Lines carry vectors all or none, of one length: the first good line decides. Each
    // vector is checked against the collection here, before anything is written.
    var first: (line: Int, vectorLength: Int?)?
    // Each id's last good line: only that one is written.
    var lastLine: [String: Int] = [:]
    let settings = try database.collectionRecord(name)?.vectors
    try JSONLines.forEach(in: file) { line, bytes in
      do {
        let (document, vector) = try JSONLines.documentAndVector(
          from: bytes, source: path, line: line)
        if let vector, let problem = settings?.problem(with: vector) {
          throw VectorDBError.invalidInput(
            source: path, line: line, reason: "document \"\(document.id)\": \(problem)")
        }
        if let first, first.vectorLength != vector?.count {
          throw VectorDBError.invalidInput(
            source: path, line: line,
            reason: (vector.map { "a vector of \($0.count) floats" } ?? "no \"vector\"")
              + "; line \(first.line) has "
              + (first.vectorLength.map { "a vector of \($0) floats" } ?? "none"))
        }
        first = first ?? (line, vector?.count)
        lastLine[document.id] = line
      } catch let error as VectorDBError where options.skipBadLines {
        if case .invalidInput(_, _, let reason) = error {
          skipped.append(.init(line: line, reason: reason))
        }
      }
    }
    let written = Set(lastLine.values)
    let hasVectors = first?.vectorLength != nil
    var writer = BatchWriter(
      collection: self,
      batchSize: options.batchSize
        ?? (hasVectors ? ImportOptions.givenVectorsBatchSize : ImportOptions.embeddedBatchSize),
      total: written.count, progress: progress)
    let skippedLines = Set(skipped.map(\.line))
    var superseded = 0
    try file.checkUnchanged()
    try JSONLines.forEach(in: file) { line, bytes in
      guard !skippedLines.contains(line) else { return }
      guard written.contains(line) else {
        superseded += 1
        return
      }
      // The line was good when it was checked.
      guard
        let (document, vector) = try? JSONLines.documentAndVector(
          from: bytes, source: path, line: line)
      else { throw file.changed(line: line) }
      try writer.add(document, vector: vector)
    }
    try writer.finish()
    try file.checkUnchanged()
    return ImportReport(
      imported: writer.imported, superseded: superseded, skipped: skipped,
      seconds: Date().timeIntervalSince(start))
  }

  /// Imports the JSON Lines file at `path`: `importJSONL(InputFile(path))`.
  ///
  /// - Throws: as `importJSONL(_:)`, and when the file cannot be read.
  @discardableResult
  public func importJSONL(
    path: String, options: ImportOptions = ImportOptions(),
    progress: ((OperationProgress) throws -> Void)? = nil
  ) throws -> ImportReport {
    try importJSONL(InputFile(path), options: options, progress: progress)
  }

  /// Imports `DIR/corpus.jsonl` of a BEIR data set (see `importJSONL`).
  ///
  /// - Throws: as `importJSONL`.
  @discardableResult
  public func importBEIR(
    directory: String, options: ImportOptions = ImportOptions(),
    progress: ((OperationProgress) throws -> Void)? = nil
  ) throws -> ImportReport {
    try importJSONL(path: directory + "/corpus.jsonl", options: options, progress: progress)
  }
}

/// Writes documents in transactions of `batchSize`, reporting progress after each.
struct BatchWriter {
  let collection: DocumentCollection
  let batchSize: Int
  let total: Int
  let progress: ((OperationProgress) throws -> Void)?
  private var batch: [Document] = []
  private var vectors: [[Float]] = []
  private(set) var imported = 0

  init(
    collection: DocumentCollection, batchSize: Int, total: Int,
    progress: ((OperationProgress) throws -> Void)?
  ) {
    self.collection = collection
    self.batchSize = max(1, batchSize)
    self.total = total
    self.progress = progress
  }

  /// Adds a document (with its vector: all or none of them have one).
  mutating func add(_ document: Document, vector: [Float]? = nil) throws {
    batch.append(document)
    if let vector { vectors.append(vector) }
    if batch.count >= batchSize { try flush() }
  }

  /// Writes what is left.
  mutating func finish() throws {
    if !batch.isEmpty { try flush() }
  }

  private mutating func flush() throws {
    try collection.upsert(batch, vectors: vectors.isEmpty ? nil : vectors)
    imported += batch.count
    batch.removeAll(keepingCapacity: true)
    vectors.removeAll(keepingCapacity: true)
    try progress?(OperationProgress(done: imported, total: total))
  }
}

extension DocumentCollection {
  /// Imports the rows of a `.fvecs` or `.npy` file as documents "`firstID`",
  /// "`firstID` + 1", … with no text, in transactions of `batchSize` rows
  /// (``ImportOptions/givenVectorsBatchSize`` by default). A document
  /// with such an id is replaced (upserted): a second file into the same collection
  /// needs a `firstID` past the first's rows.
  ///
  /// The collection must hold given vectors of the file's dimension (create it with
  /// `CollectionOptions.vectors(dimension:metric:)`). The file is read twice, a batch at
  /// a time, never whole: every row is checked before the first is written.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file (and the row, for one of the
  ///   wrong dimension or with NaN) before anything is written, or saying that the file
  ///   changed while it was read; `.notAvailable` for a collection whose vectors a model
  ///   makes; `.storage`; what `progress` throws.
  @discardableResult
  public func importVectors(
    path: String, batchSize: Int? = nil, firstID: Int = 0,
    progress: ((OperationProgress) throws -> Void)? = nil
  ) throws -> ImportReport {
    try importVectors(
      VectorFile.open(path), batchSize: batchSize, firstID: firstID, progress: progress)
  }

  /// Imports the rows of `file` (from `VectorFile.open`), as
  /// ``importVectors(path:batchSize:firstID:progress:)`` does a path's.
  ///
  ///     // numpy.save(sys.stdout.buffer, vectors) | my-tool
  ///     try collection.importVectors(VectorFile.open(InputFile.standardInput()))
  ///
  /// - Throws: as ``importVectors(path:batchSize:firstID:progress:)``.
  @discardableResult
  public func importVectors(
    _ file: VectorFile.Rows<Float>, batchSize: Int? = nil, firstID: Int = 0,
    progress: ((OperationProgress) throws -> Void)? = nil
  ) throws -> ImportReport {
    let start = Date()
    let path = file.source
    let settings = try indexPlan()?.settings
    if let model = settings?.model {
      throw VectorDBError.notAvailable(
        collection: name,
        reason:
          "embeds text with model \(model): vectors from a file would not compare with its own; import them into a collection of given vectors"
      )
    }
    let batchSize = max(1, batchSize ?? ImportOptions.givenVectorsBatchSize)
    // Every record is read and checked before the first is written, a batch at a time.
    try file.forEachBatch(of: batchSize) { first, rows in
      for (offset, vector) in rows.enumerated() {
        if let problem = settings?.problem(with: vector) {
          throw VectorDBError.invalidInput(
            source: path, line: first + offset + 1, reason: "row \(first + offset): \(problem)")
        }
      }
    }
    try file.checkUnchanged()
    try file.forEachBatch(of: batchSize) { first, rows in
      try upsert(
        (first..<(first + rows.count)).map { Document(id: String(firstID + $0), text: "") },
        vectors: rows)
      try progress?(OperationProgress(done: first + rows.count, total: file.count))
    }
    try file.checkUnchanged()
    return ImportReport(
      imported: file.count, superseded: 0, skipped: [], seconds: Date().timeIntervalSince(start))
  }
}

extension CollectionOptions {
  /// The options of a new collection for the JSON Lines documents in `file`, as
  /// `vdb import` makes one: when the first line brings a vector of *d* floats (as
  /// `vdb export --include vector` writes), a collection of given vectors of *d*
  /// dimensions compared by `metric` (cosine by default) — unless `database`'s default
  /// model makes vectors of *d* dimensions: then its text collection, which takes them
  /// as they are; otherwise (no vectors, or a first line that does not parse, which the
  /// import names) the defaults, compared by `metric` when it is given.
  ///
  /// - Throws: `VectorDBError.invalidInput` when `file` cannot be read; `.storage`.
  public static func forJSONLines(
    _ file: InputFile, in database: Database, metric: Metric? = nil
  ) throws -> CollectionOptions {
    struct Found: Error { var vectorLength: Int? }
    var vectorLength: Int?
    do {
      try JSONLines.forEach(in: file) { line, bytes in
        let vector = try? JSONLines.documentAndVector(
          from: bytes, source: file.source, line: line
        ).vector
        throw Found(vectorLength: vector?.count)
      }
    } catch let found as Found {
      vectorLength = found.vectorLength
    }
    guard let dimension = vectorLength else { return CollectionOptions(metric: metric) }
    return try forVectors(dimension: dimension, in: database, metric: metric)
  }

  /// The options of a new collection for documents that bring vectors of `dimension`
  /// floats (see ``forJSONLines(_:in:metric:)``).
  ///
  /// - Throws: `.storage`.
  public static func forVectors(dimension: Int, in database: Database, metric: Metric? = nil)
    throws -> CollectionOptions
  {
    if let model = try database.defaultModelVersion(),
      try database.model(version: model).dimension == dimension
    {
      return CollectionOptions(metric: metric)
    }
    return .vectors(dimension: dimension, metric: metric ?? .cosine)
  }
}
