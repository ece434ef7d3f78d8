// swift-tools-version:6.0
import PackageDescription

// Layers, bottom to top (a module depends only on those below it):
//   CLMDB, CBLAS, …      system libraries (apt: liblmdb-dev, libopenblas-dev, libstemmer-dev)
//   LMDB                 storage: environment, transactions, tables, cursors
//   Tensor               math: dense float buffers, BLAS, SIMD kernels
//   Embedding            tokenizer, safetensors, BERT encoder (inference)
//   HNSW                 the graph index over a storage protocol
//   TextSearch           analyzer, BM25, MaxScore top-k over a postings protocol, fusion
//   Training             backward pass, losses, optimiser, metrics
//   VectorDB             the public library: ties storage, index, encoder, training
//   VDBServer            JSON over HTTP (Hummingbird) for `vdb serve`; the library stays free of it
//   VDBSync              copies a collection into PostgreSQL + pgvector (postgres-nio) for `vdb sync`
//   vdb                  the shell
//   BenchmarkSupport     what every benchmark under Benchmarks/ shares

let argumentParser = Target.Dependency.product(
  name: "ArgumentParser", package: "swift-argument-parser")

let package = Package(
  name: "vdb",
  platforms: [.macOS(.v13)],
  products: [
    .library(name: "VectorDB", targets: ["VectorDB"]),
    .executable(name: "vdb", targets: ["vdb"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    // Already in Hummingbird's graph: named for the modules VDBServer imports directly.
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    // Already in postgres-nio's graph: named for the TLS options VDBSync passes it.
    .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.36.0"),
  ],
  targets: [
    .systemLibrary(
      name: "CLMDB", pkgConfig: "lmdb",
      providers: [.apt(["liblmdb-dev"])]),
    .systemLibrary(
      name: "CBLAS", pkgConfig: "openblas",
      providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(
      name: "CEditLine", pkgConfig: "libedit",
      providers: [.apt(["libedit-dev"])]),
    // Snowball stemmers; Debian's package has no pkg-config file (the module map links it).
    .systemLibrary(name: "CStemmer", providers: [.apt(["libstemmer-dev"])]),
    .target(name: "LMDB", dependencies: ["CLMDB"]),
    // A cache prefetch hint for the HNSW search loop (Swift has no prefetch intrinsic).
    .target(name: "CPrefetch"),
    // Small linear layers with CPU-specific SIMD chosen at run time (one query's tokens).
    .target(name: "CKernels"),
    .target(name: "Tensor", dependencies: ["CBLAS", "CKernels", "CPrefetch"]),
    .target(name: "JSON"),
    .target(name: "Embedding", dependencies: ["JSON", "Tensor"]),
    .target(name: "HNSW", dependencies: ["Tensor", "CKernels"]),
    .target(name: "TextSearch", dependencies: ["CStemmer"]),
    .target(name: "Training", dependencies: ["Embedding", "Tensor", "CBLAS"]),
    .target(
      name: "VectorDB",
      dependencies: [
        "LMDB", "JSON", "Tensor", "Embedding", "HNSW", "TextSearch", "Training", "CKernels",
        .product(name: "Crypto", package: "swift-crypto"),
      ]),
    .target(
      name: "VDBServer",
      dependencies: [
        "JSON", "VectorDB",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      path: "Sources/Server", resources: [.embedInCode("openapi.json")]),
    .target(
      name: "VDBSync",
      dependencies: [
        "VectorDB",
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Crypto", package: "swift-crypto"),
      ],
      path: "Sources/Sync"),
    .executableTarget(
      name: "vdb",
      dependencies: [
        "VectorDB", "VDBServer", "VDBSync", "CEditLine",
        argumentParser,
      ]),
    // Benchmarks: release-build executables, one per area (see Benchmarks/README.md), on
    // one support library (statistics, the machine's facts, clocks) and ArgumentParser.
    .target(name: "BenchmarkSupport", dependencies: [argumentParser], path: "Benchmarks/Support"),
    .executableTarget(
      name: "storage-bench",
      dependencies: ["VectorDB", "CKernels", "BenchmarkSupport", argumentParser],
      path: "Benchmarks/storage-bench"),
    .executableTarget(
      name: "log-bench", dependencies: ["VectorDB", "BenchmarkSupport", argumentParser],
      path: "Benchmarks/log-bench"),
    .executableTarget(
      name: "encoder-bench",
      dependencies: ["Embedding", "Tensor", "BenchmarkSupport", argumentParser],
      path: "Benchmarks/encoder-bench"),
    .executableTarget(
      name: "reembed-bench", dependencies: ["VectorDB", "BenchmarkSupport", argumentParser],
      path: "Benchmarks/reembed-bench"),
    .executableTarget(
      name: "index-bench",
      dependencies: ["VectorDB", "HNSW", "Tensor", "BenchmarkSupport", argumentParser],
      path: "Benchmarks/index-bench"),
    .executableTarget(
      name: "gate-bench",
      dependencies: [
        "VectorDB", "Tensor", "BenchmarkSupport", argumentParser,
      ],
      path: "Benchmarks/gate-bench"),
    .executableTarget(
      name: "serve-bench", dependencies: ["VectorDB", "BenchmarkSupport", argumentParser],
      path: "Benchmarks/serve-bench"),
    .executableTarget(
      name: "search-bench", dependencies: ["VectorDB", "BenchmarkSupport", argumentParser],
      path: "Benchmarks/search-bench"),
    .executableTarget(
      name: "train-bench",
      dependencies: ["Training", "Embedding", "Tensor", "BenchmarkSupport", argumentParser],
      path: "Benchmarks/train-bench"),
    .executableTarget(
      name: "route-bench",
      dependencies: ["VectorDB", "Training", "BenchmarkSupport", argumentParser],
      path: "Benchmarks/route-bench"),
    .testTarget(name: "LMDBTests", dependencies: ["LMDB"]),
    .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
    .testTarget(name: "JSONTests", dependencies: ["JSON", "Tensor"]),
    .testTarget(name: "EmbeddingTests", dependencies: ["Embedding"]),
    // VectorDB only for its vector-file reader (the data sets are .fvecs/.ivecs files).
    .testTarget(name: "HNSWTests", dependencies: ["HNSW", "VectorDB"]),
    .testTarget(name: "TextSearchTests", dependencies: ["TextSearch"]),
    .testTarget(name: "TrainingTests", dependencies: ["Training", "Embedding"]),
    .testTarget(name: "VectorDBTests", dependencies: ["VectorDB"]),
    .testTarget(
      name: "vdbTests", dependencies: ["VectorDB", "Embedding", "LMDB", "Tensor", "vdb"]),
  ],
  swiftLanguageModes: [.v5]
)
