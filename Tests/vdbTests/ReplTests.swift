import Foundation
import XCTest

/// The shell as sqlite3 users expect it: one open database, Ctrl-C, pasted `vdb`
/// lines, output modes, "did you mean", tables that align and never cut piped output.
final class ReplTests: XCTestCase {
  var directory: String!
  var db: String { directory + "/db" }

  override func setUpWithError() throws {
    directory = try Shell.temporaryDirectory("repl")
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// Many commands, pasted `vdb …` lines among them, open the database once.
  func testOneDatabaseForTheSessionAndPastedLines() throws {
    let script = """
      use notes
      upsert --id a --text "first"
      vdb upsert -c notes --id b --text "second"
      get a
      count
      vdb count -c notes
      .collections
      .mode json
      get b
      """
    let result = try Shell.vdb(["--db", db], environment: ["VDB_TRACE": "1"], input: script)
    XCTAssertEqual(result.status, 0, result.stderr)
    XCTAssertEqual(
      result.stderr.components(separatedBy: "trace: open database").count - 1, 1, result.stderr)
    XCTAssertTrue(result.stdout.contains("2\n2\n"), result.stdout)
    // `use` of a name that is not there yet says so (the upsert then created it).
    XCTAssertTrue(
      result.stderr.contains(#"warning: no collection named "notes" yet"#), result.stderr)
    XCTAssertTrue(result.stdout.contains("notes       2"), result.stdout)
    XCTAssertTrue(result.stdout.hasSuffix(#"{"id":"b","metadata":{},"text":"second"}"# + "\n"))
  }

  /// `.output FILE` sends later output to the file, `.output` back; a file that cannot
  /// be written is an error (on stderr) that leaves the output where it was.
  func testOutputToAFileAndBack() throws {
    let file = directory + "/out.txt"
    let script = """
      use notes
      upsert --id a --text "first"
      .output \(file)
      get a
      count
      .output
      vdb count -c notes
      .output /nonexistent/dir/out.txt
      count
      """
    let result = try Shell.vdb(["--db", db], input: script)
    XCTAssertEqual(result.status, 1, "stops at the unwritable .output: \(result.stderr)")
    let written = try String(contentsOfFile: file, encoding: .utf8)
    XCTAssertTrue(written.contains("first"), written)
    XCTAssertTrue(written.hasSuffix("1\n"), written)
    XCTAssertFalse(result.stdout.contains("first"), result.stdout)
    XCTAssertEqual(result.stdout, "upserted a into notes\n1\n", "nothing between the .outputs")
    XCTAssertTrue(
      result.stderr.contains("error: /nonexistent/dir/out.txt: its directory does not exist"),
      result.stderr)
  }

  func testModesHeadersAndEscapes() throws {
    let script = #"""
      use c
      upsert --id "a,1" --text "say \"hi\"" --meta '{"k": 1}'
      upsert --id "b" --text "bell\u{7}" --meta '{}'
      .mode csv
      get --limit 5
      .headers off
      get b
      .headers on
      .mode markdown
      get a,1
      .mode line
      get a,1
      """#
    let sent = script.replacingOccurrences(of: #"\u{7}"#, with: "\u{7}")
    let result = try Shell.vdb(["--db", db], input: sent)
    XCTAssertEqual(result.status, 0, result.stderr)
    let expected =
      [
        "upserted a,1 into c",
        "upserted b into c",
        "id,text,metadata",
        #""a,1","say ""hi""","{""k"":1}""#,
        "b,bell\u{7},",
        "b,bell\u{7},",
        "| id | text | metadata |",
        "|---|---|---|",
        #"| a,1 | say "hi" | {"k":1} |"#,
        "      id = a,1",
        #"    text = say "hi""#,
        #"metadata = {"k":1}"#,
      ].joined(separator: "\n") + "\n"
    XCTAssertEqual(result.stdout, expected)
    let table = try Shell.vdb(["get", "-c", "c", "b", "--db", db])
    XCTAssertEqual(table.stdout, "id  text       metadata\nb   bell\\u{7}\n")
  }

  /// Wide characters take two cells; piped output is never truncated.
  func testTablesAlignWideCharactersAndNeverTruncatePipedOutput() throws {
    let long = String(repeating: "long text ", count: 40) + "end"
    try Shell.vdb(["upsert", "--db", db, "-c", "c", "--id", "日本", "--text", "x"])
    try Shell.vdb(["upsert", "--db", db, "-c", "c", "--id", "abcd", "--text", long])
    let result = try Shell.vdb(["get", "-c", "c", "--db", db], environment: ["COLUMNS": "40"])
    XCTAssertEqual(
      result.stdout.split(separator: "\n").map(String.init),
      [
        "id    text" + String(repeating: " ", count: long.count - 4) + "  metadata",
        "abcd  " + long, "日本  x",
      ])
  }

  func testDidYouMeanAndVersion() throws {
    let typo = try Shell.vdb(["stauts", "--db", db])
    XCTAssertEqual(typo.status, 2)
    XCTAssertEqual(
      typo.stderr, "error: unknown command \"stauts\"\nhint: did you mean `status`?\n")
    let help = try Shell.vdb(["help", "stauts"])
    XCTAssertEqual(help.status, 2)
    XCTAssertEqual(help.stderr, typo.stderr)
    XCTAssertEqual(try Shell.vdb(["help", "route", "train"]).status, 0)
    let shell = try Shell.vdb(["--db", db], input: ".colections\n")
    XCTAssertEqual(shell.status, 2)
    XCTAssertTrue(shell.stderr.contains("did you mean `.collections`?"), shell.stderr)
    let version = try Shell.vdb(["--version"])
    XCTAssertEqual(version.status, 0)
    XCTAssertTrue(version.stdout.hasPrefix("vdb "), version.stdout)
  }

  /// Ctrl-C at the prompt drops the line and keeps the shell; Ctrl-D leaves it.
  func testCtrlCClearsTheLine() throws {
    try Shell.vdb(["upsert", "--db", db, "-c", "papers", "--id", "p1", "--text", "graphs"])
    let session = "vdb-repl-\(getpid())"
    let tmux = TMux(session: session, home: directory)
    try tmux.start("'\(Shell.binary)' shell --db '\(db)'")
    defer { tmux.kill() }
    try tmux.waitFor("vdb>")
    tmux.type("get -c papers nothing-to-see")
    tmux.press("C-c")
    try tmux.waitFor("^C")
    tmux.type("count -c papers")
    tmux.press("Enter")
    try tmux.waitFor { screen in
      screen.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces) == "1" }
    }
    XCTAssertFalse(tmux.screen().contains("error"), tmux.screen())
    tmux.press("C-d")
    try tmux.waitFor { _ in TMux.shell("tmux has-session -t \(session)").status != 0 }
  }
}
