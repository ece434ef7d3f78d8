import Foundation

/// Reads a matrix of float32 rows from a `.fvecs` (TEXMEX: per row an Int32 dimension,
/// then the floats, little-endian) or a `.npy` file (NumPy format 1.0–3.0, 2-D, dtype
/// `<f4` or `<f8`, C or Fortran order: what `numpy.save` writes for a float matrix, a
/// float64 one rounded to float32); and, for the project's benchmarks and tests, the `.ivecs`
/// ground truth of ANN data sets (the same records holding Int32s).
///
/// ```swift
/// let (rows, dimension) = try VectorFile.read("siftsmall_base.fvecs")   // 10,000 × 128
/// ```
public enum VectorFile {
  /// The widest vector a collection and its index hold (`Database` and `VectorIndex`
  /// refuse wider ones): a wider file is refused here, where its name and record are
  /// known. Kept in this file, which the fuzz targets compile on its own.
  static let maxDimension = 65_536

  /// The rows of the file at `path` (the first `limit` of them), and their dimension.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file and the problem (unknown
  ///   extension, no vectors, truncated record, changing dimension or one outside
  ///   1...65536, unsupported npy dtype); a record's problem names the record's
  ///   number as the line.
  public static func read(_ path: String, limit: Int = .max) throws -> (
    rows: [[Float]], dimension: Int
  ) {
    let file = try open(path)
    return (try file.all(limit: limit), file.dimension)
  }

  /// The `.fvecs` or `.npy` file at `path`, its shape read, its rows left to read a
  /// range at a time: memory holds the rows asked for, not the file.
  ///
  /// ```swift
  /// let file = try VectorFile.open("base.fvecs")
  /// let first = try file.rows(0..<min(1_000, file.count))
  /// ```
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file and the problem its header
  ///   or first record shows (see `read`); the rest of the file is checked as it is read.
  public static func open(_ path: String) throws -> Rows<Float> {
    try open(InputFile(path))
  }

  /// The rows of `file`, as ``open(_:)-swift.type.method`` reads a path's: its format from
  /// its name's extension; standard input's, which has no name, from its first bytes (the
  /// `.npy` magic string, else `.fvecs` records), so `… | vdb import --vectors -` works.
  ///
  /// - Throws: as ``open(_:)-swift.type.method``.
  public static func open(_ file: InputFile) throws -> Rows<Float> {
    var format = URL(fileURLWithPath: file.source).pathExtension.lowercased()
    if file.source == InputFile.standardInputName {
      format = try file.bytes(at: 0, count: min(6, file.size)) == npyMagic ? "npy" : "fvecs"
    }
    switch format {
    case "fvecs": return try records(file) { Float(bitPattern: $0) }
    case "npy": return try npy(file)
    default:
      throw VectorDBError.invalidInput(
        source: file.source, line: nil, reason: "expected a .fvecs or .npy file")
    }
  }

  /// The rows of the `.ivecs` file at `path` (the first `limit` of them), and their
  /// dimension: in ANN data sets, each query's nearest neighbours by row number.
  ///
  /// - Throws: `VectorDBError.invalidInput` naming the file and the problem (not an
  ///   `.ivecs` file, truncated record, changing dimension).
  package static func readIntegers(_ path: String, limit: Int = .max) throws -> (
    rows: [[Int32]], dimension: Int
  ) {
    guard URL(fileURLWithPath: path).pathExtension.lowercased() == "ivecs" else {
      throw VectorDBError.invalidInput(source: path, line: nil, reason: "expected an .ivecs file")
    }
    let file = try records(InputFile(path)) { Int32(bitPattern: $0) }
    return (try file.all(limit: limit), file.dimension)
  }

  /// The rows of a vector file, read a range at a time (from ``VectorFile/open(_:)``).
  public struct Rows<Element> {
    /// Rows in the file.
    public let count: Int
    /// Elements in a row.
    public let dimension: Int
    fileprivate let file: InputFile
    /// What is wrong past the last whole row (a truncated record), found once all rows
    /// were read.
    fileprivate let trailing: VectorDBError?
    fileprivate let read: (Range<Int>) throws -> [[Element]]

    /// The rows in `range` (within `0..<count`), read now.
    ///
    /// - Throws: `VectorDBError.invalidInput` naming the file and the first bad record
    ///   in `range` (a changing dimension), or saying the file changed since it was opened.
    public func rows(_ range: Range<Int>) throws -> [[Element]] {
      precondition(range.lowerBound >= 0 && range.upperBound <= count, "rows out of range")
      do {
        return try read(range)
      } catch {
        try file.checkUnchanged()  // a change explains a bad record better than the record
        throw error
      }
    }

    /// Calls `body` with each batch of up to `size` rows in turn and the number of its
    /// first row; then throws what is wrong past the last whole row, if anything.
    public func forEachBatch(of size: Int, _ body: (Int, [[Element]]) throws -> Void) throws {
      var done = 0
      while done < count {
        let end = min(done + max(1, size), count)
        try body(done, try rows(done..<end))
        done = end
      }
      if let trailing { throw trailing }
    }

    /// The first `limit` rows (all by default), checked as `forEachBatch` checks them;
    /// what lies past them is not read.
    func all(limit: Int = .max) throws -> [[Element]] {
      guard limit > count else { return try rows(0..<max(limit, 0)) }
      var rows: [[Element]] = []
      rows.reserveCapacity(count)
      try forEachBatch(of: 10_000) { rows += $1 }
      return rows
    }

    /// How errors name the file: its path, or `<stdin>`.
    public var source: String { file.source }

    /// - Throws: `VectorDBError.invalidInput` if the file changed since it was opened.
    public func checkUnchanged() throws { try file.checkUnchanged() }
  }

  /// The bytes of a `.npy` file (format 1.0, `<f4`, C order) holding `rows`, each of
  /// `dimension` floats: what NumPy's `np.load` reads.
  public static func npyBytes(_ rows: [[Float]], dimension: Int) -> Data {
    var data = npyHeader(rows: rows.count, dimension: dimension)
    data.reserveCapacity(data.count + rows.count * dimension * 4)
    for row in rows { data.append(littleEndianBytes(row)) }
    return data
  }

  /// Bytes in the header ``npyHeader(rows:dimension:)`` writes, whatever the shape.
  public static let npyHeaderLength = 128

  /// The header of a `.npy` file (format 1.0, `<f4`, C order) of `rows` rows of `dimension`
  /// floats, always ``npyHeaderLength`` bytes: room for any shape, so a writer that does
  /// not know the number of rows yet writes it first and again at the end.
  public static func npyHeader(rows: Int, dimension: Int) -> Data {
    let prefix = [0x93] + Array("NUMPY".utf8) + [1, 0]  // magic, version 1.0
    var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows), \(dimension)), }"
    // Spaces and a line end pad the header to its length, as NumPy pads to 64 bytes.
    let room = npyHeaderLength - prefix.count - 2
    header += String(repeating: " ", count: room - header.utf8.count - 1) + "\n"
    return Data(prefix + [UInt8(room & 0xff), UInt8(room >> 8)] + Array(header.utf8))
  }

  /// `row` as `.npy` and `.fvecs` files store floats: little-endian float32s.
  public static func littleEndianBytes(_ row: [Float]) -> Data {
    littleEndianBytes(words: row.lazy.map(\.bitPattern))
  }

  /// 32-bit `words` as the vector files store them: little-endian.
  static func littleEndianBytes(words: some Collection<UInt32>) -> Data {
    var data = Data(capacity: 4 * words.count)
    for word in words {
      withUnsafeBytes(of: word.littleEndian) { data.append(contentsOf: $0) }
    }
    return data
  }

  /// The bytes of an `.fvecs` file holding `rows`: what `read` reads back.
  package static func fvecsBytes(_ rows: [[Float]]) -> Data {
    recordBytes(rows) { $0.bitPattern }
  }

  /// The bytes of an `.ivecs` file holding `rows`: what `readIntegers` reads back.
  package static func ivecsBytes(_ rows: [[Int32]]) -> Data {
    recordBytes(rows) { UInt32(bitPattern: $0) }
  }

  static func recordBytes<Element>(_ rows: [[Element]], _ word: (Element) -> UInt32) -> Data {
    var data = Data()
    data.reserveCapacity(rows.reduce(0) { $0 + 4 + 4 * $1.count })
    for row in rows {
      data.append(littleEndianBytes(words: [UInt32(row.count)] + row.map(word)))
    }
    return data
  }

  /// TEXMEX records (`.fvecs`, `.ivecs`): per row a little-endian Int32 dimension, then
  /// that many 32-bit words, each made an element by `element`. Every record has the
  /// first one's dimension, so row `i` starts at `i` × (4 + 4 × dimension).
  static func records<Element>(
    _ file: InputFile, _ element: @escaping (UInt32) -> Element
  ) throws -> Rows<Element> {
    let path = file.source
    func fail(_ record: Int, _ reason: String) -> VectorDBError {
      .invalidInput(source: path, line: record, reason: reason)
    }
    // Not "dimension 0" later on: a file without records has no dimension.
    guard file.size > 0 else {
      throw VectorDBError.invalidInput(source: path, line: nil, reason: "the file holds no vectors")
    }
    /// The problem with record `number` (from 1) of dimension `d`, if it has one.
    func problem(_ d: Int, record number: Int, expected dimension: Int?) -> VectorDBError? {
      guard (1...maxDimension).contains(d) else {
        return fail(number, "record of dimension \(d); it must be in 1...\(maxDimension)")
      }
      guard let dimension, d != dimension else { return nil }
      return fail(number, "record of dimension \(d); earlier records have \(dimension)")
    }
    func recordDimension(at offset: Int) throws -> Int {
      Int(
        Int32(
          littleEndian: try file.bytes(at: offset, count: 4).withUnsafeBytes {
            $0.loadUnaligned(as: Int32.self)
          }))
    }
    guard file.size >= 4 else { throw fail(1, "truncated record") }
    let dimension = try recordDimension(at: 0)
    if let problem = problem(dimension, record: 1, expected: nil) { throw problem }
    let stride = 4 + 4 * dimension
    let count = file.size / stride
    // Past the last whole record: another dimension's record, or a truncated one.
    let rest = file.size - count * stride
    let trailing =
      rest == 0
      ? nil
      : (rest >= 4
        ? problem(try recordDimension(at: count * stride), record: count + 1, expected: dimension)
        : nil) ?? fail(count + 1, "truncated record")
    return Rows(count: count, dimension: dimension, file: file, trailing: trailing) { range in
      try file.bytes(at: range.lowerBound * stride, count: range.count * stride).withUnsafeBytes {
        raw in
        try (0..<range.count).map { row in
          let d = Int(
            Int32(littleEndian: raw.loadUnaligned(fromByteOffset: row * stride, as: Int32.self)))
          if let problem = problem(d, record: range.lowerBound + row + 1, expected: dimension) {
            throw problem
          }
          return (0..<dimension).map {
            element(
              UInt32(
                littleEndian: raw.loadUnaligned(
                  fromByteOffset: row * stride + 4 + 4 * $0, as: UInt32.self)))
          }
        }
      }
    }
  }

  /// The bytes a `.npy` file starts with.
  static let npyMagic: [UInt8] = [0x93] + Array("NUMPY".utf8)

  /// The longest `.npy` header read. NumPy's own reader refuses headers past 10,000 bytes;
  /// without a bound a hostile header length would have the reader allocate it.
  static let maxNpyHeader = 1 << 20

  /// A `.npy` file's rows (see `read`).
  static func npy(_ file: InputFile) throws -> Rows<Float> {
    let path = file.source
    func fail(_ reason: String) -> VectorDBError {
      .invalidInput(source: path, line: nil, reason: reason)
    }
    let prefix = try file.bytes(at: 0, count: min(file.size, 12))
    guard prefix.count >= 10, prefix.starts(with: npyMagic) else { throw fail("not a .npy file") }
    let major = prefix[6]
    let headerLength: Int
    let headerStart: Int
    guard (1...3).contains(major) else { throw fail("unsupported .npy version \(major)") }
    if major == 1 {
      headerLength = Int(prefix[8]) | Int(prefix[9]) << 8
      headerStart = 10
    } else {
      guard prefix.count >= 12 else { throw fail("truncated header") }
      headerLength = (0..<4).reduce(0) { $0 | Int(prefix[8 + $1]) << (8 * $1) }
      headerStart = 12
    }
    guard headerStart + headerLength <= file.size else { throw fail("truncated header") }
    guard headerLength <= maxNpyHeader else {
      throw fail("a header of \(headerLength) bytes; at most \(maxNpyHeader) are read")
    }
    let header = String(
      decoding: try file.bytes(at: headerStart, count: headerLength), as: UTF8.self)
    // The element: float32 as stored, or float64 rounded to float32 (NumPy's default
    // float, what `numpy.save` writes for most computed matrices).
    let width: Int
    if header.contains("'descr': '<f4'") {
      width = 4
    } else if header.contains("'descr': '<f8'") {
      width = 8
    } else {
      let descr = header.range(of: "'descr': ").map {
        header[$0.upperBound...].prefix { $0 != "," }
      }
      throw fail(
        "dtype must be little-endian float32 ('<f4') or float64 ('<f8'); it is \(descr ?? "not given")"
      )
    }
    let fortran = header.contains("'fortran_order': True")
    guard fortran || header.contains("'fortran_order': False") else {
      throw fail("no fortran_order in header")
    }
    guard let open = header.range(of: "'shape': ("),
      let close = header[open.upperBound...].firstIndex(of: ")")
    else {
      throw fail("no shape in header")
    }
    let fields = header[open.upperBound..<close].split(
      separator: ",", omittingEmptySubsequences: true
    )
    .map { $0.trimmingCharacters(in: .whitespaces) }
    guard fields.count == 2 else {
      throw fail("expected a 2-D array; shape is (\(fields.joined(separator: ", ")))")
    }
    guard let count = Int(fields[0]), count >= 0 else {
      throw fail("the row count in the shape must be a whole number ≥ 0; it is \(fields[0])")
    }
    guard let dimension = Int(fields[1]), (1...maxDimension).contains(dimension) else {
      throw fail(
        "the dimension in the shape must be a whole number in 1...\(maxDimension); it is \(fields[1])"
      )
    }
    guard count > 0 else {
      throw fail("the file holds no vectors (its shape is (0, \(dimension)))")
    }
    // Sizes are checked against the file before anything is allocated: a header must
    // not make the reader promise more memory than the file holds.
    let start = headerStart + headerLength
    let (values, overflow) = count.multipliedReportingOverflow(by: dimension)
    guard !overflow, values <= (file.size - start) / width else {
      throw fail(
        "truncated data: the shape (\(count), \(dimension)) needs more than the \(file.size - start) bytes after the header"
      )
    }
    // More bytes than the shape holds: another shape was meant, or two arrays were
    // joined; either way rows would be lost without a word.
    guard values * width == file.size - start else {
      throw fail(
        "the shape (\(count), \(dimension)) holds \(values * width) bytes but \(file.size - start) follow the header"
      )
    }
    func value(_ raw: UnsafeRawBufferPointer, _ index: Int) -> Float {
      width == 4
        ? Float(
          bitPattern: UInt32(
            littleEndian: raw.loadUnaligned(fromByteOffset: 4 * index, as: UInt32.self)))
        : Float(
          Double(
            bitPattern: UInt64(
              littleEndian: raw.loadUnaligned(fromByteOffset: 8 * index, as: UInt64.self))))
    }
    return Rows(count: count, dimension: dimension, file: file, trailing: nil) { range in
      guard fortran else {
        return try file.bytes(
          at: start + width * range.lowerBound * dimension, count: width * range.count * dimension
        ).withUnsafeBytes { raw in
          (0..<range.count).map { row in (0..<dimension).map { value(raw, row * dimension + $0) } }
        }
      }
      // Column-major: each column's part of the range lies in one piece.
      var rows = [[Float]](
        repeating: [Float](repeating: 0, count: dimension), count: range.count)
      for column in 0..<dimension {
        try file.bytes(
          at: start + width * (column * count + range.lowerBound), count: width * range.count
        ).withUnsafeBytes { raw in
          for row in 0..<range.count { rows[row][column] = value(raw, row) }
        }
      }
      return rows
    }
  }
}
