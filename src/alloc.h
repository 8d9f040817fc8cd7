/* SPDX-License-Identifier: MIT */
/*
 * The allocation entry points' internal helpers, shared with the thread cache's slow
 * paths.
 */
#ifndef MLC_ALLOC_H
#define MLC_ALLOC_H

#include "internal.h"

/* free() of a pointer whose page-map class is 0: NULL, large, huge, or not melloc's
   (which aborts with a message); ent is its page-map entry.  Preserves errno. */
MLC_NOINLINE void mlc_free_nonsmall(void *p, void *ent);

#endif /* MLC_ALLOC_H */
