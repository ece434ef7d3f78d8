import ArgumentParser
import XCTest

@testable import vdb

/// `vdb … --help` as an 80-column terminal shows it.
final class HelpTextTests: XCTestCase {
  /// ArgumentParser wraps a line of a command's discussion that does not fit the terminal
  /// (79 columns of 80) where it happens to break: an example row falls apart, and a paragraph written as
  /// lines a little too long ends each one with a stray word. A wider line is fine only as
  /// a whole paragraph of prose, which wraps cleanly.
  func testEveryDiscussionFitsAnEightyColumnTerminal() {
    var commands: [(name: String, type: ParsableCommand.Type)] = [("vdb", VDB.self)]
    var checked = 0
    while let (name, command) = commands.popLast() {
      checked += 1
      let lines = command.configuration.discussion.split(
        separator: "\n", omittingEmptySubsequences: false)
      for (index, line) in lines.enumerated() where line.count > 79 {
        let alone =
          (index == 0 || lines[index - 1].isEmpty)
          && (index == lines.count - 1 || lines[index + 1].isEmpty)
        XCTAssertTrue(alone && line.first != " ", "\(name) --help, \(line.count) columns: \(line)")
      }
      for sub in command.configuration.subcommands {
        commands.append(("\(name) \(sub._commandName)", sub))
      }
    }
    XCTAssertGreaterThan(checked, 30)  // the walk reached the nested commands
  }
}
