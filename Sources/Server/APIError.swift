import Foundation
import Hummingbird
import NIOCore
import VectorDB

/// An error as the HTTP API reports it: a status (4xx for the caller's input, 5xx for
/// the database) and `{"error": {"code": …, "message": …, "hint": …}}`. The classes are
/// the shell's exit codes: what exits 1 there is a 4xx here, what exits 3 a 5xx.
struct APIError: Error {
  var status: HTTPResponse.Status
  /// snake_case, stable: clients branch on it.
  var code: String
  var message: String
  var hint: String? = nil
  /// Headers the answer needs (`WWW-Authenticate` with a 401, `Allow` with a 405).
  var headers: HTTPFields = [:]

  static func badRequest(_ message: String, code: String = "invalid_input") -> APIError {
    APIError(status: .badRequest, code: code, message: message)
  }

  /// `error` as the API reports it; `databasePath` names the database in storage errors.
  init(_ error: any Error, databasePath: String) {
    switch error {
    case let error as APIError:
      self = error
    case let error as HTTPError:
      self.init(http: error)
    case let error as NIOTooManyBytesError:
      self.init(
        status: .contentTooLarge, code: "body_too_large",
        message:
          "the request body is larger than the server's limit of \(error.maxBytes.map { String(format: "%.0f MiB", Double($0) / 1_048_576) } ?? "its limit")",
        hint: "send fewer documents per request, or start the server with a larger --max-body-mib")
    case let error as VectorDBError:
      self.init(database: error)
    default:
      if let error = VectorDBError(wrapping: error, path: databasePath) {
        self.init(database: error)
      } else {
        self.init(status: .internalServerError, code: "internal", message: "\(error)")
      }
    }
  }

  init(
    status: HTTPResponse.Status, code: String, message: String, hint: String? = nil,
    headers: HTTPFields = [:]
  ) {
    self.status = status
    self.code = code
    self.message = message
    self.hint = hint
    self.headers = headers
  }

  /// Hummingbird's own errors: unknown routes, bodies over the limit.
  private init(http error: HTTPError) {
    let code: String
    switch error.status {
    case .notFound: code = "not_found"
    case .methodNotAllowed: code = "method_not_allowed"
    case .contentTooLarge: code = "body_too_large"
    case .unauthorized: code = "unauthorized"
    default: code = error.status.code < 500 ? "invalid_request" : "internal"
    }
    let message =
      error.body
      ?? (error.status == .contentTooLarge
        ? "the request body is larger than the server's limit" : error.status.reasonPhrase)
    self.init(status: error.status, code: code, message: message)
  }

  private init(database error: VectorDBError) {
    let status: HTTPResponse.Status
    let code: String
    switch error {
    case .collectionNotFound: (status, code) = (.notFound, "collection_not_found")
    case .documentNotFound: (status, code) = (.notFound, "document_not_found")
    case .logEntryNotFound: (status, code) = (.notFound, "log_entry_not_found")
    case .modelNotFound: (status, code) = (.notFound, "model_not_found")
    case .collectionExists: (status, code) = (.conflict, "collection_exists")
    case .collectionBusy: (status, code) = (.conflict, "collection_busy")
    case .modelInUse: (status, code) = (.conflict, "model_in_use")
    case .modelWithoutWeights: (status, code) = (.conflict, "model_without_weights")
    case .invalidDocument: (status, code) = (.badRequest, "invalid_document")
    case .invalidVector: (status, code) = (.badRequest, "invalid_vector")
    case .invalidInput: (status, code) = (.badRequest, "invalid_input")
    case .invalidModel: (status, code) = (.badRequest, "invalid_model")
    case .routerNotFound: (status, code) = (.notFound, "router_not_found")
    case .routeLogEntryNotFound: (status, code) = (.notFound, "log_entry_not_found")
    case .notAvailable, .modelUnsuitable, .routerNotAvailable:
      (status, code) = (.badRequest, "unsupported")
    case .routerVersionWithoutWeights: (status, code) = (.conflict, "version_without_weights")
    case .concurrentChange: (status, code) = (.conflict, "concurrent_change")
    case .notEnoughJudgements: (status, code) = (.badRequest, "not_enough_judgements")
    case .notEnoughExamples: (status, code) = (.badRequest, "not_enough_examples")
    case .nothingToResume: (status, code) = (.badRequest, "nothing_to_resume")
    case .databaseNotFound: (status, code) = (.internalServerError, "database_not_found")
    case .notADatabase: (status, code) = (.internalServerError, "not_a_database")
    case .newerFormat: (status, code) = (.internalServerError, "newer_format")
    case .damaged: (status, code) = (.internalServerError, "damaged")
    case .storage(let storage):
      // A full disk is the server's state, not a bug: the client may retry later.
      (status, code) = (
        [ENOSPC, EFBIG].contains(storage.code)
          ? HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
          : .internalServerError, "storage"
      )
    }
    self.init(status: status, code: code, message: error.description, hint: error.hint)
  }

  /// The JSON body (`hint` is `null` when there is none).
  struct Body: Encodable {
    struct Detail: Encodable {
      var code: String
      var message: String
      var hint: String?
    }
    var error: Detail
  }

  var response: Response {
    var response = JSONResponse.make(
      Body(error: Body.Detail(code: code, message: message, hint: hint)), status: status)
    response.headers.append(contentsOf: headers)
    return response
  }
}

/// Turns every error thrown below it (handlers, the router's 404, body limits) into
/// the API's JSON error.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
  let databasePath: String

  func handle(
    _ request: Request, context: Context, next: (Request, Context) async throws -> Response
  ) async throws -> Response {
    do {
      return try await next(request, context)
    } catch {
      let failure = APIError(error, databasePath: databasePath)
      if failure.status.code >= 500 {
        context.logger.error("\(request.method) \(request.uri.path): \(failure.message)")
      }
      return failure.response
    }
  }
}

/// Bearer-token authentication: every request but the liveness check (`GET /health`,
/// which tells nothing about the data) must carry `Authorization: Bearer TOKEN`.
struct TokenMiddleware<Context: RequestContext>: RouterMiddleware {
  let token: [UInt8]

  func handle(
    _ request: Request, context: Context, next: (Request, Context) async throws -> Response
  ) async throws -> Response {
    if request.uri.path == Routes.healthPath { return try await next(request, context) }
    let header = request.headers[.authorization] ?? ""
    guard header.hasPrefix("Bearer "), constantTimeEqual(Array(header.utf8.dropFirst(7)), token)
    else {
      throw APIError(
        status: .unauthorized, code: "unauthorized",
        message: header.isEmpty
          ? "the request has no Authorization header" : "the bearer token is not valid",
        hint: "send `Authorization: Bearer TOKEN` with the token of --token-file",
        headers: [.wwwAuthenticate: "Bearer"])
    }
    return try await next(request, context)
  }
}

/// Whether `given` equals `expected`, in a time that depends only on `expected`'s length
/// (a wrong token reveals nothing of the right one through timing).
func constantTimeEqual(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
  var difference = UInt8(given.count == expected.count ? 0 : 1)
  for index in expected.indices {
    difference |= expected[index] ^ (index < given.count ? given[index] : 0)
  }
  return difference == 0
}

/// JSON responses in vdb's one convention (`JSONOutput`, as the shell's `--json`).
enum JSONResponse {
  static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
    let data: Data
    do {
      data = try JSONOutput.data(value)
    } catch {
      return APIError(
        status: .internalServerError, code: "internal", message: "cannot encode the response"
      ).response
    }
    return Response(
      status: status, headers: [.contentType: "application/json"],
      body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
  }
}
