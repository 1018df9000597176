/*
 * Memory read bandwidth: threads each sum a disjoint part of a 512 MB float array (far larger than
 * any cache), the way a decode step streams the weights once. Prints one JSON line:
 * {"bytes":..., "threads":[{"n":1,"gbps":[...]}, {"n":2,...}]}. Build: cc -O2 -march=native -pthread.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct { const float *a; size_t n; float sum; } part_t;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static void *sum_part(void *p) {
  part_t *w = p;
  float s[16] = {0};
  for (size_t i = 0; i + 16 <= w->n; i += 16)
    for (int j = 0; j < 16; j++) s[j] += w->a[i + j];
  float t = 0;
  for (int j = 0; j < 16; j++) t += s[j];
  w->sum = t;
  return NULL;
}

int main(int argc, char **argv) {
  int maxThreads = argc > 1 ? atoi(argv[1]) : 2;
  int reps = argc > 2 ? atoi(argv[2]) : 5;
  size_t n = (size_t)128 << 20; /* 512 MB of floats */
  float *a = malloc(n * sizeof(float));
  if (!a) return 1;
  for (size_t i = 0; i < n; i++) a[i] = (float)(i & 7);
  printf("{\"bytes\":%zu,\"threads\":[", n * sizeof(float));
  for (int t = 1; t <= maxThreads; t++) {
    printf("%s{\"n\":%d,\"gbps\":[", t > 1 ? "," : "", t);
    for (int r = 0; r < reps; r++) {
      pthread_t th[64];
      part_t parts[64];
      double t0 = now();
      for (int k = 0; k < t; k++) {
        parts[k].a = a + k * (n / t);
        parts[k].n = n / t;
        pthread_create(&th[k], NULL, sum_part, &parts[k]);
      }
      for (int k = 0; k < t; k++) pthread_join(th[k], NULL);
      double dt = now() - t0;
      float chk = 0;
      for (int k = 0; k < t; k++) chk += parts[k].sum;
      printf("%s%.2f", r ? "," : "", (double)n * sizeof(float) / dt / 1e9 + 0 * chk);
    }
    printf("]}");
  }
  printf("]}\n");
  free(a);
  return 0;
}
