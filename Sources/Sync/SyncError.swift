import Foundation
import PostgresNIO
import VectorDB

/// Why a sync failed: the user's input (exit 1) or the PostgreSQL side (exit 3).
/// Nothing was changed in PostgreSQL either way: a sync is one transaction.
public struct SyncError: Error, CustomStringConvertible {
  public enum Kind: Sendable {
    /// Bad input: the URL, the table name, a table that is not vdb's, a collection
    /// without vectors.
    case input
    /// The server: unreachable, refused the login, or failed a statement.
    case remote
  }
  public var kind: Kind
  public var message: String
  public var hint: String?

  public init(_ kind: Kind, _ message: String, hint: String? = nil) {
    self.kind = kind
    self.message = message
    self.hint = hint
  }

  public var description: String { message }

  /// `error` (from postgres-nio, NIO or the system) as a remote error saying what
  /// happened at `server`; vdb's own errors and a cancellation (Ctrl-C) as they are.
  /// Never includes the password or the bound values: `PSQLError`'s own description
  /// is deliberately vague, so the fields are read here.
  static func remote(_ error: Error, server: String) -> Error {
    if error is SyncError || error is VectorDBError || error is CancellationError { return error }
    guard let error = error as? PSQLError else {
      return SyncError(.remote, "PostgreSQL at \(server): \(error)")
    }
    switch error.code {
    case .server:
      let message = error.serverInfo?[.message] ?? "an error"
      let state = error.serverInfo?[.sqlState] ?? ""
      switch state {
      case "28P01", "28000":
        return SyncError(
          .remote, "PostgreSQL at \(server) refused the login: \(message)",
          hint: "check the user and password in the URL (or $PGPASSWORD)")
      case "3D000":
        return SyncError(
          .remote, "PostgreSQL at \(server): \(message)",
          hint: "create it first (createdb NAME), or name another database in the URL")
      default:
        let detail = error.serverInfo?[.detail].map { " (\($0))" } ?? ""
        return SyncError(
          .remote, "PostgreSQL at \(server) failed: \(message)\(detail) [SQLSTATE \(state)]",
          hint: error.serverInfo?[.hint])
      }
    case .connectionError:
      let cause = error.underlying.map { "\($0)" } ?? "no answer"
      return SyncError(
        .remote, "cannot connect to PostgreSQL at \(server): \(cause)",
        hint: "is the server running and listening there?")
    case .authMechanismRequiresPassword:
      return SyncError(
        .remote, "PostgreSQL at \(server) asks for a password and none was given",
        hint: "put it in the URL (postgres://USER:PASSWORD@HOST/DB) or in $PGPASSWORD")
    case .sslUnsupported:
      return SyncError(
        .remote, "PostgreSQL at \(server) does not accept TLS",
        hint: "add ?sslmode=disable to the URL (or use a unix socket)")
    case .serverClosedConnection, .uncleanShutdown:
      return SyncError(.remote, "PostgreSQL at \(server) closed the connection")
    default:
      return SyncError(.remote, "PostgreSQL at \(server): \(error.code)")
    }
  }
}
