/* The by-hand program of this session's README (not a bench workload): n buffers grown
   together by realloc, by turns, 1/64 of their size (plus 16 bytes) at a time, to max
   KiB, then all freed; reps times.  gcc -O2 -o many many.c; ./many n max-KiB reps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* n buffers grown together, round-robin, by 1/64 each step, to max bytes; freed; reps times */
int main(int argc, char **argv) {
  int n = atoi(argv[1]); size_t max = (size_t)atol(argv[2]) << 10; int reps = atoi(argv[3]);
  unsigned char **p = calloc(n, sizeof *p); size_t *sz = calloc(n, sizeof *sz);
  unsigned long sum = 0;
  for (int r = 0; r < reps; r++) {
    int done = 0;
    while (!done) {
      done = 1;
      for (int i = 0; i < n; i++) {
        if (sz[i] >= max) continue;
        done = 0;
        size_t ns = sz[i] + sz[i] / 64 + 16;
        p[i] = realloc(p[i], ns);
        memset(p[i] + sz[i], i, ns - sz[i]);
        sz[i] = ns; sum += p[i][ns / 2];
      }
    }
    for (int i = 0; i < n; i++) { free(p[i]); p[i] = NULL; sz[i] = 0; }
  }
  printf("%lu\n", sum);
  return 0;
}
