import ArgumentParser
import BenchmarkSupport
import Foundation
import HNSW

/// hnswlib's figures from ../shared/bench/peer_ann.py, run on the same files and
/// parameters right after vdb's (back to back, in this process tree).
struct PeerFigures {
  var version: String
  /// Build thread count → median build seconds.
  var buildSeconds: [Int: Double] = [:]
  /// Build thread count → batch q/s at recall@k 0.95 (one query thread), when reached.
  var qpsAtTarget: [Int: Double] = [:]
}

/// Runs `peer_ann.py --libs hnswlib --json` with `python` and reads its report.
///
/// - Throws: ``ValidationError`` without `--gt`; ``PeerError`` when the script cannot run
///   or its output is not the JSON it documents.
func runPeer(
  python: String, script: String, base: String, query: String, groundTruth: String,
  options: Options
) throws -> PeerFigures {
  guard !groundTruth.isEmpty else { throw ValidationError("--peer needs --gt (peer_ann.py does)") }
  let metric: String
  switch options.metric {
  case .cosine: metric = "cos"
  case .dot: metric = "ip"
  case .l2: metric = "l2"
  }
  var arguments = [
    script, "--libs", "hnswlib", "--json", "--base", base, "--query", query, "--gt", groundTruth,
    "--metric", metric, "--threads", options.threads.map(String.init).joined(separator: ","),
    "--efs", options.efs.map(String.init).joined(separator: ","), "--reps", "\(options.reps)",
    "--k", "\(options.k)", "--M", "\(options.parameters.m)",
    "--ef-construction", "\(options.parameters.efConstruction)",
  ]
  if options.baseLimit != .max { arguments += ["--n-base", "\(options.baseLimit)"] }
  if options.queryLimit != .max { arguments += ["--n-queries", "\(options.queryLimit)"] }
  let report = try peerReport(python: python, arguments: arguments)
  guard let runs = report["runs"] as? [[String: Any]] else {
    throw PeerError(command: "\(python) \(script)", problem: "no runs in its report")
  }
  let versions = report["versions"] as? [String: Any]
  var figures = PeerFigures(version: "hnswlib \(versions?["hnswlib"] ?? "?")")
  for run in runs {
    guard let threads = run["threads"] as? Int else { continue }
    let build = (run["build"] as? [String: Any])?["build_seconds"] as? [String: Any]
    figures.buildSeconds[threads] = build?["median"] as? Double
    let target = (run["qps_at_target"] as? [String: Any])?["batch"] as? [String: Any]
    figures.qpsAtTarget[threads] = target?["qps"] as? Double
  }
  return figures
}

/// vdb's figures against the peer's, as ratios.
func printComparison(
  vdbBuild: [Int: Double], vdbQPS: [Int: Double], peer: PeerFigures, k: Int
) {
  func number(_ value: Double?, _ format: String) -> String {
    value.map { String(format: format, $0) } ?? "n/a"
  }
  print("against \(peer.version) (peer_ann.py right after, same data and parameters):")
  for threads in vdbBuild.keys.sorted() {
    let (ours, theirs) = (vdbBuild[threads], peer.buildSeconds[threads])
    let ratio = ours.flatMap { o in theirs.map { o / $0 } }
    print(
      "  build, \(threads) thread(s): vdb \(number(ours, "%.2f")) s, hnswlib "
        + "\(number(theirs, "%.2f")) s: \(number(ratio, "%.2f"))× hnswlib's time")
  }
  for threads in vdbQPS.keys.sorted() {
    let (ours, theirs) = (vdbQPS[threads], peer.qpsAtTarget[threads])
    let ratio = ours.flatMap { o in theirs.map { o / $0 } }
    print(
      "  q/s at recall@\(k) 0.95, \(threads)-thread build, 1 query thread: vdb "
        + "\(number(ours, "%.0f")), hnswlib \(number(theirs, "%.0f")) (batch): "
        + "\(number(ratio, "%.2f"))×")
  }
}
