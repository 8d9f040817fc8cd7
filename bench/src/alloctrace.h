/* SPDX-License-Identifier: MIT */
/* The trace alloctrace.so writes and replay reads: records of this layout, in the
   recording machine's byte order, one per allocator call, in the order the allocator
   saw them. */
#ifndef BENCH_ALLOCTRACE_H
#define BENCH_ALLOCTRACE_H
#include <stdint.h>

enum {
  ALLOCTRACE_MALLOC = 1,   /* ptr = malloc(size) */
  ALLOCTRACE_CALLOC = 2,   /* ptr = calloc(1, size): size is the product */
  ALLOCTRACE_REALLOC = 3,  /* ptr = realloc(aux, size); ptr 0 with size 0: aux freed */
  ALLOCTRACE_FREE = 4,     /* free(ptr) */
  ALLOCTRACE_MEMALIGN = 5, /* ptr = aligned block of size bytes, alignment aux (posix_memalign,
                              aligned_alloc, memalign, valloc, pvalloc: size rounded up) */
  ALLOCTRACE_EXIT = 6,     /* the thread ended (its last record; threads that made calls only) */
};

struct alloctrace_rec {
  uint8_t op;
  uint8_t pad[3];
  uint32_t thread; /* 0 for the first thread that called the allocator, 1 for the next... */
  uint64_t ptr;
  uint64_t size;
  uint64_t aux;
};
_Static_assert(sizeof(struct alloctrace_rec) == 32, "alloctrace_rec is 32 bytes");

#endif
