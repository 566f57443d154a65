// Counts heap allocations in this process while enabled: WireBench's allocations-per-parse figure.
#ifndef MALLOC_COUNTER_H
#define MALLOC_COUNTER_H

#include <stdint.h>

/// Starts counting (and zeroes the counts).
void malloc_counter_start(void);
/// Stops counting.
void malloc_counter_stop(void);
/// Allocation calls (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign) seen
/// while counting.
int64_t malloc_counter_allocations(void);
/// free calls with a non-null pointer seen while counting.
int64_t malloc_counter_frees(void);

#endif
