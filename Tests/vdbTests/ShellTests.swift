import Foundation
import Tensor
import XCTest

/// The shell as users meet it: subcommands, exit codes, JSON, piped scripts, and the
/// interactive REPL driven through tmux.
final class ShellTests: ShellTestCase {
  func testExitCodesForEachErrorClass() throws {
    XCTAssertEqual(try Shell.vdb(["status", "--db", db]).status, 1, "no database: user error")
    XCTAssertEqual(try Shell.vdb(["init", "--no-model", "--db", db]).status, 0)
    XCTAssertEqual(try Shell.vdb(["frobnicate"]).status, 2, "unknown subcommand: usage")
    XCTAssertEqual(
      try Shell.vdb(["upsert", "--db", db, "-c", "c", "--id", "x"]).status, 2, "missing --text")
    let missing = try Shell.vdb(["get", "--db", db, "-c", "c", "nope"])
    XCTAssertEqual(missing.status, 1)
    XCTAssertTrue(missing.stderr.hasPrefix("error: "), missing.stderr)
    let file = directory + "/file"
    try Data("x".utf8).write(to: URL(fileURLWithPath: file))
    let notOurs = try Shell.vdb(["status", "--db", file])
    XCTAssertEqual(notOurs.status, 3, "not a database: database error")
    XCTAssertTrue(notOurs.stderr.contains("hint: "), notOurs.stderr)
  }

  /// `init --precision` and `models convert` record the precision on the version; an
  /// unknown precision is a usage error, converting to the version's own one a user error.
  func testInitAndConvertRecordThePrecision() throws {
    XCTAssertEqual(try Shell.vdb(["init", "--precision", "int4", "--db", db]).status, 2)
    XCTAssertEqual(try Shell.vdb(["init", "--precision", "bfloat16", "--db", db]).status, 0)
    let listed = try Shell.vdb(["models", "--json", "--db", db])
    let row = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any]
    XCTAssertEqual((row?["model"] as? [String: Any])?["precision"] as? String, "bfloat16")
    let same = try Shell.vdb(["models", "convert", "1", "--precision", "bfloat16", "--db", db])
    XCTAssertEqual(same.status, 1)
    XCTAssertTrue(same.stderr.contains("already computes in bfloat16"), same.stderr)
    let converted = try Shell.vdb([
      "models", "convert", "1", "--precision", "float32", "--json", "--db", db,
    ])
    XCTAssertEqual(converted.status, 0, converted.stderr)
    let info = try JSONSerialization.jsonObject(with: Data(converted.stdout.utf8)) as? [String: Any]
    XCTAssertEqual(info?["precision"] as? String, "float32")
    XCTAssertEqual(info?["parent"] as? Int, 1)
    XCTAssertEqual(info?["version"] as? Int, 2)
    // w8a8 (8-bit activations after a rotation): a version that embeds at cosine ≥ 0.999
    // of the float32 version's.
    let w8a8 = try Shell.vdb([
      "models", "convert", "2", "--precision", "w8a8", "--json", "--db", db,
    ])
    XCTAssertEqual(w8a8.status, 0, w8a8.stderr)
    let w8a8Info = try JSONSerialization.jsonObject(with: Data(w8a8.stdout.utf8)) as? [String: Any]
    XCTAssertEqual(w8a8Info?["precision"] as? String, "w8a8")
    let text = "LMDB keeps the index's pages in one memory-mapped file"
    let vectors = try ["2", "3"].map { version -> [Double] in
      let embedded = try Shell.vdb([
        "embed", "--model-version", version, text, "--json", "--db", db,
      ])
      XCTAssertEqual(embedded.status, 0, embedded.stderr)
      let line =
        try JSONSerialization.jsonObject(with: Data(embedded.stdout.utf8)) as? [String: Any]
      return line?["vector"] as? [Double] ?? []
    }
    XCTAssertEqual(vectors[0].count, 384)
    XCTAssertGreaterThan(cosine(vectors[0], vectors[1]), 0.999)
    XCTAssertLessThan(cosine(vectors[0], vectors[1]), 1, "w8a8 computes in other numbers")
  }

  /// A precision whose fast kernel this machine lacks is warned of where it is chosen;
  /// `VDB_INT8_KERNEL` / `VDB_BF16_KERNEL` stand in for a CPU without the instructions.
  func testAPrecisionSlowOnThisMachineIsWarnedOf() throws {
    let w8a8OnAVX2 = try Shell.vdb(
      ["init", "--precision", "w8a8", "--db", db], environment: ["VDB_INT8_KERNEL": "avx2"])
    XCTAssertEqual(w8a8OnAVX2.status, 0, w8a8OnAVX2.stderr)
    XCTAssertTrue(
      w8a8OnAVX2.stderr.contains(
        "warning: w8a8 runs its AVX2 kernel on this machine, slower than int8 and no faster than float32; its fast kernel needs AVX-512 VNNI (docs/encoder.md"
      ), w8a8OnAVX2.stderr)
    let bfloat16OnAVX2 = try Shell.vdb(
      ["models", "convert", "1", "--precision", "bfloat16", "--json", "--db", db],
      environment: ["VDB_BF16_KERNEL": "avx2"])
    XCTAssertEqual(bfloat16OnAVX2.status, 0, bfloat16OnAVX2.stderr)
    XCTAssertTrue(
      bfloat16OnAVX2.stderr.contains(
        "warning: bfloat16 runs its AVX2+FMA kernel on this machine, slower than float32"),
      bfloat16OnAVX2.stderr)
    XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(bfloat16OnAVX2.stdout.utf8)))
    let int8Plain = try Shell.vdb(
      ["models", "convert", "1", "--precision", "int8", "--db", db],
      environment: ["VDB_INT8_KERNEL": "plain"])
    XCTAssertEqual(int8Plain.status, 0, int8Plain.stderr)
    XCTAssertTrue(
      int8Plain.stderr.contains("warning: int8 runs its plain C kernel on this machine"),
      int8Plain.stderr)
    let float32 = try Shell.vdb(["models", "convert", "1", "--precision", "float32", "--db", db])
    XCTAssertEqual(float32.status, 0, float32.stderr)
    XCTAssertFalse(float32.stderr.contains("warning:"), float32.stderr)
    // Unforced, the warning follows the widest kernel this CPU has.
    let native = try Shell.vdb(["models", "convert", "4", "--precision", "w8a8", "--db", db])
    XCTAssertEqual(native.status, 0, native.stderr)
    let fast = PackedWeights.KernelLevel.available(.w8a8).contains(.avx512)
    XCTAssertEqual(native.stderr.contains("warning: w8a8 runs its"), !fast, native.stderr)
  }

  private func cosine(_ a: [Double], _ b: [Double]) -> Double {
    let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
    return dot / (a.reduce(0) { $0 + $1 * $1 } * b.reduce(0) { $0 + $1 * $1 }).squareRoot()
  }

  func testJSONOutputParses() throws {
    try Shell.vdb(["init", "--no-model", "--db", db])
    try Shell.vdb([
      "upsert", "--db", db, "-c", "c", "--id", "a", "--text", "alpha", "--meta", #"{"n": 1}"#,
    ])
    let status = try Shell.vdb(["status", "--db", db, "--json"])
    let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
    XCTAssertEqual((object?["collections"] as? [[String: Any]])?.first?["documents"] as? Int, 1)
    let get = try Shell.vdb(["get", "--db", db, "-c", "c", "a", "--json"])
    let document = try JSONSerialization.jsonObject(with: Data(get.stdout.utf8)) as? [String: Any]
    XCTAssertEqual(document?["text"] as? String, "alpha")
  }

  func testImportReportsTheBadLineAndWritesNothing() throws {
    try Shell.vdb(["init", "--no-model", "--db", db])
    let file = directory + "/docs.jsonl"
    try Data("{\"_id\": \"1\", \"text\": \"ok\"}\n{\"_id\": \"2\"}\n".utf8).write(
      to: URL(fileURLWithPath: file))
    let result = try Shell.vdb(["import", file, "-c", "c", "--db", db])
    XCTAssertEqual(result.status, 1)
    XCTAssertEqual(
      result.stderr.split(separator: "\n").first.map(String.init),
      "error: \(file):2: missing field \"text\"")
    XCTAssertEqual(
      try Shell.vdb(["get", "--db", db, "-c", "c", "1"]).status, 1, "nothing was imported")
    let skipping = try Shell.vdb(["import", file, "-c", "c", "--db", db, "--skip-bad"])
    XCTAssertEqual(skipping.status, 0)
    XCTAssertTrue(
      skipping.stderr.contains("\(file):2: missing field \"text\" (skipped)"), skipping.stderr)
  }

  /// Ctrl-C (SIGINT to the real process) stops an import after a committed batch, exit
  /// 130; the message says how far it got, and that many documents are there.
  func testInterruptedImportSaysHowManyDocumentsItCommitted() throws {
    try Shell.vdb(["init", "--no-model", "--db", db])
    try Shell.vdb(["collections", "create", "v", "--vectors", "4", "--db", db])
    let file = directory + "/vectors.jsonl"
    let lines = (0..<60_000).map {
      #"{"id": "d\#($0)", "text": "t", "vector": [1, 0.5, \#($0 % 7), 2]}"#
    }
    try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: file))
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Shell.binary)
    process.arguments = ["import", file, "-c", "v", "--batch-size", "500", "--db", db]
    let errors = Pipe()
    process.standardError = errors
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    var stderr = ""
    while !stderr.contains("docs") {  // the first progress line: a batch is committed
      let chunk = errors.fileHandleForReading.availableData
      if chunk.isEmpty { break }
      stderr += String(decoding: chunk, as: UTF8.self)
    }
    kill(process.processIdentifier, SIGINT)
    stderr += String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    XCTAssertEqual(process.terminationStatus, 130, stderr)
    let message = #/interrupted after (\d+) of 60000 docs; work committed so far is kept/#
    let reached = try XCTUnwrap(stderr.firstMatch(of: message), stderr)
    let committed = try XCTUnwrap(Int(reached.1))
    XCTAssertLessThan(committed, 60_000)
    XCTAssertEqual(committed % 500, 0, "whole batches")
    let count = try Shell.vdb(["count", "-c", "v", "--db", db])
    XCTAssertEqual(count.stdout.trimmingCharacters(in: .whitespacesAndNewlines), String(committed))
  }

  /// Output cut short by a reader that stops early (`| head`) used to kill vdb with
  /// SIGPIPE before the query log was committed: the query was lost, its printed log id
  /// dangling.
  func testAQueryPipedIntoHeadIsStillLogged() throws {
    try Shell.vdb(["init", "--no-model", "--db", db])
    let text = "zebra " + String(repeating: "lorem ipsum ", count: 100_000)
    let file = directory + "/big.jsonl"
    try Data(#"{"id": "big", "text": "\#(text)"}"#.utf8).write(to: URL(fileURLWithPath: file))
    try Shell.vdb(["import", file, "-c", "lt", "--db", db])
    let piped = try Shell.run(
      "/bin/bash",
      ["-c", "'\(Shell.binary)' query -c lt zebra --json --db '\(db)' | head -c 100"])
    XCTAssertTrue(piped.stdout.hasPrefix(#"{"hits":[{"id":"big""#), piped.stdout)
    let log = try Shell.vdb(["log", "-c", "lt", "--json", "--db", db])
    XCTAssertTrue(log.stdout.contains(#""text":"zebra""#), log.stdout)
  }

  /// Everyday mistakes get an error that names the mistake, the documented exit code, and
  /// leave nothing behind.
  func testEverydayMistakesAreNamedAndLeaveNothingBehind() throws {
    try Shell.vdb(["init", "--no-model", "--db", db])
    try Shell.vdb(["upsert", "-c", "notes", "--id", "n1", "--text", "graphs", "--db", db])
    func expect(_ arguments: [String], _ status: Int32, _ words: String, line: UInt = #line) throws
    {
      let result = try Shell.vdb(arguments + ["--db", db])
      XCTAssertEqual(result.status, status, result.stderr, line: line)
      XCTAssertTrue(result.stderr.contains(words), result.stderr, line: line)
    }
    try expect(["log", "-c", "nope"], 1, #"no collection named "nope""#)
    try expect(["get", "-c", "notes", "n1", "--limit", "2"], 2, "not both")
    try expect(["delete", "-c", "notes", "n1", "--filter", "{}"], 2, "not both")
    try expect(["count"], 2, "$VDB_COLLECTION")
    try expect(["backup", directory + "/missing/copy"], 1, "does not exist or is not writable")
    // An option the chosen way of evaluating would ignore.
    try expect(
      ["eval", "-c", "notes", "--from-log", "--model", "1", "--mode", "keyword"], 2,
      "--mode does not apply with --model")
    try expect(
      ["eval", "-c", "notes", "--from-log", "--pool", "20"], 2, "--pool goes with --model")
    try expect(["eval", "-c", "notes", "--diagnose", "--exact"], 2, "--exact does not apply to")
    try expect(
      ["eval", "-c", "notes", "--from-log", "--exact", "--ef", "200"], 2,
      "--ef applies to the index")
    try expect(  // what --model does anyway: past the options, to the empty log
      ["eval", "-c", "notes", "--from-log", "--model", "1", "--mode", "dense"], 1,
      "no logged query")

    // An empty import, or one whose every line was bad, creates no collection.
    let empty = directory + "/empty.jsonl"
    try Data().write(to: URL(fileURLWithPath: empty))
    let imported = try Shell.vdb(["import", empty, "-c", "typo", "--db", db])
    XCTAssertEqual(imported.status, 0, imported.stderr)
    XCTAssertEqual(imported.stdout, "imported no documents\n")
    let bad = directory + "/bad.jsonl"
    try Data(#"{"id": "x"}"#.utf8).write(to: URL(fileURLWithPath: bad))
    try Shell.vdb(["import", bad, "-c", "typo2", "--skip-bad", "--db", db])
    let names = try Shell.vdb(["collections", "--json", "--db", db]).stdout
    XCTAssertFalse(names.contains("typo"), names)

    // A qrels file whose only line was read as its header judges nothing: an error.
    let queries = directory + "/queries.jsonl"
    try Data(#"{"_id": "q1", "text": "graphs"}"#.utf8).write(to: URL(fileURLWithPath: queries))
    let qrels = directory + "/qrels.tsv"
    try Data("q1\tn1\tx\n".utf8).write(to: URL(fileURLWithPath: qrels))
    try expect(
      ["feedback", "-c", "notes", "--qrels", qrels, "--queries", queries], 1,
      "qrels.tsv: no judgement rows")
    try Data("q1\tn1\t0\n".utf8).write(to: URL(fileURLWithPath: qrels))
    try expect(
      ["feedback", "-c", "notes", "--qrels", qrels, "--queries", queries], 1,
      "no row has a score above 0")
  }

  func testPipedScriptStopsAtFirstError() throws {
    try Shell.vdb(["init", "--no-model", "--db", db])
    let script = """
      # a comment
      use notes
      upsert --id a --text "first note"
      get missing
      upsert --id b --text "never written"
      """
    let result = try Shell.vdb(["--db", db], input: script)
    XCTAssertEqual(result.status, 1)
    XCTAssertTrue(result.stderr.contains("error at line 4: get missing"), result.stderr)
    XCTAssertEqual(try Shell.vdb(["get", "--db", db, "-c", "notes", "a"]).status, 0)
    XCTAssertEqual(try Shell.vdb(["get", "--db", db, "-c", "notes", "b"]).status, 1)
  }

  func testInteractiveShellPromptHistoryCompletionAndTiming() throws {
    try Shell.vdb(["init", "--no-model", "--db", db])
    try Shell.vdb(["upsert", "--db", db, "-c", "papers", "--id", "p1", "--text", "graphs"])
    let session = "vdb-test-\(getpid())"
    let tmux = TMux(session: session, home: directory)
    try tmux.start("'\(Shell.binary)' shell --db '\(db)'")
    defer { tmux.kill() }
    try tmux.waitFor("vdb>")
    tmux.type("use pap\t")  // completes the collection name
    tmux.press("Enter")
    try tmux.waitFor("vdb:papers>")
    tmux.type(".timing on")
    tmux.press("Enter")
    tmux.type("sta\t")  // completes `status`
    tmux.press("Enter")
    try tmux.waitFor("time: ")
    tmux.press("Up")  // history: the status line again
    tmux.press("Enter")
    try tmux.waitFor { screen in screen.components(separatedBy: "papers      1").count >= 3 }
    tmux.type("train --tier ad\t")  // completes an option's value
    try tmux.waitFor("train --tier adapter")
    tmux.press("Enter")
    try tmux.waitFor("error:")  // a failed command leaves the shell running
    tmux.type(".quit")
    tmux.press("Enter")
  }
}

/// A tmux session running a program in a pseudo-terminal. tmux is driven through
/// `popen` (Foundation's Process loses track of tmux's daemonising client).
struct TMux {
  let session: String
  let home: String

  func start(_ command: String) throws {
    let line = "tmux new-session -d -s \(session) -x 120 -y 40 \"env HOME='\(home)' \(command)\""
    guard TMux.shell(line).status == 0 else { throw CLIFailure(message: "tmux new-session failed") }
  }

  /// Types `text` literally; a trailing tab is sent as the Tab key.
  func type(_ text: String) {
    let literal = text.hasSuffix("\t") ? String(text.dropLast()) : text
    TMux.shell("tmux send-keys -t \(session) -l '\(literal)'")
    if text.hasSuffix("\t") { press("Tab") }
    usleep(100_000)
  }

  func press(_ key: String) {
    TMux.shell("tmux send-keys -t \(session) \(key)")
    usleep(100_000)
  }

  func kill() { TMux.shell("tmux kill-session -t \(session)") }

  func screen() -> String { TMux.shell("tmux capture-pane -p -t \(session)").output }

  func waitFor(_ text: String) throws {
    try waitFor { $0.contains(text) }
  }

  func waitFor(timeout: Double = 10, _ condition: (String) -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      if condition(screen()) { return }
      usleep(50_000)
    }
    throw CLIFailure(message: "timed out; screen:\n\(screen())")
  }

  @discardableResult
  static func shell(_ command: String) -> (status: Int32, output: String) {
    guard let pipe = popen(command + " 2>&1", "r") else { return (-1, "") }
    var output = Data()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let count = fread(&buffer, 1, buffer.count, pipe)
      if count <= 0 { break }
      output.append(contentsOf: buffer[0..<count])
    }
    return (pclose(pipe), String(decoding: output, as: UTF8.self))
  }
}

struct CLIFailure: Error, CustomStringConvertible {
  var message: String
  var description: String { message }
}
