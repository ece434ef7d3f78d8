import ArgumentParser
import Foundation
import VDBSync
import VectorDB

struct Sync: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Copy a collection into PostgreSQL + pgvector, and keep it up to date.",
    discussion: """
      Writes the active generation's documents (id, text, metadata as jsonb, vector) \
      into the table TABLE (default: the collection's name), a view over TABLE_gN \
      with pgvector's HNSW index. Run it again to write only what changed since; after \
      a re-embed it builds a new table and swaps it in at commit. A failed sync \
      changes nothing: the previous table keeps serving (docs/scale-out.md).

      Examples:
        vdb sync -c notes --postgres postgres://me@db.example/vectors
        PGPASSWORD=… vdb sync -c notes --postgres postgres://me@10.0.0.5/vectors \\
          --table notes_v2
        vdb sync -c notes \\
          --postgres 'postgres://postgres@/postgres?host=/run/postgresql'
      """)

  @OptionGroup var database: DatabaseOptions
  @OptionGroup var target: CollectionOption
  @Option(help: "A PostgreSQL URL: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=…].")
  var postgres: String
  @Option(help: "The table to write (default: the collection's name).") var table: String?
  @OptionGroup var output: OutputOptions

  func run() throws {
    let sync = try PostgresSync(
      database: database.open(readOnly: true), collection: try target.name(),
      postgres: postgres, table: table)
    let bar = ProgressLine(label: "sync", unit: "rows")
    let report = try Self.wait {
      try await sync.run { try bar.update($0) }
    }
    bar.finish()
    if output.isJSON { return try Terminal.printJSON(report) }
    print(
      "synced \(Terminal.count(report.documents, "document")) into \(report.table) in \(Terminal.seconds(report.seconds))"
        + " (generation \(report.generation)\(report.modelVersion.map { ", model v\($0)" } ?? ""))"
        + ": \(report.inserted) inserted, \(report.updated) updated, \(report.deleted) deleted"
        + (report.swapped ? "; new table \(report.physicalTable) swapped in" : ""))
  }

  /// Runs `body` to its end from this synchronous command.
  private static func wait<R>(_ body: @escaping @Sendable () async throws -> R) throws -> R {
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: Result<R, Error>?
    Task {
      do { result = .success(try await body()) } catch { result = .failure(error) }
      done.signal()
    }
    done.wait()
    return try result!.get()
  }
}
