/* SPDX-License-Identifier: MIT */
/*
 * The OS layer: mmap, munmap, madvise, mremap, futex, membarrier, clocks, files and
 * threads.  Nothing else in melloc makes a system call (except through these
 * functions); nothing here allocates.
 */
#include "internal.h"

#include "os.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

static long mlc_os_fail_countdown = -1; /* Atomic */

void mlc_os_fail_after(long n) { __atomic_store_n(&mlc_os_fail_countdown, n, __ATOMIC_SEQ_CST); }

static bool mlc_os_injected_failure(void) {
  long c = __atomic_load_n(&mlc_os_fail_countdown, __ATOMIC_RELAXED);
  if (MLC_LIKELY(c < 0)) return false;
  while (c > 0) {
    if (__atomic_compare_exchange_n(&mlc_os_fail_countdown, &c, c - 1, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED))
      return false;
    if (c < 0) return false;
  }
  return c == 0;
}

static void *mlc_os_map_prot(size_t size, size_t align, int prot, int extra_flags) {
  if (mlc_os_injected_failure()) return NULL;
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | extra_flags;
  if (align <= MLC_PAGE) {
    void *p = mmap(NULL, size, prot, flags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
  }
  /* Ask for an aligned spot first: where the previous mapping ended is often aligned. */
  size_t over = size + align - MLC_PAGE;
  if (over < size) return NULL;
  char *p = mmap(NULL, over, prot, flags, -1, 0);
  if (p == MAP_FAILED) return NULL;
  uintptr_t a = MLC_ALIGN_UP((uintptr_t)p, align);
  size_t lead = a - (uintptr_t)p;
  size_t trail = over - lead - size;
  if (lead) munmap(p, lead);
  if (trail) munmap((char *)a + size, trail);
  return (void *)a;
}

void *mlc_os_map(size_t size, size_t align) {
  return mlc_os_map_prot(size, align, PROT_READ | PROT_WRITE, 0);
}

void *mlc_os_reserve(size_t size, size_t align) {
  return mlc_os_map_prot(size, align, PROT_NONE, MAP_NORESERVE);
}

void mlc_os_unmap(void *addr, size_t size) {
  if (size) munmap(addr, size);
}

void mlc_os_purge(void *addr, size_t size) {
  if (size) madvise(addr, size, MADV_DONTNEED);
}

void mlc_os_nohuge(void *addr, size_t size) {
#ifdef MADV_NOHUGEPAGE
  madvise(addr, size, MADV_NOHUGEPAGE);
#endif
}

bool mlc_os_resize_in_place(void *addr, size_t old_size, size_t new_size) {
  if (new_size > old_size && mlc_os_injected_failure()) return false;
  void *r = mremap(addr, old_size, new_size, 0);
  return r == addr;
}

bool mlc_os_move(void *addr, size_t old_size, void *fixed, size_t new_size) {
  if (mlc_os_injected_failure()) return false;
  void *r = mremap(addr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, fixed);
  return r == fixed;
}

uint64_t mlc_os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

unsigned mlc_os_ncpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return (unsigned)n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

void mlc_os_futex_wait(int *word, int expected) {
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

/* The timeout goes to the kernel in the kernel's own layout, never as libc's struct
   timespec, whose time_t is 64 bits on a 32-bit target built with -D_TIME_BITS=64
   (Debian's time64 ABI): SYS_futex would read its seconds' two halves as seconds and
   nanoseconds, and a wait under a second would return at once.  32-bit ABIs have
   SYS_futex_time64 (Linux 5.1), which takes __kernel_timespec, two 64-bit fields;
   older kernels answer ENOSYS, and SYS_futex takes two __kernel_long_t (long; long
   long on x32).  errno is kept: application threads wait here too. */
void mlc_os_futex_wait_ns(int *word, int expected, uint64_t ns) {
  int saved = errno;
  /* 68 years: no caller waits that long, and every field below holds it. */
  uint64_t sec = MLC_MIN(ns / 1000000000u, (uint64_t)INT32_MAX);
  long nsec = (long)(ns % 1000000000u);
#ifdef SYS_futex_time64
  struct {
    int64_t tv_sec;
    int64_t tv_nsec;
  } ts64 = {(int64_t)sec, nsec};
  if (syscall(SYS_futex_time64, word, FUTEX_WAIT_PRIVATE, expected, &ts64, NULL, 0) == 0 ||
      errno != ENOSYS) {
    errno = saved;
    return;
  }
#endif
  struct {
    __kernel_long_t tv_sec;
    __kernel_long_t tv_nsec;
  } ts = {(__kernel_long_t)sec, nsec};
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, &ts, NULL, 0);
  errno = saved;
}

void mlc_os_futex_wake(int *word, int n) {
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

void mlc_os_write_fd(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;
    }
    buf += w;
    len -= (size_t)w;
  }
}

void mlc_os_write_stderr(const char *buf, size_t len) { mlc_os_write_fd(2, buf, len); }

int mlc_os_dup_cloexec(int fd, int min) { return fcntl(fd, F_DUPFD_CLOEXEC, min); }

void mlc_os_close(int fd) { close(fd); }

size_t mlc_os_rss_bytes(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char *p = buf;
  while (*p && *p != ' ') p++;
  size_t pages = 0;
  while (*p == ' ') p++;
  while (*p >= '0' && *p <= '9') pages = pages * 10 + (size_t)(*p++ - '0');
  return pages * (size_t)sysconf(_SC_PAGESIZE);
}

bool mlc_os_membarrier_register(void) {
  return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0;
}

void mlc_os_membarrier(void) { syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0); }

bool mlc_os_thread_spawn(void *(*fn)(void *), size_t stack_size, pthread_t *thread) {
  int saved = errno;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (stack_size) pthread_attr_setstacksize(&attr, stack_size);
  bool ok = pthread_create(thread, &attr, fn, NULL) == 0;
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = saved;
  return ok;
}

long mlc_os_gettid(void) { return syscall(SYS_gettid); }

void mlc_os_sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  nanosleep(&ts, NULL);
}

bool mlc_os_thread_gone(long tid) {
  return syscall(SYS_tgkill, (long)getpid(), tid, 0) != 0 && errno == ESRCH;
}

void mlc_os_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }

int mlc_os_unshare(int flags) { return (int)syscall(SYS_unshare, flags); }

int mlc_os_setns(int fd, int nstype) { return (int)syscall(SYS_setns, fd, nstype); }
