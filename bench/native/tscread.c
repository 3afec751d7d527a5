// tscread.c: what one clock read costs on this host, in TSC ticks (docs/design.md, "Timing one exit in N").
// Build and run: gcc -O2 bench/native/tscread.c -o /tmp/tscread && /tmp/tscread
// Prints, per read, the best of 200 loops of 1,000 reads: LFENCE+RDTSC (Copra's Tsc.Read), bare RDTSC, and the loop
// alone. Back-to-back reads: inside an exit path an LFENCE also waits for whatever is in flight before it.
#include <stdint.h>
#include <stdio.h>
#include <x86intrin.h>

static inline uint64_t fenced(void) { _mm_lfence(); return __rdtsc(); }

int main(void)
{
    for (int round = 0; round < 3; round++) {
        uint64_t best_fenced = UINT64_MAX, best_bare = UINT64_MAX, best_loop = UINT64_MAX;
        volatile uint64_t sink = 0;
        for (int k = 0; k < 200; k++) {
            uint64_t a = __rdtsc();
            for (int i = 0; i < 1000; i++) sink += fenced();
            uint64_t b = __rdtsc();
            if (b - a < best_fenced) best_fenced = b - a;
            a = __rdtsc();
            for (int i = 0; i < 1000; i++) sink += __rdtsc();
            b = __rdtsc();
            if (b - a < best_bare) best_bare = b - a;
            a = __rdtsc();
            for (int i = 0; i < 1000; i++) sink += (uint64_t)i;
            b = __rdtsc();
            if (b - a < best_loop) best_loop = b - a;
        }
        printf("per read, TSC ticks: lfence+rdtsc %.1f, rdtsc %.1f, the loop alone %.1f\n",
               best_fenced / 1000.0, best_bare / 1000.0, best_loop / 1000.0);
    }
    return 0;
}
