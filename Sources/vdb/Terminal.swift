import Foundation
import VectorDB

#if canImport(Glibc)
  import Glibc
#endif

/// Printing for people (aligned tables, one-line errors) and for scripts (JSON).
enum Terminal {
  static func error(_ message: String, hint: String?) {
    Terminal.standardError("error: \(shown(message))\n")
    if let hint { Terminal.standardError("hint: \(shown(hint))\n") }
  }

  /// Writes `text` to standard error, unbuffered. A failure (a closed descriptor) is
  /// ignored: there is nowhere left to report it, and FileHandle's `write` would end the
  /// process instead.
  static func standardError(_ text: String) {
    fputs(text, stderr)
  }

  /// Whatever standard output still buffers, written; a failure to write there (a full
  /// disk, a closed descriptor) is an error rather than exit 0 with output lost. A reader
  /// that went away (`vdb get … | head`) is not: the command was done with it.
  static func flushStandardOutput() throws {
    errno = 0
    guard fflush(stdout) != 0 || ferror(stdout) != 0 else { return }
    let code = errno
    guard code != EPIPE else { return }
    throw CLIError(
      message: "standard output: cannot write"
        + (code == 0 ? "" : " (\(String(cString: strerror(code)).lowercased()))"))
  }

  static func warn(_ message: String) {
    Terminal.standardError("warning: \(shown(message))\n")
  }

  /// A message's lines with their control characters escaped: errors repeat ids and
  /// texts as given, and the terminal must show them, not obey them. A line is cut after
  /// 1,000 characters: a 5 MB word repeated in full would bury the message.
  private static func shown(_ message: String) -> String {
    let longest = 1_000
    return message.split(separator: "\n", omittingEmptySubsequences: false).map { line in
      guard line.count > longest else { return escaped(String(line)) }
      return escaped(String(line.prefix(longest)))
        + "… (\(line.count - longest) more characters)"
    }.joined(separator: "\n")
  }

  /// `value` in the one JSON convention of every `--json` output (`JSONOutput`):
  /// snake_case keys, `null` for absent values, keys sorted; one line unless `pretty`.
  static func json(_ value: some Encodable, pretty: Bool = false) throws -> Data {
    try JSONOutput.data(value, pretty: pretty)
  }

  /// Prints one JSON value (pretty when stdout is a terminal).
  static func printJSON(_ value: some Encodable) throws {
    let pretty = isatty(STDOUT_FILENO) != 0
    print(String(decoding: try json(value, pretty: pretty), as: UTF8.self))
  }

  /// Prints one JSON value on one line (JSON Lines streams).
  static func printJSONLine(_ value: some Encodable) throws {
    print(String(decoding: try json(value), as: UTF8.self))
  }

  /// The width tables fit: `$COLUMNS`, else the terminal's; nil when stdout is not a
  /// terminal (nothing is truncated then).
  static var width: Int? {
    guard isatty(STDOUT_FILENO) != 0 else { return nil }
    if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap({ Int($0) }),
      columns > 0
    {
      return columns
    }
    var size = winsize()
    if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 {
      return Int(size.ws_col)
    }
    return 100
  }

  /// Prints rows in the shell's output mode (`.mode`, `.headers`; an aligned table
  /// outside the shell). In a table on a terminal, `flexibleColumn` is truncated with
  /// … to fit the width; control characters are escaped in every mode but csv (they
  /// could rewrite the terminal).
  static func printTable(headers: [String], rows: [[String]], flexibleColumn: Int? = nil) {
    let state = Session.state
    let mode = state?.mode ?? .table
    let showHeaders = state?.headers ?? true
    let rows = mode == .csv ? rows : rows.map { $0.map { $0.excerpt(maxCellCharacters) } }
    switch mode {
    case .csv:
      for row in (showHeaders ? [headers] : []) + rows {
        print(row.map(csvField).joined(separator: ","))
      }
    case .markdown:
      let cells = rows.map { $0.map { escaped($0).replacingOccurrences(of: "|", with: "\\|") } }
      if showHeaders {
        print("| " + headers.joined(separator: " | ") + " |")
        print("|" + headers.map { _ in "---|" }.joined())
      }
      for row in cells { print("| " + row.joined(separator: " | ") + " |") }
    case .line:
      let nameWidth = headers.map(displayWidth).max() ?? 0
      for (index, row) in rows.enumerated() {
        if index > 0 { print("") }
        for (name, cell) in zip(headers, row) {
          print(
            String(repeating: " ", count: nameWidth - displayWidth(name)) + name + " = "
              + escaped(cell))
        }
      }
    case .table, .json:
      printAligned(
        headers: showHeaders ? headers : nil, rows: rows.map { $0.map(escaped) },
        flexibleColumn: flexibleColumn)
    }
  }

  private static func printAligned(headers: [String]?, rows: [[String]], flexibleColumn: Int?) {
    let cells = (headers.map { [$0] } ?? []) + rows
    guard let columns = cells.first?.count else { return }
    var widths = (0..<columns).map { column in cells.map { displayWidth($0[column]) }.max() ?? 0 }
    if let flexible = flexibleColumn, let width {
      let others = widths.enumerated().filter { $0.offset != flexible }.map(\.element).reduce(0, +)
      widths[flexible] = max(10, min(widths[flexible], width - others - 2 * (widths.count - 1)))
    }
    for row in cells {
      let line = row.enumerated().map { column, cell in
        let fitted = truncated(cell, to: widths[column])
        return column == row.count - 1
          ? fitted : fitted + String(repeating: " ", count: widths[column] - displayWidth(fitted))
      }
      var joined = line.joined(separator: "  ")
      while joined.last == " " { joined.removeLast() }
      print(joined)
    }
  }

  /// The most characters a cell shows in a table for reading (every mode but csv): a
  /// 50 MB text is not read on a screen, and measuring it took seconds. `--json` and
  /// csv give whole values.
  static let maxCellCharacters = 1_000

  /// `text` cut to `width` terminal cells, ending in … when cut.
  static func truncated(_ text: String, to width: Int) -> String {
    guard displayWidth(text) > width else { return text }
    var result = ""
    var used = 0
    for character in text {
      let cells = displayWidth(character)
      if used + cells > width - 1 { break }
      result.append(character)
      used += cells
    }
    return result + "…"
  }

  /// Terminal cells `text` takes: 2 for wide (CJK) and emoji characters, 0 for
  /// combining marks and zero-width characters, 1 otherwise.
  static func displayWidth(_ text: String) -> Int {
    text.reduce(0) { $0 + displayWidth($1) }
  }

  static func displayWidth(_ character: Character) -> Int {
    let scalars = character.unicodeScalars
    guard let first = scalars.first else { return 0 }
    if first.properties.isEmojiPresentation
      || (first.properties.isEmoji && scalars.contains { $0.value == 0xFE0F })
    {
      return 2
    }
    switch first.properties.generalCategory {
    case .nonspacingMark, .enclosingMark, .format, .control: return 0
    default: break
    }
    return isWide(first.value) ? 2 : 1
  }

  /// East Asian Wide and Fullwidth ranges (Unicode 15, UAX #11), condensed.
  private static func isWide(_ value: UInt32) -> Bool {
    switch value {
    case 0x1100...0x115F, 0x231A...0x231B, 0x2329...0x232A, 0x2E80...0x303E, 0x3041...0x33FF,
      0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF, 0xA960...0xA97F, 0xAC00...0xD7A3,
      0xF900...0xFAFF, 0xFE10...0xFE19, 0xFE30...0xFE6F, 0xFF00...0xFF60, 0xFFE0...0xFFE6,
      0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x20000...0x2FFFD, 0x30000...0x3FFFD:
      return true
    default:
      return false
    }
  }

  /// `text` with control characters written as escapes (`\n`, `\t`, `\r`, `\u{1B}`):
  /// ids, texts and queries are shown, never obeyed by the terminal.
  static func escaped(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: isControl) else { return text }
    var result = ""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\n": result += "\\n"
      case "\t": result += "\\t"
      case "\r": result += "\\r"
      case _ where isControl(scalar):
        result += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
      default: result.unicodeScalars.append(scalar)
      }
    }
    return result
  }

  private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
    scalar.properties.generalCategory == .control || scalar.value == 0x2028
      || scalar.value == 0x2029 || (0x202A...0x202E).contains(scalar.value)
      || (0x2066...0x2069).contains(scalar.value)
  }

  /// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
  static func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
  }

  static func bytes(_ count: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(count)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
      value /= 1024
      unit += 1
    }
    return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
  }

  /// "1 document", "2 documents": `count` and the noun, plural unless it is one.
  static func count(_ count: Int, _ noun: String) -> String {
    "\(count) \(noun)\(count == 1 ? "" : "s")"
  }

  static func seconds(_ value: Double) -> String {
    value < 60
      ? String(format: "%.1f s", value)
      : String(format: "%dm%02ds", Int(value) / 60, Int(value) % 60)
  }
}

/// A progress line on stderr: updated in place on a terminal, a plain line every
/// few seconds otherwise. Shows percentage, count, rate (as seconds per step when
/// slower than one a second) and an ETA from a moving average of the recent rate;
/// a finished line stays on screen.
final class ProgressLine {
  private let label: String
  private let unit: String
  private let singular: String
  private let start = Date()
  private var lastPrint = Date.distantPast
  private var last: (time: Date, done: Int)?
  /// Units per second, averaged over recent updates (exponentially).
  private var recentRate: Double?
  private var text = ""
  private let isTerminal = isatty(STDERR_FILENO) != 0

  init(label: String, unit: String) {
    self.label = label
    self.unit = unit
    singular =
      unit.hasSuffix("ies")
      ? String(unit.dropLast(3)) + "y" : unit.hasSuffix("s") ? String(unit.dropLast()) : unit
  }

  /// Shows `progress`; throws `CancellationError` once Ctrl-C was pressed, which
  /// stops the operation after its last committed step.
  func update(_ progress: OperationProgress, extra: String = "") throws {
    if Interrupt.requested {
      finish()
      Interrupt.reached = "\(progress.done) of \(progress.total) \(unit)"
      throw CancellationError()
    }
    let now = Date()
    if let last, progress.done > last.done {
      let rate = Double(progress.done - last.done) / max(now.timeIntervalSince(last.time), 1e-9)
      recentRate = recentRate.map { 0.7 * $0 + 0.3 * rate } ?? rate
    }
    last = (now, progress.done)
    let interval = isTerminal ? 0.1 : 5
    guard now.timeIntervalSince(lastPrint) >= interval || progress.done == progress.total else {
      return
    }
    lastPrint = now
    let finished = progress.done >= progress.total
    // The first update has no interval to measure; a finished line shows the average.
    let rate =
      finished ? Double(progress.done) / max(now.timeIntervalSince(start), 1e-9) : recentRate
    let percent = progress.total > 0 ? 100 * Double(progress.done) / Double(progress.total) : 100
    let speed =
      rate.map {
        $0 >= 1 || $0 == 0
          ? String(format: "%.0f/s", $0) : String(format: "%.1f s/%@", 1 / $0, singular)
      } ?? "…/s"
    var eta = "ETA ?"
    if finished {
      eta = "done in " + Terminal.seconds(now.timeIntervalSince(start))
    } else if let rate, rate > 0 {
      eta = "ETA " + Terminal.seconds(Double(progress.total - progress.done) / rate)
    }
    text =
      "\(label) \(String(format: "%3.0f%%", percent)) \(progress.done)/\(progress.total) \(unit), "
      + "\(speed), \(eta)\(extra)"
    Terminal.standardError(isTerminal ? "\r\u{1B}[2K" + text : text + "\n")
  }

  /// Ends the line on a terminal, leaving its last state on screen.
  func finish() {
    if isTerminal && lastPrint != .distantPast {
      Terminal.standardError("\n")
      lastPrint = .distantPast
    }
  }
}

/// Ctrl-C during a long operation: the first press asks the operation to stop at its
/// next commit point; the default action (exit) is restored meanwhile, so a second
/// press ends the process (committed work is still safe).
enum Interrupt {
  nonisolated(unsafe) private static var flag: sig_atomic_t = 0

  static var requested: Bool { flag != 0 }

  /// How far the interrupted operation got, as its progress line counts ("31744 of
  /// 300000 docs": for an import, the documents committed).
  nonisolated(unsafe) static var reached: String?

  /// Installs the handler (the shell does this; one-shot commands keep the default).
  static func install() {
    signal(SIGINT) { _ in
      Interrupt.flag = 1
      signal(SIGINT, SIG_DFL)
    }
  }

  /// Re-arms after an interrupted command.
  static func reset() {
    flag = 0
    reached = nil
    install()
  }
}
