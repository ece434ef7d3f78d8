#ifndef VDB_CKERNELS_IFUNC_H
#define VDB_CKERNELS_IFUNC_H

// An ifunc resolver runs while the loader relocates the program, before any sanitizer's
// runtime is set up: instrumented (`swift build --sanitize=thread`), its first call into
// that runtime crashes the process before `main`. Resolvers, and what they call, are
// left uninstrumented.
#if defined(__has_attribute)
#if __has_attribute(disable_sanitizer_instrumentation)
#define VDB_IFUNC_RESOLVER __attribute__((disable_sanitizer_instrumentation))
#endif
#endif
#ifndef VDB_IFUNC_RESOLVER
#define VDB_IFUNC_RESOLVER
#endif

#endif
