import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import VectorDB

/// `vdb serve`: one database over HTTP, JSON in and out, in the shell's JSON convention
/// (docs/server.md; the contract is Sources/Server/openapi.json, served at
/// `/openapi.json`).
///
/// Reads and queries run concurrently on a thread pool (LMDB readers never block);
/// writes are serialised by LMDB; training, re-embedding and model switches run as jobs
/// (child `vdb` processes), never inside a request.
public struct Server: Sendable {
  public struct Options: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// The bearer token every request must carry; nil: none (loopback only).
    public var token: String?
    /// The largest request body accepted (413 above it).
    public var maxBodyBytes = 64 << 20
    /// A connection idle this long (a stalled client) is closed.
    public var idleTimeoutSeconds: Int64 = 60
    /// The `vdb` executable that runs jobs.
    public var executable: String
    public init(executable: String) { self.executable = executable }
  }

  let database: Database
  let options: Options

  /// - Throws: `VectorDBError.invalidInput` when `host` is not a loopback address and
  ///   no token is given, or the token is empty.
  public init(database: Database, options: Options) throws {
    if let token = options.token, token.isEmpty {
      throw VectorDBError.invalidInput(
        source: "--token-file", line: nil, reason: "the token is empty")
    }
    if options.token == nil && !Server.isLoopback(options.host) {
      throw VectorDBError.invalidInput(
        source: "--host", line: nil,
        reason:
          "\(options.host) is not a loopback address: serving beyond this machine needs --token-file"
      )
    }
    self.database = database
    self.options = options
  }

  static func isLoopback(_ host: String) -> Bool {
    host == "localhost" || host == "::1" || host.hasPrefix("127.")
  }

  /// Serves until SIGTERM or SIGINT, then stops accepting connections, finishes the
  /// requests under way, interrupts running jobs (each commits its work so far) and
  /// returns. `onListening` gets the bound port (useful with port 0).
  ///
  /// - Throws: when the address cannot be bound.
  public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
    var logger = Logger(label: "vdb-serve")
    logger.logLevel =
      ProcessInfo.processInfo.environment["VDB_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) }
      ?? .notice
    let jobs = try JobRunner(executable: options.executable, databasePath: database.path)
    // HEAD is answered as GET without the body.
    let router = Hummingbird.Router(
      context: ServerContext.self, options: .autoGenerateHeadEndpoints)
    router.middlewares.add(ErrorMiddleware(databasePath: database.path))
    if let token = options.token {
      router.middlewares.add(TokenMiddleware(token: Array(token.utf8)))
    }
    Routes(database: database, jobs: jobs, maxBodyBytes: options.maxBodyBytes).add(to: router)
    let app = Application(
      router: router,
      server: .http1(
        configuration: .init(idleTimeout: .seconds(options.idleTimeoutSeconds))),
      configuration: .init(
        address: .hostname(options.host, port: options.port), serverName: "vdb"),
      onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
      logger: logger)
    // Shut down in reverse order: the HTTP server first (no new jobs), then the jobs.
    let group = ServiceGroup(
      configuration: .init(
        services: [jobs, app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
    try database.flushLog()
  }
}

/// A request's context: Hummingbird's, and the connection it came on (a CONNECT's
/// connection is closed: NIO's parser reads nothing after one).
struct ServerContext: RequestContext {
  var coreContext: CoreRequestContextStorage
  let channel: any Channel

  init(source: ApplicationRequestContextSource) {
    coreContext = .init(source: source)
    channel = source.channel
  }
}

/// Runs `body` on NIO's thread pool: database calls block (disk, CPU) and must not
/// hold the threads that run Swift's tasks and the event loops. (Queries and routing
/// decisions go to `Database.run`'s wider pool instead, where more of them can wait to
/// share an encoder pass.)
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
  try await NIOThreadPool.singleton.runIfActive(body)
}
