import Foundation
import XCTest

@testable import VectorDB

/// The vector-file reader the shell, the tests and the benchmarks share: prefixes, the
/// `.ivecs` ground truth of ANN data sets, and what a bad record reports.
final class VectorFileTests: XCTestCase {
  var directory: String!
  let siftsmall = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../../shared/datasets/siftsmall").standardized.path

  override func setUpWithError() throws {
    directory = NSTemporaryDirectory() + "vdb-vector-file-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  func testLimitReadsThePrefixOfEitherFormat() throws {
    let (rows, dimension) = try VectorFile.read(siftsmall + "/siftsmall_query.fvecs")
    XCTAssertEqual(rows.count, 100)
    XCTAssertEqual(dimension, 128)
    let prefix = try VectorFile.read(siftsmall + "/siftsmall_query.fvecs", limit: 7)
    XCTAssertEqual(prefix.rows, Array(rows.prefix(7)))
    XCTAssertEqual(prefix.dimension, 128)
    XCTAssertEqual(try VectorFile.read(siftsmall + "/siftsmall_query.fvecs", limit: 0).rows, [])

    let npy = directory + "/rows.npy"
    try VectorFile.npyBytes(rows, dimension: dimension).write(to: URL(fileURLWithPath: npy))
    XCTAssertEqual(try VectorFile.read(npy, limit: 7).rows, Array(rows.prefix(7)))
    XCTAssertEqual(try VectorFile.read(npy, limit: 1_000).rows, rows)
    // Bytes beyond the shape: refused, not dropped.
    let longer = directory + "/longer.npy"
    try (VectorFile.npyBytes(rows, dimension: dimension) + Data(count: 4)).write(
      to: URL(fileURLWithPath: longer))
    XCTAssertThrowsError(try VectorFile.read(longer)) {
      XCTAssertTrue("\($0)".contains("holds 51200 bytes but 51204 follow the header"), "\($0)")
    }
  }

  /// What `numpy.save` writes for a float matrix: float64 (NumPy's default float) is read
  /// rounded to float32, Fortran order (a transposed array) in row order; other dtypes are
  /// refused by name.
  /// A file opened is read a range of rows at a time, from disk: the ranges put together
  /// are the whole file, in either format; a file cut short since it was opened says so.
  func testRowsAreReadARangeAtATime() throws {
    let path = siftsmall + "/siftsmall_base.fvecs"
    let (rows, dimension) = try VectorFile.read(path)
    let npy = directory + "/base.npy"
    try VectorFile.npyBytes(rows, dimension: dimension).write(to: URL(fileURLWithPath: npy))
    for path in [path, npy] {
      let file = try VectorFile.open(path)
      XCTAssertEqual(file.count, 10_000)
      XCTAssertEqual(file.dimension, 128)
      XCTAssertEqual(try file.rows(0..<3_333) + file.rows(3_333..<10_000), rows, path)
      XCTAssertEqual(try file.rows(9_999..<10_000), [rows[9_999]], path)
      var batches: [Int] = []
      var read: [[Float]] = []
      try file.forEachBatch(of: 4_000) {
        batches.append($0)
        read += $1
      }
      XCTAssertEqual(batches, [0, 4_000, 8_000], path)
      XCTAssertEqual(read, rows, path)
    }

    // A record of another dimension after the last whole record is named as such.
    let mixed = directory + "/mixed.fvecs"
    try VectorFile.fvecsBytes([[1, 2, 3, 4], [5, 6]]).write(to: URL(fileURLWithPath: mixed))
    XCTAssertThrowsError(try VectorFile.read(mixed)) {
      XCTAssertEqual("\($0)", "\(mixed):2: record of dimension 2; earlier records have 4")
    }

    let cut = directory + "/cut.fvecs"
    try VectorFile.fvecsBytes(rows).write(to: URL(fileURLWithPath: cut))
    let file = try VectorFile.open(cut)
    XCTAssertEqual(truncate(cut, 1_000), 0)
    XCTAssertThrowsError(try file.rows(0..<10)) {
      XCTAssertEqual(
        "\($0)", "\(cut): the file changed while it was read (another process wrote it); run again")
    }
  }

  func testNumPyFloat64AndFortranOrder() throws {
    let rows: [[Double]] = [[1, 2.5, -3], [0.1, 1e-3, 7]]
    func npy(_ descr: String, fortran: Bool, _ bytes: Data) throws -> String {
      var header =
        "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': (2, 3), }"
      header += String(repeating: " ", count: 63 - (10 + header.utf8.count) % 64) + "\n"
      var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
      data += [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
      let path = directory + "/\(descr.dropFirst())-\(fortran).npy"
      try (data + Data(header.utf8) + bytes).write(to: URL(fileURLWithPath: path))
      return path
    }
    func bytes<T>(_ order: [Double], _ convert: (Double) -> T) -> Data {
      order.map(convert).withUnsafeBytes { Data($0) }
    }
    let cOrder = rows.flatMap { $0 }
    let fortranOrder = (0..<3).flatMap { column in rows.map { $0[column] } }
    let expected = rows.map { $0.map(Float.init) }
    for (path, name) in [
      (try npy("<f8", fortran: false, bytes(cOrder) { $0 }), "float64"),
      (try npy("<f8", fortran: true, bytes(fortranOrder) { $0 }), "float64, Fortran order"),
      (try npy("<f4", fortran: true, bytes(fortranOrder) { Float($0) }), "float32, Fortran order"),
    ] {
      let read = try VectorFile.read(path)
      XCTAssertEqual(read.rows, expected, name)
      XCTAssertEqual(read.dimension, 3, name)
      XCTAssertEqual(try VectorFile.open(path).rows(1..<2), [expected[1]], name)
    }
    // A float64 file's length is checked in its own element size.
    let short = try npy("<f8", fortran: false, bytes(Array(cOrder.dropLast())) { $0 })
    XCTAssertThrowsError(try VectorFile.read(short)) {
      XCTAssertTrue("\($0)".contains("truncated data"), "\($0)")
    }
    let bigEndian = try npy(">f4", fortran: false, bytes(cOrder) { Float($0) })
    XCTAssertThrowsError(try VectorFile.read(bigEndian)) {
      XCTAssertTrue("\($0)".contains("it is '>f4'"), "\($0)")
    }
  }

  /// siftsmall's ground truth names, for each query, the base rows nearest to it: the
  /// first is the exact L2 nearest, found here by brute force.
  func testGroundTruthNamesTheNearestBaseRows() throws {
    let base = try VectorFile.read(siftsmall + "/siftsmall_base.fvecs").rows
    let queries = try VectorFile.read(siftsmall + "/siftsmall_query.fvecs", limit: 5).rows
    let (truth, dimension) = try VectorFile.readIntegers(
      siftsmall + "/siftsmall_groundtruth.ivecs", limit: 5)
    XCTAssertEqual(truth.count, 5)
    XCTAssertEqual(dimension, 100)
    for (query, neighbours) in zip(queries, truth) {
      func distance(_ row: [Float]) -> Float {
        zip(row, query).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
      }
      let nearest = base.indices.min { distance(base[$0]) < distance(base[$1]) }!
      XCTAssertEqual(distance(base[Int(neighbours[0])]), distance(base[nearest]))
    }
  }

  /// A file with no vectors, or wider ones than a collection holds, is named: not
  /// "invalid vector: dimension 0 is not in 1...65536" from the collection.
  func testEmptyAndTooWideFilesAreNamed() throws {
    func assertRefused(
      _ path: String, line: Int?, _ reason: String, file: StaticString = #filePath,
      _ assertLine: UInt = #line
    ) {
      XCTAssertThrowsError(try VectorFile.read(path), file: file, line: assertLine) {
        XCTAssertEqual(
          $0 as? VectorDBError, .invalidInput(source: path, line: line, reason: reason),
          file: file, line: assertLine)
      }
    }
    let empty = directory + "/empty.fvecs"
    try Data().write(to: URL(fileURLWithPath: empty))
    assertRefused(empty, line: nil, "the file holds no vectors")
    let noRows = directory + "/empty.npy"
    try VectorFile.npyBytes([], dimension: 3).write(to: URL(fileURLWithPath: noRows))
    assertRefused(noRows, line: nil, "the file holds no vectors (its shape is (0, 3))")

    let wide = [[Float](repeating: 0.5, count: 70_000)]
    let wideFvecs = directory + "/wide.fvecs"
    try VectorFile.fvecsBytes(wide).write(to: URL(fileURLWithPath: wideFvecs))
    assertRefused(wideFvecs, line: 1, "record of dimension 70000; it must be in 1...65536")
    let wideNpy = directory + "/wide.npy"
    try VectorFile.npyBytes(wide, dimension: 70_000).write(to: URL(fileURLWithPath: wideNpy))
    assertRefused(
      wideNpy, line: nil,
      "the dimension in the shape must be a whole number in 1...65536; it is 70000")
    // A header longer than any NumPy writes is not read into memory.
    let longHeader = directory + "/long-header.npy"
    let length = VectorFile.maxNpyHeader + 1
    try
      (Data([0x93] + Array("NUMPY".utf8) + [2, 0])
      + Data((0..<4).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) })
      + Data(count: length)).write(to: URL(fileURLWithPath: longHeader))
    assertRefused(longHeader, line: nil, "a header of 1048577 bytes; at most 1048576 are read")
    // The widest a collection holds is read.
    let widest = directory + "/widest.fvecs"
    try VectorFile.fvecsBytes([[Float](repeating: 1, count: 65_536)])
      .write(to: URL(fileURLWithPath: widest))
    XCTAssertEqual(try VectorFile.read(widest).dimension, 65_536)
  }

  func testIntegersRoundTripAndBadRecordsAreNamed() throws {
    let ivecs = directory + "/gt.ivecs"
    let rows: [[Int32]] = [[3, 1, 2], [0, -1, Int32.max]]
    try VectorFile.ivecsBytes(rows).write(to: URL(fileURLWithPath: ivecs))
    XCTAssertEqual(try VectorFile.readIntegers(ivecs).rows, rows)

    // The second record cut short: its number is the line of the error.
    var bytes = VectorFile.ivecsBytes(rows)
    bytes.removeLast(4)
    try bytes.write(to: URL(fileURLWithPath: ivecs))
    XCTAssertThrowsError(try VectorFile.readIntegers(ivecs)) {
      guard case .invalidInput(let source, let line, let reason) = $0 as? VectorDBError else {
        return XCTFail("\($0)")
      }
      XCTAssertEqual(source, ivecs)
      XCTAssertEqual(line, 2)
      XCTAssertEqual(reason, "truncated record")
    }
    // A prefix that stops before the bad record is read.
    XCTAssertEqual(try VectorFile.readIntegers(ivecs, limit: 1).rows, [rows[0]])

    // Float vectors are not ground truth, and ground truth is not float vectors.
    let fvecs = directory + "/v.fvecs"
    try VectorFile.fvecsBytes([[1, 2, 3]]).write(to: URL(fileURLWithPath: fvecs))
    XCTAssertEqual(try VectorFile.read(fvecs).rows, [[1, 2, 3]])
    XCTAssertThrowsError(try VectorFile.readIntegers(fvecs))
    XCTAssertThrowsError(try VectorFile.read(ivecs))
  }
}
