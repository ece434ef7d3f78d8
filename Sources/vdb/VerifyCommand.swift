import ArgumentParser
import Foundation
import VectorDB

struct Verify: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Check every table, document, index and model of the database.",
    discussion: """
      Reads every entry of every table, then checks that the records agree: \
      documents against their rows and content hashes, each generation's graph and \
      vectors, each model's weights against their checksum. Prints each problem \
      found; exits 3 if there is one (0 when the database is sound). If a damaged \
      page makes the storage engine itself fault, says which table it was reading.

      Examples:
        vdb verify --db ./notes.vdb
        vdb verify --json
      """)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var output: OutputOptions

  func run() throws {
    let db = try database.open(readOnly: true)
    let report = try db.verifyReport { stage in Fault.arm(path: db.path, while: "reading \(stage)")
    }
    Fault.arm(path: db.path)
    if output.isJSON {
      try Terminal.printJSON(report)
    } else {
      for table in report.tables {
        print("\(table.name): \(table.entries) entries, \(Terminal.bytes(table.bytes))")
      }
      for check in report.checks { print(check) }
      for problem in report.problems { print("problem: \(problem)") }
      if report.isSound { print("\(db.path) is sound") }
    }
    if let first = report.problems.first {
      throw VectorDBError.damaged(
        path: db.path,
        detail: report.problems.count == 1
          ? first : "\(first) (and \(report.problems.count - 1) more)")
    }
  }
}
