// The LMDB module; see docs/architecture.md.
