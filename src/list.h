/* SPDX-License-Identifier: MIT */
/*
 * The one doubly-linked list: intrusive, NULL-terminated, reached through a head
 * pointer, with the element's own next and prev fields.  MLC_LIST_DEFINE(name, type)
 * writes mlc_list_<name>_push and mlc_list_<name>_remove for a struct type with
 * fields `type *next, *prev`; the element types differ (slabs, chunks, caches), the
 * code does not.  No locking here: each list's owner says which lock protects it.
 */
#ifndef MLC_LIST_H
#define MLC_LIST_H

#include "internal.h"

/* push: e becomes the first element of *head.  insert_after: e follows at, an element
   of the list.  remove: e, an element of *head, leaves it, with its next and prev
   cleared (so `e->next || e->prev` tells whether an element is on a list of more than
   one).  The caller holds the list's lock.  (insert_after is marked unused: clang
   reports a macro-made inline function that a file does not call.) */
#define MLC_LIST_DEFINE(name, type)                                                           \
  MLC_INLINE void mlc_list_##name##_push(type **head, type *e) {                              \
    e->prev = NULL;                                                                           \
    e->next = *head;                                                                          \
    if (*head) (*head)->prev = e;                                                             \
    *head = e;                                                                                \
  }                                                                                           \
  __attribute__((unused)) MLC_INLINE void mlc_list_##name##_insert_after(type *at, type *e) { \
    e->prev = at;                                                                             \
    e->next = at->next;                                                                       \
    if (at->next) at->next->prev = e;                                                         \
    at->next = e;                                                                             \
  }                                                                                           \
  MLC_INLINE void mlc_list_##name##_remove(type **head, type *e) {                            \
    if (e->prev)                                                                              \
      e->prev->next = e->next;                                                                \
    else                                                                                      \
      *head = e->next;                                                                        \
    if (e->next) e->next->prev = e->prev;                                                     \
    e->next = e->prev = NULL;                                                                 \
  }

#endif /* MLC_LIST_H */
