/* SPDX-License-Identifier: MIT */
/*
 * The OS layer: mmap, munmap, madvise, mremap, futex, membarrier, clocks, files and
 * threads.  Nothing else in melloc makes a system call (except through these
 * functions); nothing here allocates.
 */
#include "internal.h"

#include "os.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/auxv.h>
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

/* ---- Page size ---- */

static size_t mlc_os_page; /* Atomic: 0 until first read */

size_t mlc_os_page_size(void) {
  size_t pg = __atomic_load_n(&mlc_os_page, __ATOMIC_RELAXED);
  if (MLC_LIKELY(pg != 0)) return pg;
  int saved = errno;
  unsigned long v = getauxval(AT_PAGESZ);
  if (v == 0) {
    long sc = sysconf(_SC_PAGESIZE);
    v = sc > 0 ? (unsigned long)sc : MLC_PAGE;
  }
  errno = saved;
  pg = (size_t)v;
  __atomic_store_n(&mlc_os_page, pg, __ATOMIC_RELAXED);
  return pg;
}

void mlc_os_page_pretend(size_t size) {
  if (size > mlc_os_page_size() && (size & (size - 1)) == 0)
    __atomic_store_n(&mlc_os_page, size, __ATOMIC_RELAXED);
}

size_t mlc_os_map_unit(void) { return MLC_MAX(mlc_os_page_size(), MLC_PAGE); }

size_t mlc_os_purge_unit(void) {
  size_t pg = mlc_os_page_size();
  return (pg & (pg - 1)) == 0 && pg <= MLC_GRANULE ? mlc_os_map_unit() : 0;
}

/* ---- Refusals: what the kernel would not do, counted, and the test hook ---- */

static mlc_os_counts_t mlc_os_counted; /* Atomic fields */
static unsigned mlc_os_refusing;       /* Atomic: MLC_OS_REFUSE_* the test hook sets */

void mlc_os_refuse(unsigned what) { __atomic_store_n(&mlc_os_refusing, what, __ATOMIC_SEQ_CST); }

/* Whether the test hook refuses what: then errno is EPERM, as a seccomp filter sets it. */
static bool mlc_os_hook_refuses(unsigned what) {
  if (MLC_LIKELY(!(__atomic_load_n(&mlc_os_refusing, __ATOMIC_RELAXED) & what))) return false;
  errno = EPERM;
  return true;
}

/* errno of a call the kernel does not allow or does not have (seccomp, gVisor, an old
   kernel), as opposed to one that failed for want of memory or address space. */
static bool mlc_os_refusal(int err) { return err == EPERM || err == ENOSYS || err == EINVAL; }

static void mlc_os_count(uint64_t *counter) { __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); }

void mlc_os_counts(mlc_os_counts_t *out) {
  out->purge_refused = __atomic_load_n(&mlc_os_counted.purge_refused, __ATOMIC_RELAXED);
  out->purge_failed = __atomic_load_n(&mlc_os_counted.purge_failed, __ATOMIC_RELAXED);
  out->membarrier_refused = __atomic_load_n(&mlc_os_counted.membarrier_refused, __ATOMIC_RELAXED);
  out->remap_refused = __atomic_load_n(&mlc_os_counted.remap_refused, __ATOMIC_RELAXED);
}

/* ---- Mappings ---- */

static void *mlc_os_map_prot(size_t size, size_t align, int prot, int extra_flags) {
  if (mlc_os_injected_failure()) return NULL;
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | extra_flags;
  size_t pg = mlc_os_page_size();
  size = MLC_ALIGN_UP(size, pg);
  if (size == 0) return NULL;
  int saved = errno;
  if (align <= pg) {
    void *p = mmap(NULL, size, prot, flags, -1, 0);
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
  }
  /* Ask for an aligned spot first: where the previous mapping ended is often aligned.
     Every length here is whole kernel pages, so both trims start on a page. */
  size_t over = size + align - pg;
  if (over < size) return NULL;
  char *p = mmap(NULL, over, prot, flags, -1, 0);
  errno = saved;
  if (p == MAP_FAILED) return NULL;
  uintptr_t a = MLC_ALIGN_UP((uintptr_t)p, align);
  size_t lead = a - (uintptr_t)p;
  size_t trail = over - lead - size;
  if (lead) munmap(p, lead);
  if (trail) munmap((char *)a + size, trail);
  errno = saved;
  return (void *)a;
}

void *mlc_os_map(size_t size, size_t align) {
  return mlc_os_map_prot(size, align, PROT_READ | PROT_WRITE, 0);
}

void *mlc_os_reserve(size_t size, size_t align) {
  return mlc_os_map_prot(size, align, PROT_NONE, MAP_NORESERVE);
}

void mlc_os_unmap(void *addr, size_t size) {
  if (!size) return;
  int saved = errno;
  munmap(addr, size);
  errno = saved;
}

bool mlc_os_protect_none(void *addr, size_t size) {
  int saved = errno;
  bool ok = mprotect(addr, size, PROT_NONE) == 0;
  errno = saved;
  return ok;
}

bool mlc_os_protect_rw(void *addr, size_t size) {
  int saved = errno;
  bool ok = mprotect(addr, size, PROT_READ | PROT_WRITE) == 0;
  errno = saved;
  return ok;
}

void mlc_os_random(void *buf, size_t len) {
  int saved = errno;
  size_t got = 0;
  while (got < len) {
    long r = syscall(SYS_getrandom, (char *)buf + got, len - got, 0x1 /* GRND_NONBLOCK */);
    if (r <= 0) break;
    got += (size_t)r;
  }
  errno = saved;
  if (got == len) return;
  /* No getrandom (a kernel before 3.17, a seccomp filter): the 16 bytes the kernel put
     in the auxiliary vector, spread over the buffer with the clock. */
  const unsigned char *aux = (const unsigned char *)getauxval(AT_RANDOM);
  uint64_t x = mlc_os_now_ns() ^ (uintptr_t)buf;
  for (size_t i = 0; i < len; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    ((unsigned char *)buf)[i] ^= (unsigned char)((aux ? aux[i % 16] : 0) ^ (x >> 56));
  }
}

bool mlc_os_purge(void *addr, size_t size) {
  if (!size) return true;
  mlc_assert((((uintptr_t)addr | size) & (mlc_os_page_size() - 1)) == 0);
  int saved = errno;
  bool ok = !mlc_os_hook_refuses(MLC_OS_REFUSE_MADVISE) && madvise(addr, size, MADV_DONTNEED) == 0;
  if (!ok && mlc_os_refusal(errno)) {
    mlc_os_count(&mlc_os_counted.purge_refused);
    /* Fresh anonymous pages over the range drop the old ones as MADV_DONTNEED would (the
       mapping may lose MADV_NOHUGEPAGE there; the kernel merges it with its neighbours
       where it can). */
    void *p = mlc_os_hook_refuses(MLC_OS_REFUSE_MAP_FIXED)
                  ? MAP_FAILED
                  : mmap(addr, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    ok = p == addr;
  }
  if (!ok) mlc_os_count(&mlc_os_counted.purge_failed);
  errno = saved;
  return ok;
}

void mlc_os_nohuge(void *addr, size_t size) {
#ifdef MADV_NOHUGEPAGE
  int saved = errno;
  madvise(addr, size, MADV_NOHUGEPAGE);
  errno = saved;
#endif
}

bool mlc_os_resize_in_place(void *addr, size_t old_size, size_t new_size) {
  size_t pg = mlc_os_page_size();
  old_size = MLC_ALIGN_UP(old_size, pg);
  new_size = MLC_ALIGN_UP(new_size, pg);
  if (new_size == old_size) return true;
  int saved = errno;
  bool ok;
  if (new_size < old_size) {
    /* Giving the tail back needs no mremap, which a sandbox may refuse. */
    ok = munmap((char *)addr + new_size, old_size - new_size) == 0;
  } else if (mlc_os_injected_failure()) {
    ok = false;
  } else {
    void *r = mlc_os_hook_refuses(MLC_OS_REFUSE_MREMAP) ? MAP_FAILED
                                                         : mremap(addr, old_size, new_size, 0);
    ok = r == addr;
    if (r == MAP_FAILED && mlc_os_refusal(errno)) mlc_os_count(&mlc_os_counted.remap_refused);
#ifdef MAP_FIXED_NOREPLACE
    if (r == MAP_FAILED && errno == EFAULT) {
      /* The range is several kernel mappings (a huge block made of moved pages,
         chunk.c's gather), which mremap does not resize: new pages right after it, if
         nobody has that place.  A kernel before 4.17 takes the address as a hint. */
      char *want = (char *)addr + old_size;
      void *q = mmap(want, new_size - old_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
      ok = q == want;
      if (!ok && q != MAP_FAILED) munmap(q, new_size - old_size);
    }
#endif
  }
  errno = saved;
  return ok;
}

bool mlc_os_move(void *addr, size_t old_size, void *fixed, size_t new_size) {
  if (mlc_os_injected_failure()) return false;
  int saved = errno;
  void *r = mlc_os_hook_refuses(MLC_OS_REFUSE_MREMAP)
                ? MAP_FAILED
                : mremap(addr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, fixed);
  if (r == MAP_FAILED && mlc_os_refusal(errno)) mlc_os_count(&mlc_os_counted.remap_refused);
  if (r == MAP_FAILED && errno == EFAULT && new_size > old_size) {
    /* Several kernel mappings (see mlc_os_resize_in_place): Linux 6.17 and later move
       them unresized; the rest of the reservation gets pages of its own first. */
    char *rest = (char *)fixed + old_size;
    if (mmap(rest, new_size - old_size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == rest)
      r = mremap(addr, old_size, old_size, MREMAP_MAYMOVE | MREMAP_FIXED, fixed);
  }
  errno = saved;
  return r == fixed;
}

uint64_t mlc_os_realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t mlc_os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t mlc_os_coarse_now_ns(void) {
  struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
  int saved = errno; /* a kernel without it (before 2.6.32) says EINVAL */
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0) {
    errno = saved;
    return mlc_os_now_ns();
  }
#else
  clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The system call, not glibc's sched_getaffinity and CPU_COUNT: their code is in pages
   of libc that nothing else a small program runs touches, and the kernel maps 64 KiB of
   libc around each page first touched (fault-around): 64 KiB of every process's peak
   RSS (8 runs of a program with 64 blocks: 1624 -> 1560 KiB).  The kernel writes the
   mask's first bytes (its CPU count, rounded to a long) and returns how many. */
unsigned mlc_os_ncpus(void) {
  unsigned long set[sizeof(cpu_set_t) / sizeof(unsigned long)]; /* glibc's size: 1024 CPUs */
  int saved = errno;
  memset(set, 0, sizeof(set));
  long got = syscall(SYS_sched_getaffinity, 0, sizeof(set), set);
  long n = 0;
  for (long i = 0; got > 0 && i < got / (long)sizeof(set[0]); i++) n += __builtin_popcountl(set[i]);
  if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
  errno = saved;
  return n > 0 ? (unsigned)n : 1;
}

/* errno is kept here and in the wake: application threads wait and wake on every path
   (a contended lock, a cache the collector holds, the hardened quarantine's gate), and
   a wait whose word has already changed answers EAGAIN at once. */
void mlc_os_futex_wait(int *word, int expected) {
  int saved = errno;
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
  errno = saved;
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
  int saved = errno;
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
  errno = saved;
}

void mlc_os_write_fd(int fd, const char *buf, size_t len) {
  int saved = errno;
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      break;
    }
    buf += w;
    len -= (size_t)w;
  }
  errno = saved;
}

void mlc_os_write_stderr(const char *buf, size_t len) { mlc_os_write_fd(2, buf, len); }

int mlc_os_dup_cloexec(int fd, int min) {
  int saved = errno;
  int r = fcntl(fd, F_DUPFD_CLOEXEC, min);
  errno = saved;
  return r;
}

void mlc_os_close(int fd) {
  int saved = errno;
  close(fd);
  errno = saved;
}

int mlc_os_create_file(const char *path, int *fd) {
  int saved = errno;
  int f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = f < 0 ? errno : 0;
  errno = saved;
  *fd = f;
  return err;
}

int mlc_os_write_all(int fd, const void *buf, size_t len) {
  int saved = errno, err = 0;
  const char *b = buf;
  while (len > 0) {
    ssize_t w = write(fd, b, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      err = w < 0 ? errno : EIO;
      break;
    }
    b += w;
    len -= (size_t)w;
  }
  errno = saved;
  return err;
}

int mlc_os_close_checked(int fd) {
  int saved = errno;
  int err = close(fd) < 0 && errno != EINTR ? errno : 0;
  errno = saved;
  return err;
}

long mlc_os_getpid(void) { return syscall(SYS_getpid); }

size_t mlc_os_self_exe(char *buf, size_t size) {
  int saved = errno;
  ssize_t n = size ? readlink("/proc/self/exe", buf, size - 1) : -1;
  errno = saved;
  if (n <= 0) n = 0;
  if (size) buf[n] = '\0';
  return (size_t)n;
}

size_t mlc_os_rss_bytes(void) {
  char buf[128];
  int saved = errno;
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
  if (fd >= 0) close(fd);
  errno = saved;
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char *p = buf;
  while (*p && *p != ' ') p++;
  size_t pages = 0;
  while (*p == ' ') p++;
  while (*p >= '0' && *p <= '9') pages = pages * 10 + (size_t)(*p++ - '0');
  return pages * mlc_os_page_size();
}

/* One membarrier command; a refusal is counted.  Keeps errno. */
static bool mlc_os_membarrier_cmd(int cmd) {
  int saved = errno;
  bool ok = !mlc_os_hook_refuses(MLC_OS_REFUSE_MEMBARRIER) && syscall(SYS_membarrier, cmd, 0) == 0;
  if (!ok) mlc_os_count(&mlc_os_counted.membarrier_refused);
  errno = saved;
  return ok;
}

bool mlc_os_membarrier_register(void) {
  return mlc_os_membarrier_cmd(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);
}

bool mlc_os_membarrier(void) { return mlc_os_membarrier_cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED); }

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

void mlc_os_thread_name(const char *name) {
  int saved = errno;
  syscall(SYS_prctl, PR_SET_NAME, name, 0, 0, 0); /* not melloc's own prctl() */
  errno = saved;
}

/* ---- A thread glibc does not know of (gc.c, "The thread glibc does not count") ---- */

/* Thread tid's capabilities (0: the caller's) into d; false, d all zero, if the kernel
   would not say. */
static bool mlc_os_capget(int tid, struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3]) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, tid};
  memset(d, 0, sizeof(*d) * _LINUX_CAPABILITY_U32S_3);
  return syscall(SYS_capget, &h, d) == 0;
}

/* The credentials of every thread of the process can never change: real, effective and
   saved ids alike, none of them root, no capability permitted (so no setuid(),
   setgroups() or capset() can change them, whatever thread calls it), and not a set-id
   program (AT_SECURE).  capget last: only a process that passed the rest makes it. */
bool mlc_os_creds_fixed(void) {
  int saved = errno;
  bool fixed = getauxval(AT_SECURE) == 0;
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  fixed = fixed && getresuid(&ru, &eu, &su) == 0 && ru == eu && eu == su && eu != 0;
  fixed = fixed && getresgid(&rg, &eg, &sg) == 0 && rg == eg && eg == sg;
  struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
  fixed = fixed && mlc_os_capget(0, d);
  for (unsigned i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
    fixed = fixed && d[i].permitted == 0 && d[i].effective == 0;
  errno = saved;
  return fixed;
}

void mlc_os_caps_follow_main(void) {
  int saved = errno;
  struct __user_cap_data_struct mine[_LINUX_CAPABILITY_U32S_3], theirs[_LINUX_CAPABILITY_U32S_3];
  bool more = false;
  if (mlc_os_capget(0, mine))
    for (unsigned i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
      more = more || mine[i].effective || mine[i].permitted || mine[i].inheritable;
  if (more && mlc_os_capget((int)syscall(SYS_getpid), theirs)) {
    more = false;
    for (unsigned i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
      more = more || (mine[i].effective & ~theirs[i].effective) ||
             (mine[i].permitted & ~theirs[i].permitted) ||
             (mine[i].inheritable & ~theirs[i].inheritable);
      mine[i].effective &= theirs[i].effective;
      mine[i].permitted &= theirs[i].permitted;
      mine[i].inheritable &= theirs[i].inheritable;
    }
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    if (more) syscall(SYS_capset, &h, mine);
  }
  errno = saved;
}

#if MLC_BARE_THREAD
/* The bare thread's region holds its stack and, around its thread pointer, zero-filled
   memory for its thread-local variables (below: bytes under the pointer; above: from it
   up).  Where the variables lie is the platform's TLS variant:
   - variant II (x86-64, s390x): glibc's thread pointer points at its thread control
     block (tcbhead_t, the start of struct pthread): the block itself at 0x00, the
     dynamic TLS vector at 0x08, the thread descriptor at 0x10, the stack protector's
     canary at 0x28 (s390x's pointer guard too), x86-64's pointer guard at 0x30; the
     header compiled code may read is 0x80 bytes on x86-64, 0x40 on s390x.  Static
     thread-local variables lie below it, each at a fixed offset, the same in every
     thread.  The bare thread's block: the header copied from the creator (the canary
     and guards are the process's), pointing at itself, no dynamic TLS vector (a dynamic
     TLS access faults); the rest of struct pthread (a few KiB: cancellation state, the
     thread's signal mask as glibc sees it) reads as zero.  The region: no access
     (MLC_BARE_EDGE), the variables, the block, a guard page, the stack.
   - variant I (arm64, ppc64): static thread-local variables lie above a block, struct
     pthread below it.  arm64's thread pointer (TPIDR_EL0) points at the block, 16 bytes
     (the dynamic TLS vector and a word glibc leaves unused, both NULL here), the canary
     and the pointer guard are global variables.  ppc64's (r13) points 0x7000 bytes past
     the end of its block (tcbhead_t, 104 bytes, ending with the pointer guard, the
     canary and the dynamic TLS vector), which holds the hwcap words
     __builtin_cpu_supports() reads at its start: those, the guards and the canary are
     copied from the creator, the vector and the rest are zero.  The region, the other
     way up: a guard page, the stack, struct pthread, the block, the variables, no
     access.
   In both, the variables' memory reaches MLC_BARE_SLACK past the furthest variable the
   thread's code names, and a variable further off faults. */
#define MLC_BARE_TCB ((size_t)16 << 10)  /* room for struct pthread */
#define MLC_BARE_EDGE ((size_t)64 << 10) /* no access past what it may use */
#define MLC_BARE_SLACK ((size_t)64 << 10) /* around the variables it names */
#define MLC_BARE_STACK ((size_t)1 << 20)
#if defined(__x86_64__)
#define MLC_BARE_VARIANT_II 1
#define MLC_BARE_HEADER 0x80
#elif defined(__s390x__)
#define MLC_BARE_VARIANT_II 1
#define MLC_BARE_HEADER 0x40
#elif defined(__aarch64__)
#define MLC_BARE_VARIANT_II 0
#define MLC_BARE_TLS_START 16 /* where the variables start, from the thread pointer */
#define MLC_BARE_BELOW MLC_BARE_TCB /* the bytes it needs under the thread pointer */
#else
#define MLC_BARE_VARIANT_II 0
#define MLC_BARE_TLS_START (-0x7000)
#define MLC_BARE_BELOW (0x7000 + MLC_BARE_TCB)
#endif

static struct {
  char *tls, *stack;   /* the zero-filled memory around the thread pointer; the stack (in
                          one reservation, never unmapped: the next thread reuses it) */
  size_t below, above; /* the first's bytes under the thread pointer, and from it up */
  int tid; /* Atomic: the thread's id from clone() until the kernel clears it at its end */
} mlc_os_bare;

static char *mlc_os_thread_pointer(void) {
  char *tp;
#if defined(__x86_64__)
  __asm__("mov %%fs:0, %0" : "=r"(tp));
#elif defined(__aarch64__)
  __asm__("mrs %0, tpidr_el0" : "=r"(tp));
#elif defined(__powerpc64__)
  __asm__("mr %0, 13" : "=r"(tp));
#else
  tp = __builtin_thread_pointer();
#endif
  return tp;
}

bool mlc_os_bare_spawn(int (*fn)(void *), const void *tls_lo, const void *tls_hi, long *tid) {
  char *tp = mlc_os_thread_pointer();
  uintptr_t lo = MLC_MIN((uintptr_t)tls_lo, (uintptr_t)&errno);
  uintptr_t hi = MLC_MAX((uintptr_t)tls_hi, (uintptr_t)(&errno + 1));
  size_t pg = mlc_os_page_size(), below, above;
#if MLC_BARE_VARIANT_II
  if (hi > (uintptr_t)tp) return false; /* not the layout this was written for */
  below = MLC_ALIGN_UP((uintptr_t)tp - lo + MLC_BARE_SLACK, pg);
  above = MLC_ALIGN_UP(MLC_BARE_TCB, pg);
#else
  if (lo < (uintptr_t)(tp + MLC_BARE_TLS_START)) return false;
  below = MLC_ALIGN_UP(MLC_BARE_BELOW, pg);
  above = MLC_ALIGN_UP(hi - (uintptr_t)tp + MLC_BARE_SLACK, pg);
#endif
  int saved = errno;
  /* The previous bare thread is ending (it retired): its stack is reused once the
     kernel has cleared its id, which it does after the thread's last user instruction. */
  for (int t; (t = __atomic_load_n(&mlc_os_bare.tid, __ATOMIC_ACQUIRE)) != 0;)
    syscall(SYS_futex, &mlc_os_bare.tid, FUTEX_WAIT, t, NULL, NULL, 0);
  if (mlc_os_bare.tls) {
    /* Zero again: a new thread's variables start at zero, and the old stack's pages go.
       Static TLS offsets never change in a process: the same layout serves. */
    madvise(mlc_os_bare.tls, mlc_os_bare.below + mlc_os_bare.above, MADV_DONTNEED);
    madvise(mlc_os_bare.stack, MLC_BARE_STACK, MADV_DONTNEED);
  } else {
    size_t size = MLC_BARE_EDGE + below + above + pg + MLC_BARE_STACK;
    void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    char *b = p;
#if MLC_BARE_VARIANT_II
    char *tls = b + MLC_BARE_EDGE, *stack = b + size - MLC_BARE_STACK;
#else
    char *stack = b + pg, *tls = stack + MLC_BARE_STACK;
#endif
    if (p == MAP_FAILED || mprotect(tls, below + above, PROT_READ | PROT_WRITE) != 0 ||
        mprotect(stack, MLC_BARE_STACK, PROT_READ | PROT_WRITE) != 0) {
      if (p != MAP_FAILED) munmap(p, size);
      errno = saved;
      return false;
    }
    mlc_os_bare.tls = tls;
    mlc_os_bare.stack = stack;
    mlc_os_bare.below = below;
    mlc_os_bare.above = above;
  }
  char *ntp = mlc_os_bare.tls + mlc_os_bare.below;
#if MLC_BARE_VARIANT_II
  memcpy(ntp, tp, MLC_BARE_HEADER);
  ((void **)ntp)[0] = ntp;  /* tcb */
  ((void **)ntp)[1] = NULL; /* dtv */
  ((void **)ntp)[2] = ntp;  /* self */
#elif defined(__powerpc64__)
  /* The block's words, counted back from its end: 13 hwcap, 12 at_platform, 3 the
     pointer guard, 2 the canary, 1 the dynamic TLS vector (left NULL). */
  uintptr_t *mine = (uintptr_t *)(tp + MLC_BARE_TLS_START);
  uintptr_t *its = (uintptr_t *)(ntp + MLC_BARE_TLS_START);
  its[-13] = mine[-13];
  its[-12] = mine[-12];
  its[-3] = mine[-3];
  its[-2] = mine[-2];
#endif
  /* Every signal blocked, glibc's own two included (pthread_sigmask leaves them). */
  uint64_t all = ~(uint64_t)0, old;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof(all));
  int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
              CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
  int r = clone(fn, mlc_os_bare.stack + MLC_BARE_STACK, flags, NULL, &mlc_os_bare.tid, ntp,
                &mlc_os_bare.tid);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, sizeof(old));
  errno = saved;
  if (r <= 0) {
    __atomic_store_n(&mlc_os_bare.tid, 0, __ATOMIC_RELEASE);
    return false;
  }
  *tid = r;
  return true;
}

void mlc_os_bare_postfork_child(void) { __atomic_store_n(&mlc_os_bare.tid, 0, __ATOMIC_RELAXED); }
#else
bool mlc_os_bare_spawn(int (*fn)(void *), const void *tls_lo, const void *tls_hi, long *tid) {
  (void)fn, (void)tls_lo, (void)tls_hi, (void)tid;
  return false;
}

void mlc_os_bare_postfork_child(void) {}
#endif

long mlc_os_syscall(long nr, unsigned long a1, unsigned long a2, unsigned long a3, unsigned long a4,
                    unsigned long a5) {
  return syscall(nr, a1, a2, a3, a4, a5);
}
