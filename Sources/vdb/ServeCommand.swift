import ArgumentParser
import Foundation
import VDBServer
import VectorDB

struct Serve: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Serve the database over HTTP: JSON endpoints for every operation (docs/server.md).",
    discussion: """
      Binds to loopback by default. Any other --host needs --token-file: every request \
      must then send `Authorization: Bearer TOKEN`. Training, re-embedding and model \
      switches run as jobs (child `vdb` processes): start them with a POST, poll \
      GET /jobs/ID. SIGTERM (or Ctrl-C) stops accepting connections, finishes the \
      requests under way and interrupts running jobs, which keep their work and resume.

      Examples:
        vdb serve                                      http://127.0.0.1:8080
        vdb serve --port 0                             any free port (printed)
        vdb serve --host 0.0.0.0 --token-file token    reachable from other machines
        curl -s localhost:8080/collections/notes/query -d '{"text": "lmdb", "k": 3}'
      """)

  @OptionGroup var database: DatabaseOptions
  @Option(help: "Address to bind (anything but loopback needs --token-file).")
  var host = "127.0.0.1"
  @Option(help: "Port (0: any free port).") var port = 8080
  @Option(help: "A file holding the bearer token (its first line).") var tokenFile: String?
  @Option(help: "Largest request body, in MiB.") var maxBodyMib = 64
  @Option(help: "Close a connection that sends nothing for this many seconds.")
  var idleTimeout = 60

  func validate() throws {
    try Counts.check(
      "serve", ["--port": port, "--max-body-mib": maxBodyMib, "--idle-timeout": idleTimeout])
  }

  func run() throws {
    var options = Server.Options(
      executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path)
    options.host = host
    options.port = port
    options.maxBodyBytes = maxBodyMib << 20
    options.idleTimeoutSeconds = Int64(idleTimeout)
    if let tokenFile {
      // Its first line, trimmed: a file saved with CRLF or a byte order mark holds the
      // same token.
      options.token = try readLines(tokenFile).first ?? ""
    }
    let db = try database.open()
    let server = try Server(database: db, options: options)
    let host = self.host
    let path = db.path
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var failure: (any Error)?
    Task {
      do {
        try await server.run { port in
          print(
            "vdb serve: http://\(host.contains(":") ? "[\(host)]" : host):\(port) (database \(path))"
          )
          fflush(stdout)
        }
      } catch {
        failure = error
      }
      done.signal()
    }
    done.wait()
    if let failure { throw failure }
  }
}
