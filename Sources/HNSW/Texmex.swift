#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reads the TEXMEX vector files of ANN benchmarks (SIFT, and the data sets in
/// `shared/datasets`): `.fvecs` records are a little-endian `Int32` dimension followed by
/// that many `Float32`s; `.ivecs` records the same with `Int32`s.
///
/// ```swift
/// let base = try Texmex.readFloats(path: "siftsmall_base.fvecs")   // 10,000 × 128
/// base.row(0)                                                       // 128 floats
/// ```
public enum Texmex {
  /// Rows of equal length, stored row after row.
  public struct Matrix<Element: Sendable>: Sendable {
    /// The number of rows.
    public var rows: Int
    /// The length of every row.
    public var dimension: Int
    /// `rows × dimension` elements, row-major.
    public var elements: [Element]

    /// A matrix of `rows` rows of `dimension` elements, row-major.
    ///
    /// - Precondition: `elements.count == rows * dimension`.
    public init(rows: Int, dimension: Int, elements: [Element]) {
      precondition(
        elements.count == rows * dimension,
        "matrix: \(elements.count) elements for \(rows) × \(dimension)")
      self.rows = rows
      self.dimension = dimension
      self.elements = elements
    }

    /// Row `i` as an array.
    public func row(_ i: Int) -> [Element] {
      Array(elements[i * dimension..<(i + 1) * dimension])
    }

    /// The first `count` rows (all if fewer).
    public func prefix(_ count: Int) -> Matrix {
      let kept = min(count, rows)
      return Matrix(
        rows: kept, dimension: dimension, elements: Array(elements[0..<kept * dimension]))
    }
  }

  /// What is wrong with a file, and where.
  public struct FormatError: Error, CustomStringConvertible {
    /// The file.
    public var path: String
    /// The problem, with the record number or byte offset.
    public var detail: String
    public var description: String { "\(path): \(detail)" }
  }

  /// Reads an `.fvecs` file; `limit` stops after that many rows.
  public static func readFloats(path: String, limit: Int = .max) throws -> Matrix<Float> {
    try read(path: path, limit: limit) { Float(bitPattern: $0) }
  }

  /// Reads an `.ivecs` file; `limit` stops after that many rows.
  public static func readInts(path: String, limit: Int = .max) throws -> Matrix<Int32> {
    try read(path: path, limit: limit) { Int32(bitPattern: $0) }
  }

  static func read<Element>(
    path: String, limit: Int, _ convert: (UInt32) -> Element
  ) throws -> Matrix<Element> {
    let bytes = try contents(of: path)
    func word(_ offset: Int) -> UInt32 {
      bytes.withUnsafeBytes {
        UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
      }
    }
    guard bytes.count >= 4 else { throw FormatError(path: path, detail: "file is empty") }
    let dimension = Int(Int32(bitPattern: word(0)))
    guard dimension > 0 && dimension <= 1 << 20 else {
      throw FormatError(path: path, detail: "record 0: dimension \(dimension) is not plausible")
    }
    let recordSize = 4 + 4 * dimension
    guard bytes.count % recordSize == 0 else {
      throw FormatError(
        path: path,
        detail: "\(bytes.count) bytes is not a whole number of \(recordSize)-byte records "
          + "(dimension \(dimension))")
    }
    let rows = min(bytes.count / recordSize, limit)
    var elements: [Element] = []
    elements.reserveCapacity(rows * dimension)
    for row in 0..<rows {
      let offset = row * recordSize
      guard Int(Int32(bitPattern: word(offset))) == dimension else {
        throw FormatError(
          path: path,
          detail: "record \(row): dimension \(Int32(bitPattern: word(offset))), expected "
            + "\(dimension)")
      }
      for j in 0..<dimension { elements.append(convert(word(offset + 4 + 4 * j))) }
    }
    return Matrix(rows: rows, dimension: dimension, elements: elements)
  }

  static func contents(of path: String) throws -> [UInt8] {
    guard let file = fopen(path, "rb") else {
      throw FormatError(path: path, detail: "cannot open: \(String(cString: strerror(errno)))")
    }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
      let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
      if n == 0 { break }
      bytes += chunk[0..<n]
    }
    if ferror(file) != 0 {
      throw FormatError(path: path, detail: "read error: \(String(cString: strerror(errno)))")
    }
    return bytes
  }
}
