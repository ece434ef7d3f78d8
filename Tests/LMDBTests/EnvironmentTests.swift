import Foundation
import LMDB
import XCTest

final class EnvironmentTests: XCTestCase {
  var directory: String!

  override func setUpWithError() throws {
    directory = NSTemporaryDirectory() + "lmdb-tests-" + UUID().uuidString
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  func testPutGetDeleteRoundTrip() throws {
    let env = try Environment.open(path: directory)
    let table = try env.table("things")
    try env.write { txn in
      try txn.put(table, key: "alpha", value: Array("one".utf8))
      try txn.put(table, key: UInt32(7), value: Array("seven".utf8))
    }
    let (alpha, seven, missing) = try env.read { txn in
      (
        try txn.get(table, key: "alpha").map { String(decoding: $0, as: UTF8.self) },
        try txn.get(table, key: UInt32(7)).map { String(decoding: $0, as: UTF8.self) },
        try txn.get(table, key: "nope")
      )
    }
    XCTAssertEqual(alpha, "one")
    XCTAssertEqual(seven, "seven")
    XCTAssertNil(missing)
    let deleted = try env.write { txn in try txn.delete(table, key: "alpha") }
    XCTAssertTrue(deleted)
    XCTAssertEqual(try env.read { try $0.count(table) }, 1)
    XCTAssertFalse(try env.write { txn in try txn.delete(table, key: "alpha") })
  }

  /// A large value written and deleted in one transaction: LMDB counts the pages it
  /// took at the end but never writes them, so the file was shorter than its pages and
  /// every later open called it truncated. The file now spans them.
  func testPagesTakenAndFreedInOneTransactionStayInTheFile() throws {
    let env = try Environment.open(path: directory)
    let table = try env.table("log")
    try env.write { txn in try txn.put(table, key: "small", value: Array("x".utf8)) }
    try env.write { txn in
      try txn.put(table, key: "big", value: [UInt8](repeating: 7, count: 8 << 20))
      XCTAssertTrue(try txn.delete(table, key: "big"))
    }
    XCTAssertGreaterThan(env.usedBytes(), 8 << 20, "the pages were counted")
    XCTAssertGreaterThanOrEqual(env.fileSize(), env.usedBytes())
  }

  func testThrowingWriteLeavesNothingBehind() throws {
    struct Boom: Error {}
    let env = try Environment.open(path: directory)
    let table = try env.table("t")
    XCTAssertThrowsError(
      try env.write { txn in
        try txn.put(table, key: "a", value: [1])
        throw Boom()
      })
    XCTAssertEqual(try env.read { try $0.count(table) }, 0)
  }

  func testBigEndianKeysScanInNumericOrder() throws {
    let env = try Environment.open(path: directory)
    let table = try env.table("numbers")
    let values: [UInt32] = [300, 2, 70_000, 1, 256]
    try env.write { txn in
      for value in values { try txn.put(table, key: value, value: [0]) }
    }
    var seen: [UInt32] = []
    try env.read { txn in
      try txn.forEach(in: table) { key, _ in
        seen.append(UInt32(keyBytes: key)!)
        return true
      }
    }
    XCTAssertEqual(seen, values.sorted())
  }

  func testScanFromKeyAndRangeDelete() throws {
    let env = try Environment.open(path: directory)
    let table = try env.table("composite")
    try env.write { txn in
      for collection: UInt32 in 1...3 {
        for id in ["a", "b", "c"] {
          try txn.put(table, key: KeyBuilder().uint32(collection).string(id), value: [1])
        }
      }
    }
    var ids: [String] = []
    let prefix = KeyBuilder().uint32(2)
    try env.read { txn in
      try txn.forEach(in: table, from: prefix) { key, _ in
        guard key.starts(with: prefix.bytes) else { return false }
        ids.append(String(decoding: key.dropFirst(4), as: UTF8.self))
        return true
      }
    }
    XCTAssertEqual(ids, ["a", "b", "c"])
    let removed = try env.write { txn in
      try txn.deleteRange(table, from: KeyBuilder().uint32(2), to: KeyBuilder().uint32(3))
    }
    XCTAssertEqual(removed, 3)
    XCTAssertEqual(try env.read { try $0.count(table) }, 6)
  }

  func testMapGrowsWhenFullAndWriteIsRetried() throws {
    var options = Environment.Options()
    options.initialMapSize = 64 << 10
    let env = try Environment.open(path: directory, options: options)
    let table = try env.table("big")
    let value = [UInt8](repeating: 42, count: 4096)
    var attempts = 0
    try env.write { txn in
      attempts += 1
      for i in 0..<2000 { try txn.put(table, key: UInt32(i), value: value) }
    }
    XCTAssertGreaterThan(attempts, 1, "the first attempt should have filled a 64 KiB map")
    XCTAssertEqual(try env.read { try $0.count(table) }, 2000)
    XCTAssertGreaterThan(env.mapSize, 8 << 20)
  }

  func testReserveWritesInPlace() throws {
    let env = try Environment.open(path: directory)
    let table = try env.table("reserved")
    try env.write { txn in
      try txn.reserve(table, key: "k", count: 8) { buffer in
        for i in 0..<8 { buffer[i] = UInt8(i) }
      }
    }
    XCTAssertEqual(
      try env.read { txn in try txn.get(table, key: "k").map(Array.init) }, Array(0..<8))
  }

  func testOpeningTwiceInOneProcessSharesTheEnvironment() throws {
    let first = try Environment.open(path: directory)
    let second = try Environment.open(path: directory)
    XCTAssertTrue(first === second)
  }

  func testPathThatIsAFileIsRejected() throws {
    XCTAssertTrue(FileManager.default.createFile(atPath: directory, contents: Data("x".utf8)))
    XCTAssertThrowsError(try Environment.open(path: directory)) { error in
      XCTAssertTrue("\(error)".contains(directory), "\(error)")
    }
  }

  func testGarbageDataFileIsRejectedNotTreatedAsEmpty() throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let garbage = Data((0..<16384).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    try garbage.write(to: URL(fileURLWithPath: directory + "/data.mdb"))
    XCTAssertThrowsError(try Environment.open(path: directory)) { error in
      XCTAssertTrue((error as? LMDBError)?.isInvalidFile ?? false, "\(error)")
    }
  }

  func testFilesArePrivate() throws {
    let env = try Environment.open(path: directory)
    _ = try env.table("t")
    let dirMode =
      try FileManager.default.attributesOfItem(atPath: directory)[.posixPermissions] as? Int
    let fileMode =
      try FileManager.default.attributesOfItem(atPath: directory + "/data.mdb")[.posixPermissions]
      as? Int
    XCTAssertEqual(dirMode, 0o700)
    XCTAssertEqual(fileMode, 0o600)
  }

  func testErrorsNameOperationAndTable() {
    let error = LMDBError(code: -30792, operation: "put", table: "docs")
    XCTAssertEqual(
      error.description, "put table \"docs\": MDB_MAP_FULL: Environment mapsize limit reached")
  }

  func testConcurrentReadersFromManyThreads() throws {
    let env = try Environment.open(path: directory)
    let table = try env.table("shared")
    try env.write { txn in
      for i in 0..<1000 {
        try txn.put(table, key: UInt32(i), value: withUnsafeBytes(of: UInt32(i)) { Array($0) })
      }
    }
    let failures = Counter()
    DispatchQueue.concurrentPerform(iterations: 8) { worker in
      for i in 0..<1000 {
        let ok =
          (try? env.read { txn -> Bool in
            guard let bytes = try txn.get(table, key: UInt32(i)) else { return false }
            return bytes.loadUnaligned(as: UInt32.self) == UInt32(i)
          }) ?? false
        if !ok { failures.increment() }
      }
      _ = worker
    }
    XCTAssertEqual(failures.value, 0)
  }
}

final class Counter: @unchecked Sendable {
  private let lock = NSLock()
  private var count = 0
  func increment() { lock.withLock { count += 1 } }
  var value: Int { lock.withLock { count } }
}

final class ReaderTests: XCTestCase {
  func testAThrowingReadReleasesItsSnapshotSoFreedPagesAreReused() throws {
    struct Boom: Error {}
    let directory = NSTemporaryDirectory() + "lmdb-reader-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let env = try Environment.open(path: directory)
    let table = try env.table("t")
    let value = [UInt8](repeating: 1, count: 3000)
    for round in 0..<20 {
      XCTAssertThrowsError(try env.read { _ in throw Boom() })
      try env.write { txn in
        try txn.clear(table)
        for i in 0..<200 { try txn.put(table, key: UInt32(i), value: value) }
      }
      if round == 4 { XCTAssertGreaterThan(env.fileSize(), 0) }
    }
    // A round writes ~200 pages (800 KB); without reuse 20 rounds would take 16 MB.
    XCTAssertLessThan(env.fileSize(), 6_000_000)
  }
}
