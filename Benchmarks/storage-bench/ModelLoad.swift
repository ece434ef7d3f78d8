import BenchmarkSupport
import Foundation
import VectorDB

/// What a new process pays before its first text query: open the database, load the
/// stored model (all-MiniLM-L6-v2: mapped from its model image, or, the first time,
/// read from LMDB and written as the image), embed and answer one query. Each
/// run is a fresh child process (`--model-load-child DIR`), as every shell command is;
/// the page cache is warm after the first. Prints the medians and the child's resident
/// memory after the query: anonymous (its own copies) and file-backed (mapped pages),
/// and the most it was resident at any moment (the kernel's high-water mark).
func modelLoadBenchmark(runs: Int) throws {
  guard DefaultModel.isFetched else {
    throw VectorDBError.invalidModel(
      directory: DefaultModel.directory, reason: "not fetched: run tools/fetch-model.sh")
  }
  let directory = NSTemporaryDirectory() + "vdb-model-load-bench-\(getpid())"
  try? FileManager.default.removeItem(atPath: directory)
  defer { try? FileManager.default.removeItem(atPath: directory) }
  do {
    let db = try Database(path: directory)
    let model = try db.importModel(directory: DefaultModel.directory)
    try db.createCollection("notes").upsert([
      Document(id: "a", text: "LMDB is a B+tree key-value store"),
      Document(id: "b", text: "HNSW is a graph index for nearest neighbours"),
    ])
    print(
      "model load: \(model.name), \(model.weightsBytes >> 20) MiB of weights, \(runs) processes")
  }
  // The import loaded the model once, so its image exists: these children map it. Then
  // as many again with no image: each copies the weights out of LMDB and writes it.
  print("  with the model image (every load after the first):")
  try summarize(children(runs, directory: directory))
  print("  without (a first load: copies the weights, writes the image):")
  try summarize(children(runs, directory: directory, removingImages: true))
}

/// The figures of `runs` children, one row each (see `modelLoadChild`).
private func children(_ runs: Int, directory: String, removingImages: Bool = false) throws
  -> [[Double]]
{
  var rows: [[Double]] = []
  for _ in 0..<runs {
    if removingImages { try FileManager.default.removeItem(atPath: directory + "/images") }
    let child = Process()
    child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    child.arguments = ["--model-load-child", directory]
    let output = Pipe()
    child.standardOutput = output
    try child.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    child.waitUntilExit()
    let fields = String(decoding: data, as: UTF8.self).split(separator: " ").compactMap {
      Double($0.trimmingCharacters(in: .whitespacesAndNewlines))
    }
    guard child.terminationStatus == 0, fields.count == 8 else {
      throw VectorDBError.invalidInput(
        source: "model-load child", line: nil, reason: String(decoding: data, as: UTF8.self))
    }
    rows.append(fields)
  }
  return rows
}

private func summarize(_ rows: [[Double]]) {
  func median(_ column: Int) -> Double { BenchmarkSupport.median(rows.map { $0[column] }) }
  print(
    String(
      format: "    open %.1f ms, load model %.1f ms (%.1f ms CPU), first query %.1f ms:"
        + " %.1f ms in all (medians)",
      median(0), median(1), median(6), median(2), median(0) + median(1) + median(2)))
  print(
    String(
      format: "    resident after the query: %.0f MiB (%.0f MiB anonymous, %.0f MiB file-backed);"
        + " peak %.0f MiB",
      median(3), median(4), median(5), median(7)))
}

/// One run in this process: prints open, load and query milliseconds, resident,
/// anonymous and file-backed MiB, the load's CPU milliseconds (on a shared machine the
/// wall time also measures the neighbours) and the peak resident MiB.
func modelLoadChild(directory: String) throws {
  func milliseconds(since start: UInt64) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
  }
  var start = DispatchTime.now().uptimeNanoseconds
  let db = try Database(path: directory)
  let notes = try db.collection("notes", create: false)
  let open = milliseconds(since: start)
  start = DispatchTime.now().uptimeNanoseconds
  let cpuStart = cpuSeconds()
  _ = try db.encoder(version: try db.defaultModelVersion() ?? 1)
  let load = milliseconds(since: start)
  let loadCPU = (cpuSeconds() - cpuStart) * 1000
  start = DispatchTime.now().uptimeNanoseconds
  _ = try notes.query(text: "graph index", k: 1, log: false)
  let query = milliseconds(since: start)
  print(
    open, load, query, statusMiB("VmRSS"), statusMiB("RssAnon"), statusMiB("RssFile"), loadCPU,
    statusMiB("VmHWM"), separator: " ")
}
