/* SPDX-License-Identifier: MIT */
/*
 * The heap profiler's stack walk on amd64: libgcc's unwind tables (.eh_frame, found
 * with _Unwind_Find_FDE), each return address's rule read from them once and kept in a
 * table, so that a stack of known addresses costs a lookup and two loads a frame instead
 * of libgcc's ~1,700 instructions (finding the object, the FDE, and running its CFI
 * program every time).  Where a frame needs what this walk does not do (a signal frame,
 * a DWARF expression, a rule through another register), it says so and the caller
 * walks the stack again with _Unwind_Backtrace: the same frames either way.
 */
#ifndef MLC_STACKWALK_H
#define MLC_STACKWALK_H

#include "internal.h"

#if defined(__x86_64__) && MLC_PROF_UNWIND_LIBGCC
#define MLC_STACKWALK_CACHED 1
#else
#define MLC_STACKWALK_CACHED 0
#endif

#if MLC_STACKWALK_CACHED
/* Maps the rule table; false when the kernel refuses the memory (then every walk says
   -1).  Once, before the first walk.  Never allocates through malloc. */
bool mlc_stackwalk_boot(void);

/* The calling function's stack, innermost first (the caller of mlc_stackwalk_take is
   the first frame, as for _Unwind_Backtrace's first callback): the frames whose return
   address lies in [skip_lo, skip_hi) are left off the top; up to max return addresses
   in out.  -1 when a frame needs libgcc's unwinder.  Never allocates; takes the
   loader's lock for a moment (dl_iterate_phdr: an object unloaded since the last walk
   makes the rules learnt so far stale). */
MLC_NOINLINE int mlc_stackwalk_take(uintptr_t *out, unsigned max, uintptr_t skip_lo, uintptr_t skip_hi);
#endif

#endif /* MLC_STACKWALK_H */
