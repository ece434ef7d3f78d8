import ArgumentParser
import CEditLine
import Foundation
import VectorDB

struct ShellCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "shell",
    abstract: "Open the interactive shell (also: `vdb` with no subcommand).",
    discussion: """
      Every subcommand works in the shell with the same arguments, without the `vdb`.
      Shell-only commands:
        use COLLECTION                      later commands default to -c COLLECTION
        .collections (.tables)              list the collections
        .mode table|json|csv|markdown|line  output format of later commands
        .headers on|off                     column names in table, csv, markdown
        .timing on|off                      print each command's wall time
        .output FILE                        later output goes to FILE (errors stay)
        .output                             output back to the terminal
        help [COMMAND]                      list commands, or one command's options
        .quit                               leave (or Ctrl-D; Ctrl-C clears the line)
      Lines pasted with a leading `vdb ` run as they are. The database (and the
      models it loads) stay open for the whole session. Piped input
      (`vdb < script.vdb`) runs the commands without prompts and stops with a
      non-zero exit at the first error. Lines starting with # are comments.
      """)

  @OptionGroup var database: DatabaseOptions

  func run() throws {
    try REPL(databasePath: database.path).run()
  }
}

/// What the shell remembers between commands: the database, the collection of `use`,
/// and the output settings. Commands read it through `Session.state` (nil outside the
/// shell), so one parser serves both.
struct ShellState {
  enum Mode: String, CaseIterable {
    case table, json, csv, markdown, line
  }
  var databasePath: String
  var collection: String?
  var mode = Mode.table
  var headers = true
  var timing = false
}

/// The running shell's state and its one open `Database`.
enum Session {
  nonisolated(unsafe) static var state: ShellState?
  nonisolated(unsafe) private static var database: Database?

  /// The session's database, opened by `open` the first time (and again only if that
  /// failed): its encoders, adapters and index caches live as long as the shell.
  static func database(_ open: () throws -> Database) rethrows -> Database {
    if let database { return database }
    let opened = try open()
    database = opened
    return opened
  }
}

/// The interactive shell: reads a line, splits it like a POSIX shell would, and runs
/// it through the same parser as the command line.
final class REPL {
  private let interactive = isatty(STDIN_FILENO) != 0
  private let historyPath = (ProcessInfo.processInfo.environment["HOME"] ?? ".") + "/.vdb_history"
  /// The shell's own standard output, kept while `.output FILE` points descriptor 1 at
  /// a file (the prompt keeps going to it).
  private let terminalOutput = dup(STDOUT_FILENO)

  init(databasePath: String) {
    Session.state = ShellState(
      databasePath: databasePath,
      collection: ProcessInfo.processInfo.environment["VDB_COLLECTION"].flatMap {
        $0.isEmpty ? nil : $0
      })
  }

  private var state: ShellState {
    get { Session.state! }
    set { Session.state = newValue }
  }

  func run() throws {
    if interactive {
      print(
        "vdb shell on \(state.databasePath): `help` for commands, `.quit` or Ctrl-D to leave")
      read_history(historyPath)
      Completion.install()
      rl_outstream = fdopen(dup(terminalOutput), "w")
    }
    var lineNumber = 0
    while let line = readLine() {
      lineNumber += 1
      let trimmed = line.trimmingCharacters(in: .whitespaces)
      if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
      if interactive {
        add_history(trimmed)
        write_history(historyPath)
      }
      if [".quit", ".exit", "exit", "quit"].contains(trimmed) { break }
      let start = Date()
      let code = execute(trimmed)
      if state.timing {
        print(String(format: "time: %.3f s", Date().timeIntervalSince(start)))
      }
      fflush(stdout)  // a command's output is whole when the next is read, pipes too
      if code != 0 && !interactive {
        let line = Terminal.escaped(trimmed.excerpt())
        Terminal.standardError("error at line \(lineNumber): \(line)\n")
        throw ExitCode(code)
      }
    }
    if interactive { print("") }
  }

  private var prompt: String {
    state.collection.map { "vdb:\($0)> " } ?? "vdb> "
  }

  /// The next line; nil at the end of input (Ctrl-D). Ctrl-C at the prompt abandons
  /// the line being typed and prompts again, as sqlite3 and psql do.
  private func readLine() -> String? {
    guard interactive else { return Swift.readLine() }
    while true {
      Interrupt.reset()
      guard let raw = readline(prompt) else {
        if Interrupt.requested {
          print("^C")
          continue
        }
        return nil
      }
      defer { free(raw) }
      return String(cString: raw)
    }
  }

  /// Runs one line; returns its exit code (0 ok).
  private func execute(_ line: String) -> Int32 {
    var words: [String]
    do {
      words = try REPL.split(line)
    } catch {
      return VDB.report(error)
    }
    if words.first == "vdb" { words.removeFirst() }  // a pasted command line
    guard let command = words.first else { return 0 }
    func setting(_ values: [String]) -> String? {
      words.count == 2 && values.contains(words[1]) ? words[1] : nil
    }
    switch command {
    case "use":
      guard words.count == 2 else { return usage("use COLLECTION") }
      state.collection = words[1]
      // A typo would surface only at the next command, or become a new collection.
      if let names = try? DatabaseOptions.parse([]).open().collectionNames(),
        !names.contains(words[1])
      {
        Terminal.warn("no collection named \"\(words[1])\" yet: import or upsert creates it")
      }
      return 0
    case ".timing", ".headers":
      guard let value = setting(["on", "off"]) else { return usage("\(command) on|off") }
      if command == ".timing" {
        state.timing = value == "on"
      } else {
        state.headers = value == "on"
      }
      return 0
    case ".mode":
      guard let value = setting(ShellState.Mode.allCases.map(\.rawValue)) else {
        return usage(".mode " + ShellState.Mode.allCases.map(\.rawValue).joined(separator: "|"))
      }
      state.mode = ShellState.Mode(rawValue: value)!
      return 0
    case ".output":
      guard words.count <= 2 else { return usage(".output [FILE]") }
      return redirectOutput(to: words.count == 2 ? words[1] : nil)
    case ".collections", ".tables":
      words = ["collections"]
    case "help", ".help":
      print(
        VDB.helpMessage(for: words.count > 1 ? VDB.subcommandType(words[1]) ?? VDB.self : VDB.self))
      print(ShellCommand.configuration.discussion)
      return 0
    default:
      break
    }
    do {
      if let unknown = VDB.unknownCommand(words[0], shell: true) { throw unknown }
      var parsed = try VDB.parseAsRoot(words)
      if parsed is ShellCommand || parsed is VDB {
        throw CLIError(message: "already in the shell")
      }
      Interrupt.reset()
      try parsed.run()
      return 0
    } catch {
      return VDB.report(error)
    }
  }

  /// Points standard output at `path` (created or truncated), or back at the shell's
  /// own output for nil, as sqlite3's `.output` does. Every command's output follows,
  /// since they all print to descriptor 1; errors stay on standard error.
  private func redirectOutput(to path: String?) -> Int32 {
    fflush(stdout)
    guard let path else {
      dup2(terminalOutput, STDOUT_FILENO)
      return 0
    }
    do {
      try checkWritable(path, database: state.databasePath)
    } catch {
      return VDB.report(error)
    }
    let file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard file >= 0 else {
      let reason = String(cString: strerror(errno))
      return VDB.report(CLIError(message: "\(path): cannot write it: \(reason)"))
    }
    dup2(file, STDOUT_FILENO)
    close(file)
    return 0
  }

  private func usage(_ text: String) -> Int32 {
    VDB.report(CLIError(message: "usage: \(text)", usage: true))
  }

  struct UnterminatedQuote: Error, CustomStringConvertible {
    var description: String { "unterminated quote" }
  }

  /// Splits a line into words: whitespace separates, '…' and "…" quote, and a
  /// backslash escapes the next character (outside single quotes).
  static func split(_ line: String) throws -> [String] {
    var words: [String] = []
    var current = ""
    var inWord = false
    var quote: Character?
    var escaped = false
    for character in line {
      if escaped {
        current.append(character)
        escaped = false
      } else if let open = quote {
        if character == open {
          quote = nil
        } else if character == "\\" && open == "\"" {
          escaped = true
        } else {
          current.append(character)
        }
      } else if character == "'" || character == "\"" {
        quote = character
        inWord = true
      } else if character == "\\" {
        escaped = true
        inWord = true
      } else if character.isWhitespace {
        if inWord { words.append(current) }
        current = ""
        inWord = false
      } else {
        current.append(character)
        inWord = true
      }
    }
    if quote != nil || escaped {
      throw CLIError(message: "unterminated quote or escape in: \(line)")
    }
    if inWord { words.append(current) }
    return words
  }
}

extension VDB {
  /// The shell's own commands, for completion and "did you mean".
  static let shellCommands = [
    "use", "help", ".collections", ".tables", ".mode", ".headers", ".timing", ".output",
    ".quit",
  ]

  /// An error for a word that names no command, with the closest one as a hint; nil
  /// for a command (or an option, left to the parser).
  static func unknownCommand(_ word: String, shell: Bool) -> CLIError? {
    let names = subcommandNames + ["help"] + (shell ? shellCommands : [])
    guard !word.hasPrefix("-"), !names.contains(word) else { return nil }
    // A word far longer than every name is close to none (and its distances cost
    // time in its length).
    let closest =
      word.count > 40 ? nil : names.map { ($0, editDistance(word, $0)) }.min { $0.1 < $1.1 }
    return CLIError(
      message: "unknown command \"\(word)\"",
      hint: closest.flatMap { $0.1 <= max(1, word.count / 3) ? "did you mean `\($0.0)`?" : nil }
        ?? (shell ? "`help` lists the commands" : "`vdb help` lists the commands"),
      usage: true)
  }

  /// Levenshtein distance between two words.
  static func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(1, a.count) where !a.isEmpty {
      var current = [i] + Array(repeating: 0, count: b.count)
      for j in 1...max(1, b.count) where !b.isEmpty {
        current[j] = min(
          previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
      }
      previous = current
    }
    return a.isEmpty ? b.count : previous[b.count]
  }

  /// The subcommand type named `name`, if any.
  static func subcommandType(_ name: String) -> ParsableCommand.Type? {
    configuration.subcommands.first { $0._commandName == name }
  }

  static var subcommandNames: [String] {
    configuration.subcommands.map { $0._commandName }
  }
}

/// Tab completion: command names first, then collection names after -c/--collection/use,
/// then the options of the command being typed.
enum Completion {
  nonisolated(unsafe) static var candidates: [String] = []
  nonisolated(unsafe) static var index = 0

  static func install() {
    rl_attempted_completion_function = { text, start, _ in
      let line = String(cString: rl_line_buffer)
      let before = REPL.wordsBefore(line, offset: Int(start))
      Completion.candidates = Completion.options(before: before)
      Completion.index = 0
      return rl_completion_matches(text) { text, state in
        let prefix = String(cString: text!)
        if state == 0 { Completion.index = 0 }
        while Completion.index < Completion.candidates.count {
          let candidate = Completion.candidates[Completion.index]
          Completion.index += 1
          if candidate.hasPrefix(prefix) { return strdup(candidate) }
        }
        return nil
      }
    }
  }

  static func options(before words: [String]) -> [String] {
    guard let command = words.first else {
      return VDB.subcommandNames + VDB.shellCommands
    }
    if ["-c", "--collection", "use"].contains(words.last ?? "") {
      return (try? DatabaseOptions.parse([]).open().collectionNames()) ?? []
    }
    if command == "help" { return VDB.subcommandNames }
    guard let type = VDB.subcommandType(command) else { return [] }
    let help = type.helpMessage()
    if let option = words.last, let values = values(of: option, in: help) { return values }
    return help.split(whereSeparator: { $0.isWhitespace || $0 == "," || $0 == "<" })
      .map(String.init).filter { $0.hasPrefix("--") }
  }

  /// For an option that takes a value: the values its help lists ("(values: full,
  /// adapter; …)"), none when any value goes. Nil for a flag or an unknown option.
  static func values(of option: String, in help: String) -> [String]? {
    guard option.hasPrefix("-") else { return nil }
    let text = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    guard let start = text.range(of: " \(option) <") else { return nil }
    let entry = text[start.upperBound...]
    let end = entry.range(of: " --")?.lowerBound ?? entry.endIndex
    guard let values = entry[..<end].range(of: "(values: ") else { return [] }
    return entry[values.upperBound..<end].prefix { $0 != ";" && $0 != ")" }
      .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
  }
}

extension REPL {
  /// The words of `line` before the character offset `offset`.
  static func wordsBefore(_ line: String, offset: Int) -> [String] {
    let head = String(line.utf8.prefix(offset)) ?? line
    return (try? split(head)) ?? head.split(separator: " ").map(String.init)
  }
}
