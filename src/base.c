/* SPDX-License-Identifier: MIT */
/*
 * The metadata allocator: a bump pointer over 1 MiB mappings (or a mapping of its own
 * for a large request), under one lock.  It must never call malloc.
 */
#include "internal.h"

#include "base.h"
#include "mutex.h"
#include "os.h"

#define MLC_BASE_BLOCK ((size_t)1 << 20)

static mlc_mutex_t mlc_base_lock = MLC_MUTEX_INITIALIZER(MLC_RANK_BASE);
static char *mlc_base_cur; /* Protected by mlc_base_lock */
static char *mlc_base_end; /* Protected by mlc_base_lock */
static size_t mlc_base_total; /* Protected by mlc_base_lock */

void *mlc_base_alloc(size_t size) {
  size = MLC_ALIGN_UP(size, 64);
  if (size >= MLC_BASE_BLOCK / 4) {
    size_t sz = MLC_ALIGN_UP(size, mlc_os_map_unit()); /* what is mapped */
    void *p = mlc_os_map(sz, MLC_PAGE);
    if (p) {
      mlc_mutex_lock(&mlc_base_lock);
      mlc_base_total += sz;
      mlc_mutex_unlock(&mlc_base_lock);
    }
    return p;
  }
  mlc_mutex_lock(&mlc_base_lock);
  if ((size_t)(mlc_base_end - mlc_base_cur) < size) {
    char *block = mlc_os_map(MLC_BASE_BLOCK, MLC_PAGE);
    if (!block) {
      mlc_mutex_unlock(&mlc_base_lock);
      return NULL;
    }
    mlc_base_cur = block;
    mlc_base_end = block + MLC_BASE_BLOCK;
    mlc_base_total += MLC_BASE_BLOCK;
  }
  void *p = mlc_base_cur;
  mlc_base_cur += size;
  mlc_mutex_unlock(&mlc_base_lock);
  return p;
}

size_t mlc_base_mapped(void) {
  mlc_mutex_lock(&mlc_base_lock);
  size_t t = mlc_base_total;
  mlc_mutex_unlock(&mlc_base_lock);
  return t;
}

void mlc_base_prefork(void) { mlc_mutex_lock(&mlc_base_lock); }
void mlc_base_postfork_parent(void) { mlc_mutex_unlock(&mlc_base_lock); }
void mlc_base_postfork_child(void) { mlc_mutex_reset(&mlc_base_lock); }
