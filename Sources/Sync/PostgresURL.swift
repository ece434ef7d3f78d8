import Foundation
import NIOSSL
import PostgresNIO

/// A PostgreSQL connection URL, as libpq reads it (the subset vdb needs):
///
///     postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=disable
///     postgresql://postgres@/vectors?host=/run/postgresql      a unix socket directory
///
/// The password may come from `$PGPASSWORD` instead, keeping it out of the process
/// list; the user defaults to `$PGUSER`, else `postgres`. `sslmode` is `disable`,
/// `prefer` (the default: TLS when the server offers it, unverified, as libpq),
/// `require` (TLS, unverified) or `verify-full` (TLS with the certificate checked).
struct PostgresURL {
  var configuration: PostgresConnection.Configuration
  /// Where the server is, for messages: the URL without its password.
  var server: String

  /// - Throws: `SyncError` (`.input`) naming what is wrong with `text`.
  init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment)
    throws
  {
    func bad(_ reason: String) -> SyncError {
      SyncError(
        .input, "--postgres: \(reason)",
        hint: "a URL like postgres://USER@HOST:5432/DATABASE (see docs/scale-out.md)")
    }
    guard let url = URLComponents(string: text), let scheme = url.scheme else {
      throw bad("not a URL: \(text.contains("@") ? "(hidden: it may hold a password)" : text)")
    }
    guard scheme == "postgres" || scheme == "postgresql" else {
      throw bad("the scheme is \(scheme)://, not postgres:// or postgresql://")
    }
    var parameters: [String: String] = [:]
    for item in url.queryItems ?? [] {
      guard let value = item.value else { throw bad("the parameter \(item.name) has no value") }
      parameters[item.name] = value
    }
    for name in parameters.keys where !["host", "port", "sslmode"].contains(name) {
      throw bad("unknown parameter \(name) (known: host, port, sslmode)")
    }
    let user = url.user.flatMap { $0.isEmpty ? nil : $0 } ?? environment["PGUSER"] ?? "postgres"
    let password = url.password ?? environment["PGPASSWORD"]
    let path = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
    guard !path.contains("/") else { throw bad("the database name \(path) holds a /") }
    let database = path.isEmpty ? user : path
    let portText = parameters["port"] ?? url.port.map(String.init) ?? "5432"
    guard let port = Int(portText), (1...65535).contains(port) else {
      throw bad("the port \(portText) is not a number from 1 to 65535")
    }
    let host = parameters["host"] ?? url.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
    if host.hasPrefix("/") {
      configuration = .init(
        unixSocketPath: "\(host)/.s.PGSQL.\(port)", username: user, password: password,
        database: database)
      server = "\(host) (unix socket, port \(port)), database \(database)"
      if let mode = parameters["sslmode"], mode != "disable", mode != "prefer" {
        throw bad("sslmode=\(mode) over a unix socket (use disable)")
      }
      return
    }
    let tls: PostgresConnection.Configuration.TLS
    switch parameters["sslmode"] ?? "prefer" {
    case "disable": tls = .disable
    case "prefer", "require":
      var options = TLSConfiguration.makeClientConfiguration()
      options.certificateVerification = .none
      let context = try NIOSSLContext(configuration: options)
      tls = parameters["sslmode"] == "require" ? .require(context) : .prefer(context)
    case "verify-full":
      tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
    case let mode:
      throw bad("sslmode=\(mode) is not one of disable, prefer, require, verify-full")
    }
    configuration = .init(
      host: host, port: port, username: user, password: password, database: database, tls: tls)
    server = "\(host):\(port), database \(database)"
  }
}
