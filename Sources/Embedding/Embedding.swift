// The Embedding module; see docs/architecture.md.
