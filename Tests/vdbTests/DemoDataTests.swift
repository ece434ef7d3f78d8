import Foundation
import XCTest

/// The main job's questions (tools/demo-queries.tsv) name the docs section that answers
/// each; renaming a section must update them, or the demo's feedback step fails.
final class DemoDataTests: XCTestCase {
  func testEveryDemoQuestionNamesASectionOfTheDocs() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../..").standardized
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "tools/docs_corpus.py", "docs"]
    process.currentDirectoryURL = root
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let corpus = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    XCTAssertEqual(process.terminationStatus, 0)
    let sections = Set(
      try String(decoding: corpus, as: UTF8.self).split(separator: "\n").map { line in
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        return object?["_id"] as? String ?? ""
      })
    let questions = try String(
      contentsOf: root.appendingPathComponent("tools/demo-queries.tsv"), encoding: .utf8
    ).split(separator: "\n")
    XCTAssertGreaterThan(questions.count, 100)
    for (number, line) in questions.enumerated() {
      let fields = line.split(separator: "\t")
      XCTAssertEqual(fields.count, 2, "line \(number + 1)")
      XCTAssertTrue(
        sections.contains(String(fields.last ?? "")),
        "tools/demo-queries.tsv:\(number + 1): no docs section \(fields.last ?? "")")
    }
  }
}
