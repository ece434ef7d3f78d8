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
        use COLLECTION     later commands default to -c COLLECTION
        .mode table|json   output format of later commands
        .timing on|off     print each command's wall time
        help [COMMAND]     list commands, or one command's options
        .quit              leave (or Ctrl-D)
      Piped input (`vdb < script.vdb`) runs the commands without prompts and stops
      with a non-zero exit at the first error. Lines starting with # are comments.
      """)

  @OptionGroup var database: DatabaseOptions

  func run() throws {
    try REPL(databasePath: database.path).run()
  }
}

/// The interactive shell: reads a line, splits it like a POSIX shell would, and runs
/// it through the same parser as the command line.
final class REPL {
  private let interactive = isatty(STDIN_FILENO) != 0
  private var timing = false
  private let historyPath = (ProcessInfo.processInfo.environment["HOME"] ?? ".") + "/.vdb_history"

  init(databasePath: String) {
    // Subcommands read their defaults from the environment: one parser, not two.
    setenv("VDB_PATH", databasePath, 1)
  }

  func run() throws {
    if interactive {
      print(
        "vdb shell on \(ProcessInfo.processInfo.environment["VDB_PATH"]!): `help` for commands, `.quit` or Ctrl-D to leave"
      )
      read_history(historyPath)
      Completion.install()
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
      if trimmed == ".quit" || trimmed == ".exit" || trimmed == "exit" || trimmed == "quit" {
        break
      }
      let start = Date()
      let code = execute(trimmed)
      if timing {
        print(String(format: "time: %.3f s", Date().timeIntervalSince(start)))
      }
      if code != 0 && !interactive {
        FileHandle.standardError.write(Data("error at line \(lineNumber): \(trimmed)\n".utf8))
        throw ExitCode(code)
      }
    }
    if interactive { print("") }
  }

  private var prompt: String {
    let collection = ProcessInfo.processInfo.environment["VDB_COLLECTION"].flatMap {
      $0.isEmpty ? nil : $0
    }
    return collection.map { "vdb:\($0)> " } ?? "vdb> "
  }

  private func readLine() -> String? {
    guard interactive else { return Swift.readLine() }
    guard let raw = readline(prompt) else { return nil }
    defer { free(raw) }
    return String(cString: raw)
  }

  /// Runs one line; returns its exit code (0 ok).
  private func execute(_ line: String) -> Int32 {
    let words: [String]
    do {
      words = try REPL.split(line)
    } catch {
      return VDB.report(error)
    }
    switch (words.first ?? "", words.count) {
    case ("use", 2):
      setenv("VDB_COLLECTION", words[1], 1)
      return 0
    case (".timing", 2) where ["on", "off"].contains(words[1]):
      timing = words[1] == "on"
      return 0
    case (".mode", 2) where ["table", "json"].contains(words[1]):
      setenv("VDB_OUTPUT", words[1], 1)
      return 0
    case ("use", _), (".timing", _), (".mode", _):
      return VDB.report(
        CLIError(message: "usage: use COLLECTION | .timing on|off | .mode table|json"))
    case ("help", _), (".help", _):
      print(
        VDB.helpMessage(for: words.count > 1 ? VDB.subcommandType(words[1]) ?? VDB.self : VDB.self))
      print(ShellCommand.configuration.discussion)
      return 0
    default:
      break
    }
    do {
      var command = try VDB.parseAsRoot(words)
      if command is ShellCommand || command is VDB {
        throw CLIError(message: "already in the shell")
      }
      Interrupt.reset()
      try command.run()
      return 0
    } catch {
      return VDB.report(error)
    }
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
      return VDB.subcommandNames + ["use", "help", ".mode", ".timing", ".quit"]
    }
    if ["-c", "--collection", "use"].contains(words.last ?? "") {
      let path = ProcessInfo.processInfo.environment["VDB_PATH"] ?? "vdb.db"
      var options = Database.Options()
      options.create = false
      return (try? Database(path: path, options: options).collectionNames()) ?? []
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
