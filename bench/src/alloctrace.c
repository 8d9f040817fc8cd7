/* SPDX-License-Identifier: MIT */
/* alloctrace.so: records a program's allocator calls, for bench/bin/replay.

     LD_PRELOAD=bench/bin/alloctrace.so ALLOCTRACE=/tmp/git program args...

   writes /tmp/git.PID for each process (fork children and exec'd programs each get
   their own file; ALLOCTRACE's default is "alloctrace" in the current directory).
   It sits between the program and the allocator below it (glibc's malloc, or one
   preloaded after it) and records, in the order the allocator saw them, every
   malloc, calloc, realloc, reallocarray, free, posix_memalign, aligned_alloc,
   memalign, valloc and pvalloc with the calling thread, the block and its size.  One
   lock around each call and its record keeps that order exact (a block freed by one
   thread and handed out again to another is recorded free first); it also makes the
   traced program slower, and its threads take turns in the allocator, which the
   trace does not care about.

   Each record is struct alloctrace_rec (replay.c reads the same layout): 32 bytes in
   the machine's byte order, written in 64 KiB pieces and at exit.  Records of a thread
   still running when the process exits after the last write are lost (the replay
   reports blocks freed without a recorded allocation, and skips those frees).  Calls
   made by glibc's own functions inside libc (strdup's malloc is the program's, but
   e.g. fopen's is glibc's) are recorded like any other: they go through the same
   symbols. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloctrace.h"

static void *(*next_malloc)(size_t);
static void (*next_free)(void *);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);
static void *(*next_memalign)(size_t, size_t);
static void *(*next_valloc)(size_t);
static void *(*next_pvalloc)(size_t);

/* dlsym() may allocate before the real functions are known: from here, never freed
   (free() ignores these blocks). */
static _Alignas(64) char boot_heap[64 << 10];
static size_t boot_used;
static int resolving;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct alloctrace_rec buf[2048]; /* Protected by lock */
static size_t nbuf;                     /* Protected by lock */
static int fd = -1;                     /* Protected by lock */
static uint32_t nthreads;               /* Protected by lock */
/* Initial-exec: a preloaded library's TLS is static, and no access may call malloc. */
#define TLS __thread __attribute__((tls_model("initial-exec")))
static TLS uint32_t thread_id; /* 1 + index; 0: none yet */
static int finished; /* Protected by lock: past the destructor, every record is written at once */
/* Set while this thread is inside the allocator below: a call it makes back into these
   functions (melloc's pthread_create for its collector, which callocs) goes straight
   through, unrecorded, and does not take the lock again. */
static TLS int inside;
/* A key whose destructor records the thread's end (threads that made a call only). */
static pthread_key_t exit_key;
static int exit_key_ok;

static void resolve(void) {
  resolving = 1;
  next_malloc = dlsym(RTLD_NEXT, "malloc");
  next_free = dlsym(RTLD_NEXT, "free");
  next_calloc = dlsym(RTLD_NEXT, "calloc");
  next_realloc = dlsym(RTLD_NEXT, "realloc");
  next_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
  next_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
  next_memalign = dlsym(RTLD_NEXT, "memalign");
  next_valloc = dlsym(RTLD_NEXT, "valloc");
  next_pvalloc = dlsym(RTLD_NEXT, "pvalloc");
  resolving = 0;
  if (!next_malloc || !next_free || !next_calloc || !next_realloc) {
    static const char msg[] = "alloctrace: the allocator below has no malloc\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(127);
    _exit(127);
  }
}

static void *boot_alloc(size_t n) {
  size_t at = (boot_used + 63) & ~(size_t)63;
  if (n > sizeof boot_heap - at) return NULL;
  boot_used = at + n;
  return boot_heap + at; /* static storage: already zero */
}

static int is_boot(const void *p) {
  return (const char *)p >= boot_heap && (const char *)p < boot_heap + sizeof boot_heap;
}

/* Caller holds lock. */
static void flush_locked(void) {
  if (nbuf == 0) return;
  if (fd < 0) {
    const char *base = getenv("ALLOCTRACE");
    char path[4096];
    snprintf(path, sizeof path, "%s.%ld", base && *base ? base : "alloctrace", (long)getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  const char *p = (const char *)buf;
  size_t left = nbuf * sizeof buf[0];
  while (fd >= 0 && left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    p += w;
    left -= (size_t)w;
  }
  nbuf = 0;
}

/* Caller holds lock.  Keeps errno: the program sees the allocator's. */
static void record_locked(int op, const void *p, size_t size, uint64_t aux) {
  int saved = errno;
  if (thread_id == 0) {
    thread_id = ++nthreads;
    /* pthread_setspecific may allocate (a key past glibc's first 32): that call goes
       through, unrecorded (inside is set). */
    if (exit_key_ok) pthread_setspecific(exit_key, &thread_id);
  }
  struct alloctrace_rec *r = &buf[nbuf++];
  r->op = (uint8_t)op;
  memset(r->pad, 0, sizeof r->pad);
  r->thread = thread_id - 1;
  r->ptr = (uint64_t)(uintptr_t)p;
  r->size = size;
  r->aux = aux;
  if (nbuf == sizeof buf / sizeof buf[0] || finished) flush_locked();
  errno = saved;
}

static void enter(void) {
  pthread_mutex_lock(&lock);
  inside = 1;
}

static void leave(void) {
  inside = 0;
  pthread_mutex_unlock(&lock);
}

void *malloc(size_t n) {
  if (!next_malloc) {
    if (resolving) return boot_alloc(n);
    resolve();
  }
  if (inside) return next_malloc(n);
  enter();
  void *p = next_malloc(n);
  if (p) record_locked(ALLOCTRACE_MALLOC, p, n, 0);
  leave();
  return p;
}

void *calloc(size_t k, size_t n) {
  if (!next_calloc) {
    if (resolving) return k && n > SIZE_MAX / k ? NULL : boot_alloc(k * n);
    resolve();
  }
  if (inside) return next_calloc(k, n);
  enter();
  void *p = next_calloc(k, n);
  if (p) record_locked(ALLOCTRACE_CALLOC, p, k * n, 0);
  leave();
  return p;
}

void free(void *p) {
  if (!p || is_boot(p)) return;
  if (!next_free) resolve();
  if (inside) {
    next_free(p);
    return;
  }
  enter();
  record_locked(ALLOCTRACE_FREE, p, 0, 0);
  next_free(p);
  leave();
}

void *realloc(void *old, size_t n) {
  if (!next_realloc) resolve();
  if (is_boot(old)) { /* a boot block moves to the real heap; the trace sees a malloc */
    void *p = malloc(n);
    size_t room = sizeof boot_heap - (size_t)((char *)old - boot_heap);
    if (p) memcpy(p, old, n < room ? n : room);
    return p;
  }
  if (inside) return next_realloc(old, n);
  enter();
  void *p = next_realloc(old, n);
  /* realloc(p, 0) frees p and may return NULL (glibc): recorded as is. */
  if (p || (old && n == 0)) record_locked(ALLOCTRACE_REALLOC, p, n, (uint64_t)(uintptr_t)old);
  leave();
  return p;
}

void *reallocarray(void *old, size_t k, size_t n) {
  if (k && n > SIZE_MAX / k) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(old, k * n);
}

static void *aligned(size_t align, size_t n, void *(*fn)(size_t, size_t)) {
  if (!next_malloc) resolve();
  if (!fn) {
    errno = ENOMEM;
    return NULL;
  }
  if (inside) return fn(align, n);
  enter();
  void *p = fn(align, n);
  if (p) record_locked(ALLOCTRACE_MEMALIGN, p, n, align);
  leave();
  return p;
}

void *aligned_alloc(size_t align, size_t n) { return aligned(align, n, next_aligned_alloc); }
void *memalign(size_t align, size_t n) { return aligned(align, n, next_memalign); }

int posix_memalign(void **out, size_t align, size_t n) {
  if (!next_malloc) resolve();
  if (!next_posix_memalign) return ENOMEM;
  if (inside) return next_posix_memalign(out, align, n);
  enter();
  int e = next_posix_memalign(out, align, n);
  if (e == 0) record_locked(ALLOCTRACE_MEMALIGN, *out, n, align);
  leave();
  return e;
}

static void *page_aligned(int round, size_t n, void *(*fn)(size_t)) {
  if (!next_malloc) resolve();
  if (!fn) {
    errno = ENOMEM;
    return NULL;
  }
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (inside) return fn(n);
  enter();
  void *p = fn(n);
  if (p) record_locked(ALLOCTRACE_MEMALIGN, p, round ? (n + page - 1) / page * page : n, page);
  leave();
  return p;
}

void *valloc(size_t n) { return page_aligned(0, n, next_valloc); }
void *pvalloc(size_t n) { return page_aligned(1, n, next_pvalloc); }

static void thread_end(void *arg) {
  (void)arg;
  enter();
  record_locked(ALLOCTRACE_EXIT, NULL, 0, 0);
  leave();
}

/* fork: the child starts a file of its own, without the parent's records: it drops
   what it inherited (records the parent writes itself, a lock another thread held).
   No prepare handler takes the lock: the allocator below may hold its own locks in its
   prepare handler while a thread inside it holds ours. */
static void after_fork_child(void) {
  if (fd >= 0) close(fd);
  fd = -1;
  nbuf = 0;
  nthreads = 0; /* the child's threads are numbered from 0 again */
  thread_id = 0;
  pthread_mutex_init(&lock, NULL);
}

__attribute__((constructor)) static void start(void) {
  if (!next_malloc) resolve();
  pthread_atfork(NULL, NULL, after_fork_child);
  exit_key_ok = pthread_key_create(&exit_key, thread_end) == 0;
}

__attribute__((destructor)) static void finish(void) {
  pthread_mutex_lock(&lock);
  flush_locked();
  finished = 1;
  pthread_mutex_unlock(&lock);
}
