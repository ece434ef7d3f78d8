// The HNSW module; see docs/architecture.md.
