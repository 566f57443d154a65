// Defines malloc and friends in the executable that links this target. ELF symbol resolution
// finds an executable's definition before libc's, so every allocation in the process (the Swift
// runtime's included) comes through here; each forwards to glibc's own entry (__libc_malloc…)
// after bumping a counter. Linked only into WireBench.
#include "malloc_counter.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void __libc_free(void *pointer);
extern void *__libc_memalign(size_t alignment, size_t size);

static atomic_int counting;
static atomic_llong allocations;
static atomic_llong frees;

static inline void count_allocation(void) {
    if (atomic_load_explicit(&counting, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    }
}

void malloc_counter_start(void) {
    atomic_store(&allocations, 0);
    atomic_store(&frees, 0);
    atomic_store(&counting, 1);
}

void malloc_counter_stop(void) { atomic_store(&counting, 0); }

int64_t malloc_counter_allocations(void) { return atomic_load(&allocations); }

int64_t malloc_counter_frees(void) { return atomic_load(&frees); }

void *malloc(size_t size) {
    count_allocation();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    count_allocation();
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    count_allocation();
    return __libc_realloc(pointer, size);
}

void free(void *pointer) {
    if (pointer != NULL && atomic_load_explicit(&counting, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
    }
    __libc_free(pointer);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    count_allocation();
    void *p = __libc_memalign(alignment, size);
    if (p == NULL) return ENOMEM;
    *result = p;
    return 0;
}

void *aligned_alloc(size_t alignment, size_t size) {
    count_allocation();
    return __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    count_allocation();
    return __libc_memalign(alignment, size);
}
