/* SPDX-License-Identifier: MIT */
/*
 * Statistics: gathered from the bins, arenas, huge mappings, caches and collector when
 * asked, never counted on a fast path.  Printing never allocates.
 */
#ifndef MLC_STATS_H
#define MLC_STATS_H

#include "internal.h"

#include <melloc.h>

/* Fills st (all of it: the caller's size was checked by the caller).  resident: reads the
   process's resident size from /proc/self/statm, else leaves it 0 -- for glibc's
   extensions (mallinfo, malloc_trim, malloc_info), which glibc answers without a system
   call: a program's seccomp filter may kill it for an open(). */
void mlc_stats_gather(melloc_stats_t *st, bool resident);

/* Keeps a duplicate of stderr for the statistics printed at exit: many programs (the
   GNU core utilities among them) close stderr in an atexit handler first. */
void mlc_stats_keep_stderr(void);

#endif /* MLC_STATS_H */
