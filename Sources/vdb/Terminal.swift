import Foundation
import VectorDB

#if canImport(Glibc)
  import Glibc
#endif

/// Printing for people (aligned tables, one-line errors) and for scripts (JSON).
enum Terminal {
  static func error(_ message: String, hint: String?) {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    if let hint { FileHandle.standardError.write(Data("hint: \(hint)\n".utf8)) }
  }

  static func warn(_ message: String) {
    FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
  }

  static let jsonEncoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    return encoder
  }()

  /// Prints one JSON value (pretty when stdout is a terminal).
  static func printJSON(_ value: some Encodable) throws {
    let encoder = jsonEncoder
    if isatty(STDOUT_FILENO) != 0 { encoder.outputFormatting.insert(.prettyPrinted) }
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
  }

  /// Prints one JSON value on one line (JSON Lines streams).
  static func printJSONLine(_ value: some Encodable) throws {
    print(String(decoding: try jsonEncoder.encode(value), as: UTF8.self))
  }

  /// Terminal width, or 100 when not a terminal.
  static var width: Int {
    var size = winsize()
    if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 {
      return Int(size.ws_col)
    }
    return 100
  }

  /// Prints an aligned table; `flexibleColumn` is truncated with … to fit the width.
  static func printTable(headers: [String], rows: [[String]], flexibleColumn: Int? = nil) {
    let cells = ([headers] + rows).map { $0.map { $0.replacingOccurrences(of: "\n", with: " ") } }
    var widths = headers.indices.map { column in cells.map { $0[column].count }.max() ?? 0 }
    if let flexible = flexibleColumn {
      let others = widths.enumerated().filter { $0.offset != flexible }.map(\.element).reduce(0, +)
      widths[flexible] = max(10, min(widths[flexible], width - others - 2 * (widths.count - 1)))
    }
    for row in cells {
      let line = row.enumerated().map { column, cell in
        let fitted =
          cell.count > widths[column] ? String(cell.prefix(widths[column] - 1)) + "…" : cell
        return column == row.count - 1
          ? fitted : fitted.padding(toLength: widths[column], withPad: " ", startingAt: 0)
      }
      print(line.joined(separator: "  "))
    }
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

  static func seconds(_ value: Double) -> String {
    value < 60
      ? String(format: "%.1f s", value)
      : String(format: "%dm%02ds", Int(value) / 60, Int(value) % 60)
  }
}

/// A progress line on stderr: updated in place on a terminal, a plain line every
/// few seconds otherwise. Shows percentage, count, rate and ETA.
final class ProgressLine {
  private let label: String
  private let unit: String
  private let start = Date()
  private var lastPrint = Date.distantPast
  private let isTerminal = isatty(STDERR_FILENO) != 0

  init(label: String, unit: String) {
    self.label = label
    self.unit = unit
  }

  /// Shows `progress`; throws `CancellationError` once Ctrl-C was pressed, which
  /// stops the operation after its last committed step.
  func update(_ progress: OperationProgress, extra: String = "") throws {
    if Interrupt.requested {
      finish()
      throw CancellationError()
    }
    let now = Date()
    let interval = isTerminal ? 0.1 : 5
    guard now.timeIntervalSince(lastPrint) >= interval || progress.done == progress.total else {
      return
    }
    lastPrint = now
    let elapsed = now.timeIntervalSince(start)
    let rate = Double(progress.done) / max(elapsed, 1e-9)
    let percent = progress.total > 0 ? 100 * Double(progress.done) / Double(progress.total) : 100
    let eta = rate > 0 ? Double(progress.total - progress.done) / rate : 0
    let text = String(
      format: "%@ %3.0f%% %d/%d %@, %.0f/s, ETA %@%@", label, percent, progress.done,
      progress.total, unit, rate,
      Terminal.seconds(eta), extra)
    FileHandle.standardError.write(Data((isTerminal ? "\r\u{1B}[2K" + text : text + "\n").utf8))
  }

  func finish() {
    if isTerminal && lastPrint != .distantPast {
      FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
    }
  }
}

/// Ctrl-C during a long operation: the first press asks the operation to stop at its
/// next commit point; the default action (exit) is restored meanwhile, so a second
/// press ends the process (committed work is still safe).
enum Interrupt {
  nonisolated(unsafe) private static var flag: sig_atomic_t = 0

  static var requested: Bool { flag != 0 }

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
    install()
  }
}
