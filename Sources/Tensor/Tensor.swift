// The Tensor module; see docs/architecture.md.
