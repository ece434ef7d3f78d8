// What every figure is measured on and with: the CPU's instruction sets, the load, and
// the clocks.
import Foundation

/// The CPU's vector instruction sets, as /proc/cpuinfo lists them (fma, f16c, avx2 and
/// every avx512/avx_vnni flag): the context every figure is stated with.
public func cpuFlags() -> String {
  guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
    let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
  else { return "unknown" }
  let wanted = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).filter {
    $0 == "fma" || $0 == "f16c" || $0.hasPrefix("avx")
  }
  return wanted.sorted().joined(separator: " ")
}

/// The 1-, 5- and 15-minute load averages from /proc/loadavg ("?" where unreadable).
public func loadAverage() -> String {
  guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "?" }
  return text.split(separator: " ").prefix(3).joined(separator: " ")
}

/// Seconds on a monotonic clock (differences only).
public func now() -> Double {
  Double(DispatchTime.now().uptimeNanoseconds) / 1e9
}

/// The wall seconds `body` takes.
public func seconds(_ body: () throws -> Void) rethrows -> Double {
  let start = now()
  try body()
  return now() - start
}

/// Processor seconds (user + system, all threads) used so far by this process, or by its
/// finished children.
public func cpuSeconds(children: Bool = false) -> Double {
  var usage = rusage()
  getrusage(__rusage_who_t((children ? RUSAGE_CHILDREN : RUSAGE_SELF).rawValue), &usage)
  func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) * 1e-6 }
  return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Processor seconds used so far by the calling thread alone.
public func threadCPUSeconds() -> Double {
  var time = timespec()
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
  return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}

/// A field of /proc/self/status in MiB (`VmRSS`, `VmHWM`, `RssAnon`, `RssFile`); 0 when
/// absent.
public func statusMiB(_ field: String) -> Double {
  let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
  let line = status.split(separator: "\n").first { $0.hasPrefix(field + ":") } ?? ""
  return (Double(line.split(separator: " ").dropFirst().first ?? "") ?? 0) / 1024
}

/// Writes `line` to standard error (progress; standard output carries the figures).
public func log(_ line: String) {
  FileHandle.standardError.write(Data((line + "\n").utf8))
}
