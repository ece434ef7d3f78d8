#ifndef VDB_PREFETCH_H
#define VDB_PREFETCH_H

/// Asks the CPU to start loading the cache line at `address` (for reading, kept in all
/// cache levels). A hint: it never faults, even for an invalid address. Swift has no
/// prefetch intrinsic, hence this one-line C function, inlined into Swift callers.
static inline __attribute__((always_inline)) void vdb_prefetch(const void *address) {
  __builtin_prefetch(address, 0, 3);
}

#endif
