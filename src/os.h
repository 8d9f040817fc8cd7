/* SPDX-License-Identifier: MIT */
/*
 * The OS layer: the only module that makes system calls.  Every function returns a
 * clear failure (NULL, false or an errno value), never allocates, and leaves errno as
 * the program had it unless it says otherwise.  It reads the kernel's page size (4, 16
 * or 64 KiB) and is the only module that needs it: melloc's own unit stays MLC_PAGE,
 * and whatever reaches the kernel (mapping lengths, trims, purges) is rounded to whole
 * kernel pages here or by mlc_os_purge_unit()'s callers.  What the kernel refuses
 * (madvise, membarrier, mremap under seccomp, gVisor, an old kernel) is counted; tests
 * make mapping calls fail (mlc_os_fail_after) or the kernel refuse (mlc_os_refuse).
 */
#ifndef MLC_OS_H
#define MLC_OS_H

#include "internal.h"

#include <pthread.h>

/* A thread glibc does not know of (mlc_os_bare_spawn): its thread-pointer layout is
   glibc's on x86-64, arm64, ppc64 and s390x (ppc64el only: big-endian ppc64 is not
   tested); a sanitizer's runtime would not know the thread either. */
#if (defined(__x86_64__) || defined(__aarch64__) ||                                   \
     (defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)) || defined(__s390x__)) && \
    defined(__LP64__) && defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) &&      \
    !defined(__SANITIZE_THREAD__)
#define MLC_BARE_THREAD 1
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#undef MLC_BARE_THREAD
#endif
#endif
#endif
#ifndef MLC_BARE_THREAD
#define MLC_BARE_THREAD 0
#endif

/* The kernel's page size (getauxval(AT_PAGESZ), else sysconf), read once.  Any thread. */
size_t mlc_os_page_size(void);
/* The unit a mapping's length is rounded to: the kernel's page, at least MLC_PAGE. */
size_t mlc_os_map_unit(void);
/* The bytes that a purge gives back at least, a multiple of MLC_PAGE: the kernel's page
   size where it is a power of two up to MLC_GRANULE (4, 16, 64 KiB), else 0 and chunks
   purge nothing (the pages stay resident, counted dirty: correct, only not given back). */
size_t mlc_os_purge_unit(void);
/* Tests: behave as if the kernel's pages were size bytes (a power of two larger than
   the real size; anything else is ignored).  Whole larger pages are whole real pages,
   so every call stays valid. */
void mlc_os_page_pretend(size_t size);

/* Maps size bytes (rounded up to whole kernel pages) of zeroed read-write memory aligned
   to align (a power of two).  NULL when the kernel refuses. */
void *mlc_os_map(size_t size, size_t align);
/* Reserves address space without memory behind it (PROT_NONE). */
void *mlc_os_reserve(size_t size, size_t align);
void mlc_os_unmap(void *addr, size_t size);
/* Makes [addr, addr + size) (whole kernel pages) inaccessible: a guard.  false when the
   kernel refuses (the mapping count limit). */
bool mlc_os_protect_none(void *addr, size_t size);
/* Makes [addr, addr + size) (whole kernel pages) readable and writable again. */
bool mlc_os_protect_rw(void *addr, size_t size);
/* Fills buf with len bytes from the kernel's random source (getrandom, without
   blocking), else from AT_RANDOM mixed with the clock; never allocates. */
void mlc_os_random(void *buf, size_t len);
/* Gives the pages back to the kernel (addr and size whole kernel pages): true when
   done, and they read as zero afterwards.  When the kernel refuses madvise it maps
   fresh pages over the range instead; false when that fails too, and then the pages
   keep their contents (the caller must count them dirty). */
bool mlc_os_purge(void *addr, size_t size);
/* Asks the kernel not to back the range with transparent huge pages. */
void mlc_os_nohuge(void *addr, size_t size);
/* Grows (mremap) or shrinks (munmap of the tail) a mapping in place, sizes rounded up
   to whole kernel pages; true on success. */
bool mlc_os_resize_in_place(void *addr, size_t old_size, size_t new_size);
/* Moves a mapping's pages to fixed (a reservation of new_size bytes); true on success. */
bool mlc_os_move(void *addr, size_t old_size, void *fixed, size_t new_size);

uint64_t mlc_os_now_ns(void);
/* CLOCK_MONOTONIC to the kernel's tick (a few ms), in nanoseconds: a read of the vDSO's
   data without the time counter (~4x cheaper here), for checks that ask whether an
   interval has passed on paths that run often.  The same clock as mlc_os_now_ns. */
uint64_t mlc_os_coarse_now_ns(void);
/* The wall clock (CLOCK_REALTIME), in nanoseconds since 1970. */
uint64_t mlc_os_realtime_ns(void);
/* CPUs this process may run on (sched_getaffinity), at least 1. */
unsigned mlc_os_ncpus(void);
/* Waits while *word == expected (or until woken, or interrupted).  Keeps errno. */
void mlc_os_futex_wait(int *word, int expected);
/* Wakes up to n waiters on word.  Keeps errno. */
void mlc_os_futex_wake(int *word, int n);
/* Waits while *word == expected, at most ns nanoseconds (less when woken or
   interrupted).  Keeps errno. */
void mlc_os_futex_wait_ns(int *word, int expected, uint64_t ns);
/* Writes all of buf to fd, again after EINTR; gives up on another error. */
void mlc_os_write_fd(int fd, const char *buf, size_t len);
void mlc_os_write_stderr(const char *buf, size_t len);
/* fcntl(F_DUPFD_CLOEXEC): a close-on-exec duplicate of fd numbered min or above, or -1. */
int mlc_os_dup_cloexec(int fd, int min);
void mlc_os_close(int fd);
/* Creates (or truncates) path for writing, mode 0644, close-on-exec: 0 and *fd, or an
   errno value (and *fd -1).  Keeps errno. */
int mlc_os_create_file(const char *path, int *fd);
/* Writes all of buf to fd, again after EINTR: 0 or the errno value of the failure.
   Keeps errno. */
int mlc_os_write_all(int fd, const void *buf, size_t len);
/* close(fd): 0 or its errno value (a delayed write error).  Keeps errno. */
int mlc_os_close_checked(int fd);
/* The process's id, from the kernel (right in a fork child, whatever libc caches). */
long mlc_os_getpid(void);
/* The path of the running executable (/proc/self/exe), NUL-terminated in buf; its
   length, 0 when unknown. */
size_t mlc_os_self_exe(char *buf, size_t size);
/* The process's resident memory (/proc/self/statm), or 0 when it cannot be read. */
size_t mlc_os_rss_bytes(void);
/* membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED): true when the kernel accepts,
   and then mlc_os_membarrier() makes every running thread of the process execute a full
   barrier. */
bool mlc_os_membarrier_register(void);
/* false when the kernel refused (then no barrier happened). */
bool mlc_os_membarrier(void);
/* Starts fn(NULL) on a detached thread with a stack of stack_size bytes (0: the default
   that pthread_create gives the program's threads) and every
   signal blocked (so that the program's handlers run on the program's threads).  true
   on success, with *thread set.  Keeps errno. */
bool mlc_os_thread_spawn(void *(*fn)(void *), size_t stack_size, pthread_t *thread);
long mlc_os_gettid(void);
void mlc_os_sleep_ns(uint64_t ns);
/* True once thread tid of this process no longer exists for the kernel (it has been
   reaped, not only stopped running): a later check that the process is single-threaded
   counts it no more.  May set errno. */
bool mlc_os_thread_gone(long tid);
/* Names the calling thread (at most 15 characters), as /proc/self/task/TID/comm shows. */
void mlc_os_thread_name(const char *name);
/* Whether no thread of the process can ever change its credentials (gc.c: a bare thread
   would keep the old ones).  Keeps errno. */
bool mlc_os_creds_fixed(void);
/* Drops, from the calling thread, every capability the process's main thread does not
   have (one capget for a thread that has none).  Capabilities belong to each thread;
   glibc and the kernel change only the caller's.  Keeps errno. */
void mlc_os_caps_follow_main(void);
/* Starts fn(NULL) on a thread glibc does not know of, where MLC_BARE_THREAD (glibc on
   x86-64, arm64, ppc64 or s390x) allows it: a stack of its own and every signal blocked; thread-local
   storage of its own, zero-filled (not the variables' initial values), for every static
   TLS variable between the thread pointer and the furthest of errno and those in
   [tls_lo, tls_hi) (the variables its code uses), and 64 KiB beyond (a variable further
   off, or a dynamic one, faults).  It ends when fn returns.  true with *tid set; false
   where there is no such thread or the kernel refused it.  Called by one thread at a
   time (gc.c's STARTING state); waits for the previous bare thread to be gone.  Keeps
   errno. */
bool mlc_os_bare_spawn(int (*fn)(void *), const void *tls_lo, const void *tls_hi, long *tid);
/* In a fork child: no bare thread exists there. */
void mlc_os_bare_postfork_child(void);
/* A system call as glibc's syscall() makes it, for the calls melloc defines in glibc's
   place (unshare, setns, capset, prctl): its result, -1 and errno on failure. */
long mlc_os_syscall(long nr, unsigned long a1, unsigned long a2, unsigned long a3, unsigned long a4,
                    unsigned long a5);

/* Fault injection: after n more successful mapping calls, every mapping call fails with
   ENOMEM until reset with a negative n.  For tests only. */
void mlc_os_fail_after(long n);

/* What the kernel refused since start-up (never reset).  Any thread. */
typedef struct mlc_os_counts_s {
  uint64_t purge_refused;      /* madvise(MADV_DONTNEED) calls refused */
  uint64_t purge_failed;       /* purges not done at all (the fallback failed too) */
  uint64_t membarrier_refused; /* membarrier calls refused */
  uint64_t remap_refused;      /* mremap calls refused (not those short of room) */
} mlc_os_counts_t;
void mlc_os_counts(mlc_os_counts_t *out);

/* Tests: the calls in what (MLC_OS_REFUSE_* bits; 0 to stop) fail with EPERM without
   reaching the kernel, as under a seccomp filter. */
enum {
  MLC_OS_REFUSE_MADVISE = 1,    /* madvise(MADV_DONTNEED) */
  MLC_OS_REFUSE_MAP_FIXED = 2,  /* the purge's fallback, mmap(MAP_FIXED) */
  MLC_OS_REFUSE_MEMBARRIER = 4,
  MLC_OS_REFUSE_MREMAP = 8,
};
void mlc_os_refuse(unsigned what);

#endif /* MLC_OS_H */
