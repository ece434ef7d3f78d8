import CLMDB

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An LMDB environment: one directory holding `data.mdb` and `lock.mdb`.
///
/// Open it once per process with `Environment.open(path:)` (LMDB forbids opening the
/// same environment twice in one process; `open` hands back the live instance), then
/// run transactions:
///
///     let env = try Environment.open(path: "/tmp/db")
///     let docs = try env.table("docs")
///     try env.write { txn in try txn.put(docs, key: "a", value: Array("hello".utf8)) }
///     let text = try env.read { txn in try txn.get(docs, key: "a").map { String(decoding: $0, as: UTF8.self) } }
///
/// - Transactions: `read` and `write` run a closure in a transaction that commits when
///   the closure returns and aborts when it throws. Many readers run at once, in this
///   process and others; one writer at a time (a second writer, in any process, waits).
/// - Threads: the environment is opened with `MDB_NOTLS`, so a read transaction is not
///   tied to a thread and `read` may be called from any number of threads at once.
///   Bytes handed out by a transaction are valid only inside its closure.
/// - Map size: the user never chooses one. A write that fills the map (`MDB_MAP_FULL`)
///   is rolled back, the map doubles, and the write closure runs again from the start;
///   so a write closure must have no side effects outside the transaction. When another
///   process grew the map (`MDB_MAP_RESIZED`), this one adopts the new size and retries.
/// - Files are created with mode 0600, the directory with 0700.
public final class Environment: @unchecked Sendable {
  /// Settings for opening an environment.
  public struct Options: Sendable {
    /// The most named tables the environment may hold.
    public var maxTables: Int = 256
    /// The most concurrent read transactions over all processes.
    public var maxReaders: Int = 510
    /// The map size to start with; it grows by itself when full.
    public var initialMapSize: Int = 1 << 30
    /// Skip the `fsync` at commit: faster, but a crash may lose recent commits
    /// (never corrupts). For bulk loads that can be redone.
    public var noSync: Bool = false
    /// Open for reading only (`MDB_RDONLY`): nothing is created or written but the lock
    /// file; write transactions fail with `EACCES`, and tables must exist.
    public var readOnly: Bool = false
    /// With `readOnly`, read without the lock file (`MDB_NOLOCK`), for a lock file this
    /// process may not write (another owner's database). Such a reader does not hold
    /// back a concurrent writer's page reuse: a long read while the owner writes can
    /// see pages change under it.
    public var noLock: Bool = false

    public init() {}
  }

  /// The environment's directory.
  public let path: String
  /// Opened with `Options.readOnly`.
  public let isReadOnly: Bool
  let handle: OpaquePointer
  /// Held shared by every transaction and exclusively while the map is resized:
  /// LMDB requires that no transaction of this process is active during a resize.
  private let resizeLock: UnsafeMutablePointer<pthread_rwlock_t>
  /// Serialises `mdb_dbi_open`, which must not run in concurrent transactions.
  private let tableLock: UnsafeMutablePointer<pthread_mutex_t>
  private var tables: [String: Table] = [:]

  /// Called when one of LMDB's internal checks fails (a damaged page), with the check's
  /// text, just before LMDB aborts the process. A library cannot recover from that; a
  /// host that owns its process (the `vdb` shell) can report it and exit instead. Set
  /// it before opening environments.
  nonisolated(unsafe) public static var assertionHandler:
    (@convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> Void)?

  private static let registryLock: UnsafeMutablePointer<pthread_mutex_t> = {
    let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    pthread_mutex_init(lock, nil)
    return lock
  }()
  nonisolated(unsafe) private static var registry: [String: WeakEnvironment] = [:]

  /// Opens the environment in directory `path`, creating the directory (0700) and the
  /// files (0600) when missing. Returns the instance already open in this process, if any.
  ///
  /// - Throws: `LMDBError` with `ENOTDIR` when `path` is a file, `EACCES` when the
  ///   directory cannot be read or written, `MDB_INVALID` when `data.mdb` is not an
  ///   LMDB file, `MDB_VERSION_MISMATCH` when it was written by another LMDB version.
  public static func open(path: String, options: Options = Options()) throws -> Environment {
    if !options.readOnly { try createDirectory(path) }
    let key = realPath(path) ?? path
    pthread_mutex_lock(registryLock)
    defer { pthread_mutex_unlock(registryLock) }
    if let live = registry[key]?.environment {
      // A writable instance serves readers too; a read-only one cannot serve a writer,
      // and LMDB allows one instance per process.
      guard options.readOnly || !live.isReadOnly else {
        throw LMDBError(
          code: EBUSY,
          operation:
            "open environment at \(path) for writing (it is open read-only in this process)")
      }
      return live
    }
    occupyStandardDescriptors()
    let environment = try Environment(path: path, options: options)
    registry[key] = WeakEnvironment(environment: environment)
    return environment
  }

  /// Puts `/dev/null` on standard input, output or error where the process has them
  /// closed. Why: files open at the lowest free descriptor, so a process started with
  /// `>&-` (a daemon launcher, a careless script) would get `lock.mdb` or `data.mdb` as
  /// descriptor 1, and its next `print` would write into the database (SQLite guards the
  /// same way). Output goes to a read-only and input to a write-only `/dev/null`, so
  /// that the process's own writes and reads there still fail (`EBADF`) as on a closed
  /// descriptor.
  private static func occupyStandardDescriptors() {
    for descriptor: Int32 in 0...2 where fcntl(descriptor, F_GETFD) == -1 && errno == EBADF {
      let null = openNull(descriptor == 0 ? O_WRONLY : O_RDONLY)
      if null >= 0 && null != descriptor {
        dup2(null, descriptor)
        close(null)
      }
    }
  }

  private init(path: String, options: Options) throws {
    var handle: OpaquePointer?
    try check(mdb_env_create(&handle), "create environment")
    guard let handle else { throw LMDBError(code: ENOMEM, operation: "create environment") }
    self.handle = handle
    self.path = path
    isReadOnly = options.readOnly
    resizeLock = .allocate(capacity: 1)
    pthread_rwlock_init(resizeLock, nil)
    tableLock = .allocate(capacity: 1)
    pthread_mutex_init(tableLock, nil)
    // On a throw below, deinit closes the handle (every stored property is set).
    try check(mdb_env_set_maxdbs(handle, MDB_dbi(options.maxTables)), "set max tables")
    try check(mdb_env_set_maxreaders(handle, UInt32(options.maxReaders)), "set max readers")
    try check(mdb_env_set_mapsize(handle, options.initialMapSize), "set map size")
    if let handler = Environment.assertionHandler { mdb_env_set_assert(handle, handler) }
    var flags = UInt32(MDB_NOTLS)
    if options.noSync { flags |= UInt32(MDB_NOSYNC) }
    if options.readOnly { flags |= UInt32(MDB_RDONLY) }
    if options.readOnly && options.noLock { flags |= UInt32(MDB_NOLOCK) }
    if !options.readOnly { try Environment.allocateLockFile(in: path, readers: options.maxReaders) }
    try check(mdb_env_open(handle, path, flags, 0o600), "open environment at \(path)")
    // Free reader slots left by processes that died inside a read transaction.
    var dead: Int32 = 0
    mdb_reader_check(handle, &dead)
  }

  /// LMDB makes its lock file by extending it (a file with holes) and then writes it
  /// through a memory map; on a full file system the first write to a page without a
  /// block behind it ends the process with SIGBUS, where a full disk should be an error.
  /// So the file's blocks are allocated first (for an existing file, its holes only: what
  /// it holds is not touched).
  ///
  /// - Throws: `LMDBError` (`ENOSPC`, `EFBIG`) when the file system cannot hold a new lock
  ///   file, which is then removed. Any other trouble is left for LMDB to name.
  private static func allocateLockFile(in directory: String, readers: Int) throws {
    let path = directory + "/lock.mdb"
    let descriptor = openOrCreate(path)
    guard descriptor >= 0 else { return }
    defer { close(descriptor) }
    var status = stat()
    guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return }
    // The size LMDB gives a new lock file: a 192-byte header, then a 64-byte slot for each
    // reader after the first (mdb.c, `mdb_env_setup_locks`).
    let size = max(Int(status.st_size), 192 + (readers - 1) * 64)
    let code = posix_fallocate(descriptor, 0, off_t(size))
    // An existing file is opened as before: a full disk must not stop reads.
    guard status.st_size == 0, code == ENOSPC || code == EFBIG else { return }
    unlink(path)
    throw LMDBError(code: code, operation: "create lock file \(path)")
  }

  deinit {
    mdb_env_close(handle)
    pthread_rwlock_destroy(resizeLock)
    resizeLock.deallocate()
    pthread_mutex_destroy(tableLock)
    tableLock.deallocate()
  }

  /// Opens the named table as `table(_:)` does, or returns nil when the environment is
  /// read-only and has no such table (a table added to the format after the file was
  /// written, on media this process cannot write).
  ///
  /// - Throws: as `table(_:)`, except `MDB_NOTFOUND`.
  public func tableIfPresent(_ name: String) throws -> Table? {
    do {
      return try table(name)
    } catch let error as LMDBError where isReadOnly && error.code == MDB_NOTFOUND {
      return nil
    }
  }

  /// Opens the named table, creating it when missing (unless read-only). Handles are
  /// cached: later calls cost a dictionary lookup.
  ///
  /// - Throws: `MDB_DBS_FULL` when `Options.maxTables` tables already exist;
  ///   `MDB_NOTFOUND` when read-only and the table does not exist.
  public func table(_ name: String) throws -> Table {
    pthread_mutex_lock(tableLock)
    defer { pthread_mutex_unlock(tableLock) }
    if let table = tables[name] { return table }
    let table: Table
    if isReadOnly {
      // Committed, not aborted: an aborted transaction would close the new handle.
      table = try withTransaction(flags: UInt32(MDB_RDONLY)) { handle in
        var dbi: MDB_dbi = 0
        let code = mdb_dbi_open(handle, name, 0, &dbi)
        guard code == MDB_SUCCESS else {
          mdb_txn_abort(handle)
          throw LMDBError(code: code, operation: "open", table: name)
        }
        try check(mdb_txn_commit(handle), "open", table: name)
        return Table(name: name, dbi: dbi)
      }
    } else {
      table = try write { txn in
        var dbi: MDB_dbi = 0
        try check(mdb_dbi_open(txn.handle, name, UInt32(MDB_CREATE), &dbi), "open", table: name)
        return Table(name: name, dbi: dbi)
      }
    }
    tables[name] = table
    return table
  }

  /// Copies the environment into the existing empty directory `path`, as one read
  /// transaction sees it (writers go on); `compact` leaves out free pages and renumbers
  /// the rest (`MDB_CP_COMPACT`).
  ///
  /// - Throws: `LMDBError` (e.g. `ENOSPC` for a full disk, `EEXIST`).
  public func copy(to path: String, compact: Bool) throws {
    pthread_rwlock_rdlock(resizeLock)
    defer { pthread_rwlock_unlock(resizeLock) }
    try check(mdb_env_copy2(handle, path, compact ? UInt32(MDB_CP_COMPACT) : 0), "copy to \(path)")
  }

  /// Drops the cached handle of a deleted table.
  func forgetTable(_ name: String) {
    pthread_mutex_lock(tableLock)
    defer { pthread_mutex_unlock(tableLock) }
    tables[name] = nil
  }

  /// Last page in use and page size: `data.mdb` must hold at least that many bytes,
  /// or the file was truncated (reading past its end would crash the process).
  public func usedBytes() -> Int {
    var info = MDB_envinfo()
    mdb_env_info(handle, &info)
    var stat = MDB_stat()
    mdb_env_stat(handle, &stat)
    return (info.me_last_pgno + 1) * Int(stat.ms_psize)
  }

  /// The names of the tables that exist in the environment, in byte order.
  public func tableNames() throws -> [String] {
    try read { txn in
      var names: [String] = []
      // MAIN_DBI (1) maps table names to their roots; 0 is the free list.
      try txn.forEach(in: Table(name: "(main)", dbi: 1)) { key, _ in
        names.append(String(decoding: key, as: UTF8.self))
        return true
      }
      return names
    }
  }

  /// Runs `body` in a read transaction: a consistent snapshot of the whole environment.
  ///
  /// - Throws: whatever `body` throws; `MDB_READERS_FULL` when too many readers are
  ///   open at once.
  public func read<R>(_ body: (Transaction) throws -> R) throws -> R {
    try withTransaction(flags: UInt32(MDB_RDONLY)) { handle in
      let txn = Transaction(handle: handle, environment: self)
      // Abort also when `body` throws: a leaked reader pins its snapshot, and LMDB
      // could then never reuse the pages freed after it.
      defer {
        txn.isOpen = false
        mdb_txn_abort(handle)
      }
      return try body(txn)
    }
  }

  /// Runs `body` in a write transaction and commits when it returns; aborts when it
  /// throws. Waits while another writer (in any process) is active.
  ///
  /// `body` may run more than once: when the map fills up, the transaction is rolled
  /// back, the map grows, and `body` runs again. Keep side effects inside the transaction.
  ///
  /// - Throws: whatever `body` throws; `LMDBError` from the commit (e.g. `ENOSPC`
  ///   when the disk is full, `EFBIG` past the process's file size limit: the
  ///   transaction is then rolled back as a whole).
  public func write<R>(_ body: (WriteTransaction) throws -> R) throws -> R {
    while true {
      var fullAt: Int?  // the map size a write found full
      do {
        return try withTransaction(flags: 0) { handle in
          let txn = WriteTransaction(handle: handle, environment: self)
          defer {
            txn.isOpen = false
            if txn.sawMapFull { fullAt = mapSize }
          }
          let result: R
          do {
            result = try body(txn)
          } catch {
            mdb_txn_abort(handle)
            throw error
          }
          var code = mdb_txn_commit(handle)
          if code == MDB_MAP_FULL { txn.sawMapFull = true }
          if code == EIO { code = shortWriteCause() ?? code }
          try check(code, "commit write transaction")
          extendToUsedPages()
          return result
        }
      } catch  where fullAt != nil {
        // Doubled unless another thread has grown it since: two writers that each found
        // it full grow it once, not fourfold.
        try resizeMap(to: fullAt! * 2, unlessPast: fullAt!)
      }
    }
  }

  /// Begins a transaction with the resize lock held shared, adopting a map grown by
  /// another process when LMDB asks for it.
  private func withTransaction<R>(
    flags: UInt32, _ body: (OpaquePointer) throws -> R
  ) throws -> R {
    while true {
      pthread_rwlock_rdlock(resizeLock)
      var handle: OpaquePointer?
      let code = mdb_txn_begin(self.handle, nil, flags, &handle)
      if code == MDB_MAP_RESIZED {
        pthread_rwlock_unlock(resizeLock)
        try resizeMap(to: 0)
        continue
      }
      defer { pthread_rwlock_unlock(resizeLock) }
      let kind = flags & UInt32(MDB_RDONLY) != 0 ? "read" : "write"
      try check(code, "begin \(kind) transaction")
      return try body(handle!)
    }
  }

  /// A transaction that allocates pages at the end and frees them again (a large value
  /// written and deleted in it) commits a page count that includes pages it never wrote:
  /// the file would then look truncated to the next open (``usedBytes()``). It is
  /// extended to the pages counted; `posix_fallocate` never shrinks it, so a writer that
  /// has grown it since loses nothing. A failure (a full disk) leaves it as LMDB made it.
  private func extendToUsedPages() {
    let used = usedBytes()
    let size = fileSize()
    guard size < used else { return }
    var descriptor: mdb_filehandle_t = -1
    guard mdb_env_get_fd(handle, &descriptor) == 0 else { return }
    _ = posix_fallocate(descriptor, off_t(size), off_t(used - size))
  }

  /// LMDB reports a commit's write that fell short as `EIO`, which reads as a failing
  /// disk. A write to a local file falls short when the file system is full or the file
  /// reached the process's size limit (`ulimit -f`): `ENOSPC` or `EFBIG` when one of
  /// them holds now, else nil. Both are read, not probed: nothing is written.
  private func shortWriteCause() -> Int32? {
    let slack = 1 << 20  // more than one write of a commit (LMDB writes 64 pages at most)
    var limit = rlimit()
    if getrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max,
      UInt64(fileSize() + slack) > UInt64(limit.rlim_cur)
    {
      return EFBIG
    }
    var volume = statvfs()
    guard statvfs(path, &volume) == 0 else { return nil }
    // Root may write into the blocks the file system reserves for it.
    let blocks = geteuid() == 0 ? volume.f_bfree : volume.f_bavail
    return blocks * volume.f_frsize < UInt64(slack) ? ENOSPC : nil
  }

  /// The current map size in bytes.
  public var mapSize: Int {
    var info = MDB_envinfo()
    mdb_env_info(handle, &info)
    return info.me_mapsize
  }

  /// Sets the map size with no transaction of this process active (0 = adopt the size
  /// recorded in the file by another process); not when it is already past `current`.
  private func resizeMap(to size: Int, unlessPast current: Int = .max) throws {
    pthread_rwlock_wrlock(resizeLock)
    defer { pthread_rwlock_unlock(resizeLock) }
    guard mapSize <= current else { return }
    try check(mdb_env_set_mapsize(handle, size), "resize map to \(size) bytes")
  }

  /// Flushes buffers to disk (useful after writes with `Options.noSync`).
  public func sync() throws {
    try check(mdb_env_sync(handle, 1), "sync environment")
  }

  /// The size of `data.mdb` in bytes (what the environment takes on disk).
  public func fileSize() -> Int {
    var info = stat()
    guard stat(path + "/data.mdb", &info) == 0 else { return 0 }
    return Int(info.st_size)
  }

  private static func createDirectory(_ path: String) throws {
    var info = stat()
    if stat(path, &info) == 0 {
      if info.st_mode & S_IFMT != S_IFDIR {
        throw LMDBError(code: ENOTDIR, operation: "open environment at \(path)")
      }
      return
    }
    if mkdir(path, 0o700) != 0 && errno != EEXIST {
      throw LMDBError(code: errno, operation: "create directory \(path)")
    }
  }

  private static func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
  }
}

private struct WeakEnvironment {
  weak var environment: Environment?
}

/// A named table (an LMDB sub-database). A cheap value, valid for the environment's life.
public struct Table: Sendable, Hashable {
  public let name: String
  let dbi: MDB_dbi
}

/// `/dev/null` opened with `flags` (at file scope, where `open` is the system call).
private func openNull(_ flags: Int32) -> Int32 { open("/dev/null", flags) }

/// `path` open for writing, made (mode 0600) if missing; never through a symbolic link.
private func openOrCreate(_ path: String) -> Int32 {
  open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
}
