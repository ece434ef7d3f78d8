// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI, ext4 and LevelDB
// use it: the checksum of stored model weights, vectors and neighbour lists.
//
// With SSE4.2 the CPU's crc32 instruction does 8 bytes per step (≈ 8 GB/s, so a 90 MB
// model costs ~10 ms to check on load); without it, a byte-wise table. The version is
// picked once at load by an ifunc, as for the distance kernels.

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ckernels.h"
#include "ifunc.h"

static uint32_t table[256];

static void __attribute__((constructor)) build_table(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    table[i] = c;
  }
}

static uint32_t crc32c_plain(uint32_t crc, const void *data, size_t count) {
  const uint8_t *p = data;
  crc = ~crc;
  for (size_t i = 0; i < count; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *data,
                                                                size_t count) {
  const uint8_t *p = data;
  uint64_t c = ~crc;
  for (; count >= 8; count -= 8, p += 8) {
    uint64_t word;
    memcpy(&word, p, 8);  // unaligned: blobs in an LMDB map have no alignment
    c = __builtin_ia32_crc32di(c, word);
  }
  uint32_t c32 = (uint32_t)c;
  for (; count > 0; count--, p++) c32 = __builtin_ia32_crc32qi(c32, *p);
  return ~c32;
}

VDB_IFUNC_RESOLVER static uint32_t (*resolve_crc32c(void))(uint32_t, const void *, size_t) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2") ? crc32c_sse42 : crc32c_plain;
}

uint32_t vdb_crc32c(uint32_t crc, const void *data, size_t count)
    __attribute__((ifunc("resolve_crc32c")));

int vdb_crc32c_is_accelerated(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#else
uint32_t vdb_crc32c(uint32_t crc, const void *data, size_t count) {
  return crc32c_plain(crc, data, count);
}

int vdb_crc32c_is_accelerated(void) { return 0; }
#endif
