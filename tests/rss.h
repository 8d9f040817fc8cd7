/* SPDX-License-Identifier: MIT */
/* The process's resident memory, for the tests that measure what melloc gives back. */
#ifndef MLC_TEST_RSS_H
#define MLC_TEST_RSS_H

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* Resident memory in kB, from VmRSS (whatever the page size: statm counts the kernel's
   pages, which are not the program's under qemu-user -p 65536), read without
   allocating (no stdio), so that polling it never disturbs what it measures.  0 when
   it cannot be read. */
static inline size_t mlc_test_rss_kb(void) {
  char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
  if (fd >= 0) close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char *p = strstr(buf, "\nVmRSS:");
  return p ? (size_t)strtoul(p + 7, NULL, 10) : 0;
}

#endif
