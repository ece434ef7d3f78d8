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
    let data = try TextFile.contents(path)
    switch URL(fileURLWithPath: path).pathExtension.lowercased() {
    case "fvecs": return try records(data, path: path, limit: limit) { Float(bitPattern: $0) }
    case "npy": return try npy(data, path: path, limit: limit)
    default:
      throw VectorDBError.invalidInput(
        source: path, line: nil, reason: "expected a .fvecs or .npy file")
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
    return try records(try TextFile.contents(path), path: path, limit: limit) {
      Int32(bitPattern: $0)
    }
  }

  /// The bytes of a `.npy` file (format 1.0, `<f4`, C order) holding `rows`, each of
  /// `dimension` floats: what NumPy's `np.load` reads.
  public static func npyBytes(_ rows: [[Float]], dimension: Int) -> Data {
    var header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows.count), \(dimension)), }"
    // Magic (6) + version (2) + length (2) + header + "\n" is a multiple of 64.
    header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
    var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
    data.append(contentsOf: [UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)])
    data.append(contentsOf: Array(header.utf8))
    data.reserveCapacity(data.count + rows.count * dimension * 4)
    for row in rows {
      row.withUnsafeBufferPointer { floats in
        for value in floats {
          withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
        }
      }
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
      withUnsafeBytes(of: Int32(row.count).littleEndian) { data.append(contentsOf: $0) }
      for value in row {
        withUnsafeBytes(of: word(value).littleEndian) { data.append(contentsOf: $0) }
      }
    }
    return data
  }

  /// TEXMEX records (`.fvecs`, `.ivecs`): per row a little-endian Int32 dimension, then
  /// that many 32-bit words, each made an element by `element`.
  static func records<Element>(
    _ data: Data, path: String, limit: Int, _ element: (UInt32) -> Element
  ) throws -> (rows: [[Element]], dimension: Int) {
    // Not "dimension 0" later on: a file without records has no dimension.
    guard !data.isEmpty else {
      throw VectorDBError.invalidInput(source: path, line: nil, reason: "the file holds no vectors")
    }
    return try data.withUnsafeBytes { bytes in
      var rows: [[Element]] = []
      var offset = 0
      var dimension = -1
      while offset < bytes.count && rows.count < limit {
        guard offset + 4 <= bytes.count else {
          throw VectorDBError.invalidInput(
            source: path, line: rows.count + 1, reason: "truncated record")
        }
        let d = Int(
          Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
        guard (1...maxDimension).contains(d) else {
          throw VectorDBError.invalidInput(
            source: path, line: rows.count + 1,
            reason: "record of dimension \(d); it must be in 1...\(maxDimension)")
        }
        if dimension < 0 { dimension = d }
        guard d == dimension else {
          throw VectorDBError.invalidInput(
            source: path, line: rows.count + 1,
            reason: "record of dimension \(d); earlier records have \(dimension)")
        }
        guard offset + 4 + 4 * d <= bytes.count else {
          throw VectorDBError.invalidInput(
            source: path, line: rows.count + 1, reason: "truncated record")
        }
        rows.append(
          (0..<d).map {
            element(
              UInt32(
                littleEndian: bytes.loadUnaligned(
                  fromByteOffset: offset + 4 + 4 * $0, as: UInt32.self)))
          })
        offset += 4 + 4 * d
      }
      return (rows, max(dimension, 0))
    }
  }

  static func npy(_ data: Data, path: String, limit: Int) throws -> (
    rows: [[Float]], dimension: Int
  ) {
    func fail(_ reason: String) -> VectorDBError {
      .invalidInput(source: path, line: nil, reason: reason)
    }
    let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
    guard data.count >= 10, Array(data.prefix(6)) == magic else { throw fail("not a .npy file") }
    let major = data[data.startIndex + 6]
    let headerLength: Int
    let headerStart: Int
    guard (1...3).contains(major) else { throw fail("unsupported .npy version \(major)") }
    if major == 1 {
      headerLength = Int(data[data.startIndex + 8]) | Int(data[data.startIndex + 9]) << 8
      headerStart = 10
    } else {
      guard data.count >= 12 else { throw fail("truncated header") }
      headerLength = (0..<4).reduce(0) { $0 | Int(data[data.startIndex + 8 + $1]) << (8 * $1) }
      headerStart = 12
    }
    guard headerStart + headerLength <= data.count else { throw fail("truncated header") }
    let header = String(
      decoding: data[
        (data.startIndex + headerStart)..<(data.startIndex + headerStart + headerLength)],
      as: UTF8.self)
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
    guard !overflow, values <= (data.count - start) / width else {
      throw fail(
        "truncated data: the shape (\(count), \(dimension)) needs more than the \(data.count - start) bytes after the header"
      )
    }
    // More bytes than the shape holds: another shape was meant, or two arrays were
    // joined; either way rows would be lost without a word.
    guard values * width == data.count - start else {
      throw fail(
        "the shape (\(count), \(dimension)) holds \(values * width) bytes but \(data.count - start) follow the header"
      )
    }
    return data.withUnsafeBytes { bytes in
      func value(_ row: Int, _ column: Int) -> Float {
        let offset = start + width * (fortran ? column * count + row : row * dimension + column)
        return width == 4
          ? Float(
            bitPattern: UInt32(
              littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
          : Float(
            Double(
              bitPattern: UInt64(
                littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))))
      }
      let rows = (0..<min(count, limit)).map { row in (0..<dimension).map { value(row, $0) } }
      return (rows, dimension)
    }
  }
}
