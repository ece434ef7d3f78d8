// The target's only function is the inline one in include/prefetch.h; SwiftPM needs a
// source file to build a C target.
#include "prefetch.h"
