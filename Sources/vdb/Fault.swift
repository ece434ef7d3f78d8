import Foundation
import VectorDB

#if canImport(Glibc)
  import Glibc
#endif

/// Turns a memory fault while a database is open into the documented error and exit
/// code 3, instead of a raw backtrace.
///
/// LMDB trusts its pages: a damaged page can make it read out of bounds (SIGSEGV,
/// SIGBUS) or fail one of its assertions (SIGABRT). Such a fault cannot be caught and
/// recovered from — the library cannot do it for its host process — but the shell
/// owns its process, so it can say what happened and exit cleanly. The handler only
/// uses async-signal-safe calls (`write`, `_exit`) on messages prepared beforehand.
enum Fault {
  /// By signal number: the prepared message (a C string), or nil. Plain memory, so
  /// that the handler reads it without touching Swift's runtime.
  private static let messages: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = {
    let table = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: 65)
    table.initialize(repeating: nil, count: 65)
    return table
  }()
  nonisolated(unsafe) private static var armed = false
  /// The database the shell opened last, to name in error messages.
  nonisolated(unsafe) private(set) static var databasePath: String?
  /// The start and end of the message for a failed internal check of LMDB (its text
  /// goes between), prepared like the signal messages.
  nonisolated(unsafe) private static var assertionMessage:
    (start: UnsafeMutablePointer<CChar>?, end: UnsafeMutablePointer<CChar>?) = (nil, nil)
  private static let handled: [(signal: Int32, name: String)] = [
    (SIGSEGV, "SIGSEGV: a read outside its pages"), (SIGBUS, "SIGBUS: a read past the file"),
    (SIGABRT, "SIGABRT: an internal check of the storage engine failed"),
  ]

  /// Arms the handler for the database at `path` (called when the shell opens one);
  /// `context` says what is being read, when known.
  static func arm(path: String, while context: String? = nil) {
    databasePath = path
    // Prepare the messages before installing, so the handler only reads them.
    for (signal, name) in handled {
      let text = """
        error: the database at \(path) appears damaged (\(name)\(context.map { ", while \($0)" } ?? ""))
        hint: `vdb verify --db \(path)` lists what is damaged; restore the directory from a backup

        """
      let old = messages[Int(signal)]
      messages[Int(signal)] = strdup(text)
      free(old)
    }
    let start =
      "error: the database at \(path) appears damaged (a check of the storage engine failed\(context.map { " while \($0)" } ?? ""): "
    let end =
      ")\nhint: `vdb verify --db \(path)` lists what is damaged; restore the directory from a backup\n"
    let old = assertionMessage
    assertionMessage = (strdup(start), strdup(end))
    free(old.start)
    free(old.end)
    guard !armed else { return }
    // LMDB calls this before it prints the failed check and aborts.
    Database.storageAssertionHandler = { _, check in Fault.assertionFailed(check) }
    armed = true
    // An alternate stack, so that a fault from an exhausted stack can be reported too.
    let size = 64 * 1024
    var stack = stack_t()
    stack.ss_sp = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
    stack.ss_size = size
    stack.ss_flags = 0
    sigaltstack(&stack, nil)
    for (signal, _) in handled {
      var action = sigaction()
      action.__sigaction_handler.sa_handler = { signal in Fault.report(signal) }
      action.sa_flags = Int32(bitPattern: UInt32(SA_ONSTACK) | UInt32(SA_RESETHAND))
      sigemptyset(&action.sa_mask)
      sigaction(signal, &action, nil)
    }
  }

  private static func assertionFailed(_ check: UnsafePointer<CChar>?) {
    let parts: [UnsafePointer<CChar>?] = [
      UnsafePointer(assertionMessage.start), check, UnsafePointer(assertionMessage.end),
    ]
    for case let part? in parts { _ = write(STDERR_FILENO, part, strlen(part)) }
    _exit(3)
  }

  private static func report(_ signal: Int32) {
    if let message = messages[Int(signal)] {
      _ = write(STDERR_FILENO, message, strlen(message))
    }
    _exit(3)
  }
}
