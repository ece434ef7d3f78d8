import Foundation
import LMDB

/// Everything that can go wrong in vdb, each with a message that names the input
/// and where it went wrong.
///
///     do { try db.collection("docs").upsert(doc) }
///     catch let error as VectorDBError { print(error) }   // one line a user can act on
public enum VectorDBError: Error, CustomStringConvertible, Equatable, Sendable {
  /// `path` exists but is not a vdb database (a file, a directory of another program).
  case notADatabase(path: String, reason: String)
  /// The database was written by a newer vdb.
  case newerFormat(path: String, found: UInt32, supported: UInt32)
  /// The database files are damaged: `detail` says where.
  case damaged(path: String, detail: String)
  /// No database at `path` and the caller asked not to create one.
  case databaseNotFound(path: String)
  case collectionNotFound(String)
  /// `collections create` or `rename` onto a name in use.
  case collectionExists(String)
  /// A job holds the collection: a re-embed or training run (running, or interrupted
  /// and resumable) or a server job. `job` names it and, when known, its process.
  case collectionBusy(name: String, job: String)
  case documentNotFound(id: String, collection: String)
  case invalidDocument(id: String, reason: String)
  case logEntryNotFound(UInt64)
  case modelNotFound(Int)
  /// A model version kept as lineage and metrics only (a rejected candidate).
  case modelWithoutWeights(Int)
  /// A model version that a generation, a rollback or another version still needs.
  case modelInUse(version: Int, by: String)
  /// A model directory that cannot be loaded: `reason` names the file and problem.
  case invalidModel(directory: String, reason: String)
  /// A vector of the wrong length, NaN, or a collection that needs vectors or text.
  case invalidVector(reason: String)
  /// The collection lacks what the operation needs (vectors, a model, a text index, an
  /// earlier version to roll back to): `reason` says which, after the collection's name.
  case notAvailable(collection: String, reason: String)
  /// Model `version` is not the kind the operation needs (an adapter where an encoder is
  /// needed, an encoder already in the asked precision, …): `reason` says why.
  case modelUnsuitable(version: Int, reason: String)
  /// Another writer changed the collection while a long operation ran (a generation
  /// dropped or replaced under a re-embed job): `detail` says what; run it again.
  case concurrentChange(collection: String, detail: String)
  /// No router named `name` (none was created, or it was deleted meanwhile).
  case routerNotFound(String)
  /// No entry `id` in the router's log (never logged, or a decision pruned by the log
  /// retention before it got an outcome).
  case routeLogEntryNotFound(router: String, id: UInt64)
  /// The router lacks what the operation needs (an active version, an earlier version to
  /// roll back to, an escalation path, an encoder to train with): `reason` says which,
  /// after the router's name.
  case routerNotAvailable(router: String, reason: String)
  /// A router version rejected by the gate whose weights were not kept (a LoRA-tier one).
  case routerVersionWithoutWeights(router: String, version: Int)
  /// Training a router needs `needed` inputs whose best path is known on every path;
  /// `short` holds the paths that have fewer, with how many they have.
  case notEnoughExamples(router: String, short: [String: Int], needed: Int)
  /// Bad input data: `source` is a file name or "argument", `line` is 1-based.
  case invalidInput(source: String, line: Int?, reason: String)
  /// The storage engine failed (disk full, permissions, …).
  case storage(LMDBError)
  /// Training needs more judged queries than the log holds: `judged` in all, of which the
  /// current retriever trained on `trained` (those train a candidate but cannot judge it).
  case notEnoughJudgements(collection: String, judged: Int, needed: Int, trained: Int = 0)
  /// `resume` asked for, but the collection has no interrupted training run.
  case nothingToResume(collection: String)

  /// The message the shell prints after `error:`, naming the input and the place.
  public var description: String {
    switch self {
    case .notADatabase(let path, let reason):
      return "\(path) is not a vdb database: \(reason)"
    case .newerFormat(let path, let found, let supported):
      return "\(path) has format version \(found), newer than this vdb supports (\(supported))"
    case .damaged(let path, let detail):
      return "\(path) is damaged: \(detail)"
    case .databaseNotFound(let path):
      return "no database at \(path)"
    case .collectionNotFound(let name):
      return "no collection named \"\(name)\""
    case .collectionExists(let name):
      return "a collection named \"\(name)\" already exists"
    case .collectionBusy(let name, let job):
      return "collection \"\(name)\" is busy: \(job)"
    case .documentNotFound(let id, let collection):
      return "no document \"\(id)\" in collection \"\(collection)\""
    case .logEntryNotFound(let id):
      return "no query log entry \(id)"
    case .modelNotFound(let version):
      return "no model version \(version)"
    case .modelWithoutWeights(let version):
      return "model version \(version) was rejected and its weights were not kept"
    case .modelInUse(let version, let user):
      return "model version \(version) is in use: \(user)"
    case .invalidModel(let directory, let reason):
      return "cannot load the model in \(directory): \(reason)"
    case .invalidVector(let reason):
      return "invalid vector: \(reason)"
    case .notAvailable(let collection, let reason):
      return "collection \"\(collection)\" \(reason)"
    case .modelUnsuitable(let version, let reason):
      return "model version \(version) \(reason)"
    case .concurrentChange(let collection, let detail):
      return "collection \"\(collection)\" changed during the operation: \(detail)"
    case .routerNotFound(let name):
      return "no router named \"\(name)\""
    case .routeLogEntryNotFound(let router, let id):
      return "router \"\(router)\" has no log entry \(id)"
    case .routerNotAvailable(let router, let reason):
      return "router \"\(router)\" \(reason)"
    case .routerVersionWithoutWeights(let router, let version):
      return "router \"\(router)\" version \(version) was rejected and its weights were not kept"
        + " (a LoRA-tier version keeps its lineage only)"
    case .notEnoughExamples(let router, let short, let needed):
      let paths = short.sorted { $0.key < $1.key }.map { path, count in
        "path \"\(path)\" has \(count) (\(needed - count) more needed)"
      }
      return "too few examples to train router \"\(router)\": "
        + paths.joined(separator: ", ")
        + "; training needs at least \(needed) inputs per path whose best path is known"
    case .invalidDocument(let id, let reason):
      return "document \"\(id)\": \(reason)"
    case .invalidInput(let source, let line, let reason):
      return line.map { "\(source):\($0): \(reason)" } ?? "\(source): \(reason)"
    case .storage(let error):
      return "storage: \(error)"
    case .notEnoughJudgements(let collection, let judged, let needed, let trained) where trained > 0:
      return "collection \"\(collection)\" has \(judged) judged queries, and its current"
        + " retriever trained on \(trained) of them: a candidate must be judged on at least 2"
        + " it has not seen (the gate needs about \(needed) to tell a gain of +0.02 nDCG@10"
        + " from noise)"
    case .notEnoughJudgements(let collection, let judged, let needed, _):
      return "collection \"\(collection)\" has \(judged) judged queries: too few to train and"
        + " judge a candidate (the gate needs about \(needed) to tell a gain of +0.02 nDCG@10"
        + " from noise)"
    case .nothingToResume(let collection):
      return "collection \"\(collection)\" has no interrupted training run to resume"
    }
  }

  /// A suggestion for the user, when there is an obvious one.
  public var hint: String? {
    switch self {
    case .databaseNotFound: return "create one with `vdb init`, or point --db / $VDB_PATH at one"
    case .notADatabase: return "choose an empty or new directory for a vdb database"
    case .newerFormat: return "upgrade vdb to open this database"
    case .damaged:
      return "`vdb verify` lists what is damaged; restore the directory from a backup"
    case .collectionNotFound: return "`vdb collections` lists the collections"
    case .collectionExists: return "choose another name, or `vdb collections drop` the old one"
    case .collectionBusy:
      return "let the job finish (or resume an interrupted one); `collections drop --force`"
        + " drops the collection anyway"
    case .logEntryNotFound: return "`vdb log` lists the logged queries (old entries are pruned)"
    case .modelNotFound: return "`vdb models` lists the model versions"
    case .modelWithoutWeights:
      return "train again with --keep-rejected to keep a rejected candidate's weights"
    case .modelInUse: return "`vdb models` shows where each version is used"
    case .modelUnsuitable: return "`vdb models` lists each version's kind and precision"
    case .concurrentChange: return "run the command again"
    case .invalidModel:
      return "fetch the default model with tools/fetch-model.sh, or check the directory"
    case .notEnoughJudgements:
      return "log queries and say which document was right: `vdb feedback LOG_ID DOC_ID`,"
        + " or import judgements: `vdb feedback --qrels FILE --queries FILE`"
    case .nothingToResume: return "start a new run without --resume"
    case .routerNotFound: return "`vdb route list` lists the routers"
    case .routeLogEntryNotFound:
      return "`vdb route` prints each decision's log id; decisions without an outcome are"
        + " pruned by the log retention"
    case .routerVersionWithoutWeights:
      return "train again with --force to serve such a version"
    case .notEnoughExamples:
      return "label inputs with `vdb route import`, or record outcomes with `vdb route log`"
    case .storage(let error) where error.code == EACCES || error.code == EROFS:
      return
        "the database is read-only here (permissions or read-only media): it can be read, not"
        + " written (a query writes the query log: `--no-log`, `log: false` in Swift, reads only)"
    case .storage(let error) where error.code == ENOSPC:
      return "the disk is full: free space and retry (nothing was half-written)"
    case .storage(let error) where error.code == EFBIG:
      return "the database file reached this process's file size limit (`ulimit -f`): raise"
        + " it and retry (nothing was half-written)"
    default: return nil
    }
  }
}

/// Runs `body`, turning storage errors into `VectorDBError.storage`.
func storage<R>(_ body: () throws -> R) throws -> R {
  do {
    return try body()
  } catch let error as LMDBError {
    throw VectorDBError.storage(error)
  }
}

extension String {
  /// Empty or only white space: no query, no judgement.
  var isBlank: Bool { allSatisfy(\.isWhitespace) }
}
