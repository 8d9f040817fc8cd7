/* SPDX-License-Identifier: MIT */
/* fastpath: the cost of one allocation on the hot path, single thread.
     -m malloc   malloc(size)/free(p) pairs
     -m calloc   calloc(1, size)/free(p) pairs
     -m realloc  a buffer grown by -g bytes per realloc from -g up to -s bytes,
                 then freed; repeated.  One iteration is one realloc call.
   -n iterations, -s size (max size for realloc), -g growth step.
   The same binary is used by icount.py under callgrind, so the loop must stay
   minimal: no stores into the block, only an escape of the pointer. */
#include "common.h"

int main(int argc, char **argv) {
  opt_check(argc, argv, "mnsg", "[-m malloc|calloc|realloc] [-n iters] [-s size] [-g step]");
  const char *mode = opt_str(argc, argv, 'm', "malloc");
  long long n = opt_ll(argc, argv, 'n', 10000000);
  size_t size = (size_t)opt_ll(argc, argv, 's', 64);
  size_t step = (size_t)opt_ll(argc, argv, 'g', 16);
  if (size == 0 || step == 0 || n < 0) die("arguments");

  if (strcmp(mode, "malloc") == 0) {
    for (long long i = 0; i < n; i++) {
      void *p = malloc(size);
      escape(p);
      free(p);
    }
  } else if (strcmp(mode, "calloc") == 0) {
    for (long long i = 0; i < n; i++) {
      void *p = calloc(1, size);
      escape(p);
      free(p);
    }
  } else if (strcmp(mode, "realloc") == 0) {
    char *p = NULL;
    size_t cur = 0;
    for (long long i = 0; i < n; i++) {
      if (cur >= size) {
        free(p);
        p = NULL;
        cur = 0;
      }
      cur += step;
      p = realloc(p, cur);
      if (!p) die("realloc");
      escape(p);
    }
    free(p);
  } else {
    die("mode");
  }
  return 0;
}
