/* SPDX-License-Identifier: MIT */
/* replay: makes a recorded program's allocator calls again (alloctrace.so's trace, see
   alloctrace.c), so that one program's heap can be measured under every allocator in
   about a second, without the program, its input or its I/O.

     replay TRACE

   The calls are made in the recorded order, each by a thread of the replay standing
   for the thread that made it (created when that thread's first call comes; a thread
   makes its calls until the next one is another thread's, then wakes that one), with
   the recorded sizes and alignments.  Every block is written whole when it is
   allocated (a byte of its own), as most programs fill what they allocate, and
   checked when it is freed or reallocated: its first and last bytes, and for calloc
   that it read zero first.  A block that changed, or an aligned block that is not
   aligned, ends the replay with status 1 (a file that is not a trace, or a table the
   kernel refuses: status 2).  What the trace cannot say is not replayed:
   the program's own work between the calls, blocks allocated before the recorder was
   loaded (their frees are skipped and counted).  A thread's end is replayed (its
   replay thread returns there, and the allocator sees a thread exit) where the
   recorder saw it: threads that end with pthread_exit or by returning, not the main
   thread or threads still running at exit.

   The trace is read as it is replayed, and the replay's one table (the recorded
   address of each live block, its block and size: 24 bytes an entry, at most 3/4
   full) is mapped with mmap, not allocated: the same under every allocator, counted in
   the peak RSS, and printed (own_mib, at its largest).  Output: one line of key=value
   pairs, live_peak_bytes among them (the blocks' peak and that table: bench/run.py
   divides the peak RSS by it).  The wall time of a replay of several threads is mostly
   their handoffs (a futex wait and wake each, 16000 for a 3-thread trace of 380000
   calls), not the allocator's work: a replay measures memory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloctrace.h"

#define MAX_THREADS 65536 /* thread indexes: threads that end free none */

static void die(const char *msg) {
  fprintf(stderr, "replay: %s\n", msg);
  exit(2);
}

static void *map(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("out of memory for the replay's table");
  return p;
}

/* ---- The live blocks, by recorded address ---- */

struct entry {
  uint64_t addr; /* recorded address; 0: empty */
  unsigned char *p;
  uint64_t size;
};
static struct entry *table;
static size_t table_cap, table_used, own_peak;

static size_t hash(uint64_t a) { return (size_t)((a >> 4) * 0x9e3779b97f4a7c15ull >> 17); }

static struct entry *find(uint64_t a) {
  size_t mask = table_cap - 1;
  for (size_t i = hash(a) & mask;; i = (i + 1) & mask)
    if (table[i].addr == a || table[i].addr == 0) return &table[i];
}

static void grow_table(void) {
  struct entry *old = table;
  size_t old_cap = table_cap;
  table_cap = old_cap ? old_cap * 2 : (size_t)1 << 14;
  table = map(table_cap * sizeof *table);
  for (size_t i = 0; i < old_cap; i++)
    if (old[i].addr) *find(old[i].addr) = old[i];
  if (old) munmap(old, old_cap * sizeof *old);
  if (table_cap * sizeof *table > own_peak) own_peak = table_cap * sizeof *table;
}

/* Removes e, keeping every other entry findable (linear probing's backward shift). */
static void erase(struct entry *e) {
  size_t mask = table_cap - 1, i = (size_t)(e - table), j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (table[j].addr == 0) break;
    size_t k = hash(table[j].addr) & mask;
    if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) continue; /* j is reachable as it is */
    table[i] = table[j];
    i = j;
  }
  table[i].addr = 0;
  table_used--;
}

/* ---- Reading the trace ---- */

static int trace_fd;
static struct alloctrace_rec chunk[8192];
static size_t chunk_len, chunk_pos;
static uint64_t calls, skipped, blocks, live, peak_live;

/* The next record, or NULL at the end. */
static const struct alloctrace_rec *next_record(void) {
  if (chunk_pos == chunk_len) {
    size_t got = 0;
    for (;;) {
      ssize_t r = read(trace_fd, (char *)chunk + got, sizeof chunk - got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) die("cannot read the trace");
      if (r == 0) break;
      got += (size_t)r;
      if (got == sizeof chunk) break;
    }
    if (got % sizeof chunk[0]) die("not a trace (its size is not a multiple of 32)");
    chunk_len = got / sizeof chunk[0];
    chunk_pos = 0;
    if (chunk_len == 0) return NULL;
  }
  const struct alloctrace_rec *r = &chunk[chunk_pos];
  if (r->thread >= MAX_THREADS) die("not a trace (a thread index past 65535)");
  if (r->op < ALLOCTRACE_MALLOC || r->op > ALLOCTRACE_EXIT)
    die("not a trace (an unknown operation)");
  return r;
}

/* ---- Replaying ---- */

static unsigned char pattern(uint64_t addr) { return (unsigned char)((addr >> 4) * 131u + 7u); }

static void fail(const struct alloctrace_rec *r, const char *what) {
  fprintf(stderr, "replay: call %llu (thread %u, block recorded at %#llx): %s\n",
          (unsigned long long)calls, r->thread, (unsigned long long)r->ptr, what);
  exit(1);
}

/* Whether e's block still holds its pattern at both ends. */
static int intact(const struct entry *e) {
  return e->size == 0 || (e->p[0] == pattern(e->addr) && e->p[e->size - 1] == pattern(e->addr));
}

/* The entry of a live block recorded at addr, or NULL (a block the trace did not see
   allocated). */
static struct entry *live_block(uint64_t addr) {
  struct entry *e = addr && table ? find(addr) : NULL;
  return e && e->addr ? e : NULL;
}

static void made(const struct alloctrace_rec *r, unsigned char *p) {
  if (!p && r->size > 0) fail(r, "the allocator returned NULL");
  if (r->op == ALLOCTRACE_MEMALIGN && ((uintptr_t)p & (r->aux - 1)))
    fail(r, "block not aligned as asked");
  if (r->op == ALLOCTRACE_CALLOC)
    for (uint64_t k = 0; k < r->size; k += k < 64 || r->size - k <= 64 ? 1 : 4096)
      if (p[k]) fail(r, "calloc'ed block not zero");
  if ((table_used + 1) * 4 > table_cap * 3) grow_table();
  struct entry *e = find(r->ptr);
  if (e->addr) { /* its free was not recorded: that block is left as it is */
    live -= e->size;
  } else
    table_used++;
  *e = (struct entry){r->ptr, p, r->size};
  if (r->size) memset(p, pattern(r->ptr), r->size);
  blocks++;
  live += r->size;
  if (live > peak_live) peak_live = live;
}

static void step(const struct alloctrace_rec *r) {
  switch (r->op) {
    case ALLOCTRACE_MALLOC:
      made(r, malloc(r->size));
      break;
    case ALLOCTRACE_CALLOC:
      made(r, calloc(1, r->size));
      break;
    case ALLOCTRACE_MEMALIGN: {
      void *p = NULL;
      if (r->aux == 0 || (r->aux & (r->aux - 1)))
        die("not a trace (an alignment not a power of two)");
      size_t a = r->aux < sizeof(void *) ? sizeof(void *) : (size_t)r->aux;
      if (posix_memalign(&p, a, r->size) != 0) p = NULL;
      made(r, p);
      break;
    }
    case ALLOCTRACE_FREE: {
      struct entry *e = live_block(r->ptr);
      if (!e) {
        skipped++;
        break;
      }
      if (!intact(e)) fail(r, "block changed before its free");
      live -= e->size;
      free(e->p);
      erase(e);
      break;
    }
    case ALLOCTRACE_REALLOC: {
      struct entry *e = live_block(r->aux);
      unsigned char *old = NULL;
      uint64_t keep = 0;
      unsigned char pat = 0;
      if (r->aux && !e) skipped++; /* replayed as a malloc */
      if (e) {
        if (!intact(e)) fail(r, "block changed before its realloc");
        old = e->p;
        keep = e->size < r->size ? e->size : r->size;
        pat = pattern(e->addr);
        live -= e->size;
        erase(e);
      }
      if (r->ptr == 0) { /* realloc(p, 0) that freed p */
        free(old);
        break;
      }
      unsigned char *p = realloc(old, r->size);
      if (keep && p && (p[0] != pat || p[keep - 1] != pat))
        fail(r, "realloc did not keep the block's contents");
      made(r, p);
      break;
    }
  }
}

/* Whose turn it is: each thread sleeps on its own semaphore until the thread before
   it reaches a call of its, and posts it.  Everything below is used by the thread
   whose turn it is only. */
static sem_t *turns;
static pthread_t *tids;
static unsigned char *started;
static unsigned nthreads;
static int done;
static sem_t finished;

static void *worker(void *arg);

/* Hands the turn to thread t, creating it at its first call. */
static void hand_to(unsigned t) {
  if (!started[t]) {
    started[t] = 1;
    sem_init(&turns[t], 0, 0);
    nthreads++;
    if (pthread_create(&tids[t], NULL, worker, (void *)(uintptr_t)t) != 0) die("pthread_create");
  }
  sem_post(&turns[t]);
}

static void *worker(void *arg) {
  unsigned me = (unsigned)(uintptr_t)arg;
  for (;;) {
    while (sem_wait(&turns[me]) != 0) continue; /* EINTR */
    if (done) return NULL;
    const struct alloctrace_rec *r;
    int end = 0;
    while (!end && (r = next_record()) && r->thread == me) {
      end = r->op == ALLOCTRACE_EXIT;
      if (!end) {
        calls++;
        step(r);
      }
      chunk_pos++;
    }
    if (end) r = next_record();
    if (r) {
      hand_to(r->thread);
      if (end) return NULL; /* the thread it stands for ended here */
      continue;
    }
    done = 1;
    for (unsigned t = 0; t < MAX_THREADS; t++)
      if (started[t] && t != me) sem_post(&turns[t]);
    sem_post(&finished);
    return NULL;
  }
}

int main(int argc, char **argv) {
  if (argc != 2) die("usage: replay TRACE (recorded with alloctrace.so: see bench/README.md)");
  trace_fd = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (trace_fd < 0) die("cannot open the trace");
  const struct alloctrace_rec *first = next_record();
  if (!first) die("the trace has no calls");
  turns = map(MAX_THREADS * sizeof *turns);
  tids = map(MAX_THREADS * sizeof *tids);
  started = map(MAX_THREADS);
  sem_init(&finished, 0, 0);
  hand_to(first->thread);
  /* The thread that replays the last call wakes the others, then this one: no thread
     is created after that. */
  while (sem_wait(&finished) != 0) continue;
  for (unsigned t = 0; t < MAX_THREADS; t++)
    if (started[t]) pthread_join(tids[t], NULL);
  close(trace_fd);
  uint64_t sum = 0, left = 0;
  for (size_t i = 0; i < table_cap; i++)
    if (table[i].addr) {
      struct alloctrace_rec end = {.thread = 0, .ptr = table[i].addr};
      if (!intact(&table[i])) fail(&end, "a block still allocated at the end changed");
      sum += table[i].size ? table[i].p[0] : 0;
      left++;
    }
  printf("calls=%llu threads=%u blocks=%llu peak_live_mib=%.1f own_mib=%.1f live_peak_bytes=%llu "
         "left=%llu "
         "skipped_frees=%llu checksum=%llu\n",
         (unsigned long long)calls, nthreads, (unsigned long long)blocks, peak_live / 1048576.0,
         own_peak / 1048576.0, (unsigned long long)(peak_live + own_peak), (unsigned long long)left,
         (unsigned long long)skipped, (unsigned long long)sum);
  return 0;
}
