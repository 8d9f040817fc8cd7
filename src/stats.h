/* SPDX-License-Identifier: MIT */
/*
 * Statistics: gathered from the bins, arenas, huge mappings, caches and collector when
 * asked, never counted on a fast path.  Printing never allocates.
 */
#ifndef MLC_STATS_H
#define MLC_STATS_H

#include "internal.h"

#include <melloc.h>

/* Fills st (all of it: the caller's size was checked by the caller). */
void mlc_stats_gather(melloc_stats_t *st);

/* Keeps a duplicate of stderr for the statistics printed at exit: many programs (the
   GNU core utilities among them) close stderr in an atexit handler first. */
void mlc_stats_keep_stderr(void);

#endif /* MLC_STATS_H */
