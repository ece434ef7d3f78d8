// The VectorDB module; see docs/architecture.md.
