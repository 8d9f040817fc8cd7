/* SPDX-License-Identifier: MIT */
/*
 * The metadata allocator: zeroed, cache-line aligned memory for melloc's own structures
 * (thread caches, page-map leaves, huge descriptors), carved from mappings of its own.
 * Internal structures never come from malloc.  Memory is never returned; the owners of
 * recyclable structures keep their own free lists.
 */
#ifndef MLC_BASE_H
#define MLC_BASE_H

#include "internal.h"

/* Any thread.  NULL when the kernel refuses memory. */
void *mlc_base_alloc(size_t size);
/* Bytes mapped for metadata. */
size_t mlc_base_mapped(void);

void mlc_base_prefork(void);
void mlc_base_postfork_parent(void);
void mlc_base_postfork_child(void);

#endif /* MLC_BASE_H */
