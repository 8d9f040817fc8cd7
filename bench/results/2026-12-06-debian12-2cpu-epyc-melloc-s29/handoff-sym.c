/* sh6/sh8-like: each thread repeatedly allocates an array of blocks of sizes cycling
   through [lo, hi], frees half forward, allocates them again, frees all in reverse;
   with -x, every other round's blocks are freed by the next thread (remote frees). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int T = 2, R = 2000, N = 2000, LO = 1, HI = 1000, X = 0;
static void **hand[64];
static pthread_mutex_t hm[64];
static void *work(void *arg) {
  long id = (long)arg;
  void **a = malloc(N * sizeof(void *));
  unsigned s = (unsigned)id * 7 + 1;
  for (int r = 0; r < R; r++) {
    size_t sz = LO;
    for (int i = 0; i < N; i++) { a[i] = malloc(sz); memset(a[i], i, sz < 16 ? sz : 16); sz += 17; if (sz > (size_t)HI) sz = LO + (s = s * 1103515245 + 12345) % 7; }
    for (int i = 0; i < N; i += 2) free(a[i]);
    for (int i = 0; i < N; i += 2) a[i] = malloc(LO + i % (HI - LO + 1));
    if (X && (r & 1)) {
      int to = (int)((id + 1) % T);
      void **b = malloc(N * sizeof(void *)); memcpy(b, a, N * sizeof(void *));
      pthread_mutex_lock(&hm[to]); void **old = hand[to]; hand[to] = b; pthread_mutex_unlock(&hm[to]);
      if (old) { for (int i = N - 1; i >= 0; i--) free(old[i]); free(old); }
      pthread_mutex_lock(&hm[id]); old = hand[id]; hand[id] = NULL; pthread_mutex_unlock(&hm[id]);
      if (old) { for (int i = 0; i < N; i++) free(old[i]); free(old); }
    } else for (int i = N - 1; i >= 0; i--) free(a[i]);
  }
  free(a);
  return NULL;
}
int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    int v = atoi(argv[i + 1]);
    switch (argv[i][1]) { case 't': T = v; break; case 'r': R = v; break; case 'n': N = v; break; case 'l': LO = v; break; case 'h': HI = v; break; case 'x': X = v; break; }
  }
  pthread_t th[64];
  for (int i = 0; i < T; i++) pthread_mutex_init(&hm[i], NULL);
  for (long i = 0; i < T; i++) pthread_create(&th[i], NULL, work, (void *)i);
  for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < T; i++) if (hand[i]) { for (int j = 0; j < N; j++) free(hand[i][j]); free(hand[i]); }
  puts("ok");
  return 0;
}
