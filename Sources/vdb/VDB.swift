import ArgumentParser
import Foundation
import VDBSync
import VectorDB

/// The `vdb` shell: one subcommand per operation of the `VectorDB` library.
@main
struct VDB: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "vdb",
    abstract: "A local vector database that trains its own retriever.",
    discussion: """
      The database is a directory: --db PATH, else $VDB_PATH, else ./vdb.db.

      Getting started (docs/shell.md has every command):
        vdb init                              create the database (stores the model)
        vdb import docs.jsonl -c notes        import JSON Lines (embeds them)
        vdb query -c notes "how do I …" -k 5  search; prints a log id
        vdb feedback LOG_ID DOC_ID            that document was the right one
        vdb eval -c notes --from-log          how good is retrieval?
        vdb train -c notes                    fine-tune the encoder from the log
        vdb train -c notes --tier adapter     or a query adapter (no re-embed)
        vdb reembed -c notes --model 2        re-embed with a model, then switch
        vdb models rollback -c notes          undo the last switch
        vdb collections                       list, create, drop, rename
        vdb status                            collections, models, jobs, size
        vdb route -r support "my invoice?"    which path handles it
        vdb verify                            check every table, index and model
        vdb serve                             the database over HTTP
        vdb sync -c notes --postgres URL      copy into PostgreSQL + pgvector
        vdb                                   the interactive shell

      Exit codes: 0 ok, 1 user error (bad input, unknown id), 2 usage error,
      3 database error (damaged, newer format, I/O).
      """,
    version: "vdb \(version) (database format \(Database.currentFormatVersion))",
    subcommands: [
      Init.self, Collections.self, Import.self, Upsert.self, Update.self, Get.self, Delete.self,
      Count.self, Query.self, Embed.self,
      FeedbackCommand.self, Log.self, Eval.self, Train.self, Reembed.self, Models.self, Status.self,
      Export.self, Backup.self, Route.self, Verify.self, Serve.self, Sync.self, ShellCommand.self,
    ])

  @OptionGroup var database: DatabaseOptions

  /// With no subcommand: the interactive shell (or a script read from stdin).
  func run() throws {
    try REPL(databasePath: database.path).run()
  }

  static func main() {
    Interrupt.install()
    // Output piped into `head` must not kill the process before the query log (written
    // in the background) is committed: writes to a closed pipe fail quietly instead.
    signal(SIGPIPE, SIG_IGN)
    // A write past the file size limit (`ulimit -f`) fails with EFBIG, which is reported,
    // instead of ending the process with a core dump.
    signal(SIGXFSZ, SIG_IGN)
    do {
      // `vdb help WORD` names no command either when WORD is none (ArgumentParser would
      // print the general help and exit 0).
      let words = CommandLine.arguments.dropFirst()
      for word in words.first == "help" ? words.prefix(2) : words.prefix(1) {
        if let unknown = unknownCommand(word, shell: false) { throw unknown }
      }
      var command = try parseAsRoot()
      try command.run()
      try Terminal.flushStandardOutput()
    } catch {
      Foundation.exit(report(error))
    }
  }

  /// Prints `error` as one `error:` line (plus a `hint:` line) — or the help text it
  /// carries — and returns the documented exit code.
  static func report(_ error: Error) -> Int32 {
    switch error {
    case let error as VectorDBError:
      Terminal.error(error.description, hint: error.hint)
      return error.exitCode
    case let error as SyncError:
      Terminal.error(error.message, hint: error.hint)
      return error.kind == .input ? 1 : 3
    case let error as CLIError:
      Terminal.error(error.message, hint: error.hint)
      return error.usage ? 2 : 1
    case let code as ExitCode:
      return code.rawValue
    case is OutputClosed:
      return 0
    case is CancellationError:
      Terminal.error(
        "interrupted" + (Interrupt.reached.map { " after \($0)" } ?? "")
          + "; work committed so far is kept", hint: "run the same command again to finish")
      return 130
    default:
      // Errors of lower modules (index, storage, training, files) as the case they are.
      if let error = VectorDBError(wrapping: error, path: Fault.databasePath ?? "the database") {
        return report(error)
      }
      let code = exitCode(for: error)
      if code == .success {
        print(fullMessage(for: error))
        return 0
      }
      let message =
        fullMessage(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
      let text = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
      Terminal.error(text, hint: "see `vdb help` or `vdb help SUBCOMMAND`")
      return 2
    }
  }
}

extension VDB {
  /// The release, as `vdb --version` prints it.
  static let version = "0.1.0"
}

/// An error in the shell's own input (arguments that parse but make no sense).
struct CLIError: Error {
  var message: String
  var hint: String? = nil
  /// A usage error (exit 2), not bad input (exit 1).
  var usage = false
}

extension VectorDBError {
  /// 1 for the user's input, 2 for an option out of its range (as the parser's own
  /// range checks), 3 for the database itself.
  var exitCode: Int32 {
    switch self {
    case .invalidInput(source: "option", _, _): return 2
    case .storage, .damaged, .newerFormat, .notADatabase: return 3
    default: return 1
    }
  }
}

/// Options every command that touches a database takes.
struct DatabaseOptions: ParsableArguments {
  @Option(name: .long, help: "Database directory (default: $VDB_PATH, else ./vdb.db).")
  var db: String?

  func validate() throws {
    if db?.isEmpty == true { throw ValidationError("--db is empty: give the database directory") }
  }

  var path: String {
    db ?? Session.state?.databasePath
      ?? ProcessInfo.processInfo.environment["VDB_PATH"].flatMap { $0.isEmpty ? nil : $0 }
      ?? "vdb.db"
  }

  /// Opens the existing database (commands other than `init` never create one); in
  /// the shell, the session's database, opened once and writable. Commands that only
  /// read pass `readOnly`, so that on their own they write nothing.
  func open(readOnly: Bool = false) throws -> Database {
    let path = self.path
    Fault.arm(path: path)
    func open(readOnly: Bool) throws -> Database {
      if ProcessInfo.processInfo.environment["VDB_TRACE"] != nil {
        Terminal.standardError("trace: open database \(path)\n")
      }
      var options = Database.Options()
      options.create = false
      options.readOnly = readOnly
      let db = try Database(path: path, options: options)
      if db.isReadOnly && !readOnly {
        Terminal.warn("\(path) is not writable by this user: opened read-only")
      }
      return db
    }
    if let state = Session.state, state.databasePath == path {
      return try Session.database { try open(readOnly: false) }
    }
    return try open(readOnly: readOnly)
  }
}

struct OutputOptions: ParsableArguments {
  @Flag(
    name: .long, help: "Print JSON instead of a table (default in the shell after `.mode json`).")
  var json = false

  var isJSON: Bool { json || Session.state?.mode == .json }
}

struct CollectionOption: ParsableArguments {
  @Option(
    name: [.customShort("c"), .long],
    help: "The collection (default: $VDB_COLLECTION, set by `use` in the shell).")
  var collection: String?

  /// The collection named by -c, else by `use` in the shell, else by $VDB_COLLECTION.
  func name() throws -> String { try Self.name(collection) }

  /// `given`, else the default; none is a missing argument (exit 2).
  static func name(_ given: String?) throws -> String {
    if let name = given ?? defaultName { return name }
    throw CLIError(
      message: "no collection given",
      hint: "pass -c NAME, set $VDB_COLLECTION, or `use NAME` in the shell", usage: true)
  }

  /// The collection of `use` in the shell, else $VDB_COLLECTION.
  static var defaultName: String? {
    Session.state?.collection
      ?? ProcessInfo.processInfo.environment["VDB_COLLECTION"].flatMap { $0.isEmpty ? nil : $0 }
  }
}
