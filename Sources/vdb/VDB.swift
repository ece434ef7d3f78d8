import ArgumentParser
import Foundation
import VectorDB

/// The `vdb` shell: one subcommand per operation of the `VectorDB` library.
@main
struct VDB: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "vdb",
    abstract: "A local vector database that trains its own retriever.",
    discussion: """
      The database is a directory: --db PATH, else $VDB_PATH, else ./vdb.db.

      Getting started:
        vdb init                                   create the database
        vdb import docs.jsonl -c notes             import JSON Lines documents
        vdb upsert -c notes --id n1 --text "…"     add or replace one document
        vdb get -c notes n1                        read documents back
        vdb status                                 collections, counts, size

      Exit codes: 0 ok, 1 user error (bad input, unknown id), 2 usage error,
      3 database error (damaged, newer format, I/O).
      """,
    subcommands: [
      Init.self, Import.self, Upsert.self, Get.self, Delete.self, Status.self,
    ])

  /// Runs the command and maps errors to one `error:` line (plus a `hint:`) and the
  /// documented exit codes.
  static func main() {
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch let error as VectorDBError {
      Terminal.fail(error.description, hint: error.hint, code: error.exitCode)
    } catch let error as CLIError {
      Terminal.fail(error.message, hint: error.hint, code: 1)
    } catch {
      let code = exitCode(for: error)
      if code == .success || error is CleanExit { exit(withError: error) }
      let message =
        fullMessage(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
      let text = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
      Terminal.fail(text, hint: "see `vdb help` or `vdb help SUBCOMMAND`", code: 2)
    }
  }
}

/// An error in the shell's own input (arguments that parse but make no sense).
struct CLIError: Error {
  var message: String
  var hint: String? = nil
}

extension VectorDBError {
  /// 1 for the user's input, 3 for the database itself.
  var exitCode: Int32 {
    switch self {
    case .storage, .damaged, .newerFormat, .notADatabase: return 3
    default: return 1
    }
  }
}

/// Options every command that touches a database takes.
struct DatabaseOptions: ParsableArguments {
  @Option(name: .long, help: "Database directory (default: $VDB_PATH, else ./vdb.db).")
  var db: String?

  var path: String {
    db ?? ProcessInfo.processInfo.environment["VDB_PATH"].flatMap { $0.isEmpty ? nil : $0 }
      ?? "vdb.db"
  }

  /// Opens the existing database (commands other than `init` never create one).
  func open() throws -> Database {
    var options = Database.Options()
    options.create = false
    return try Database(path: path, options: options)
  }
}

struct OutputOptions: ParsableArguments {
  @Flag(name: .long, help: "Print JSON instead of a table.")
  var json = false
}

struct CollectionOption: ParsableArguments {
  @Option(name: [.customShort("c"), .long], help: "The collection.")
  var collection: String
}
