/* CPU affinity and network-namespace switching for the calling thread, and giving freed memory
   back, wrapped for Swift. */
#ifndef GATEWAY_AFFINITY_H
#define GATEWAY_AFFINITY_H

/* Pins the calling thread to one CPU; 0 or -errno. */
int gw_pin_current_thread(int cpu);
/* The CPU the calling thread is pinned to when pinned to exactly one, else -1. */
int gw_current_thread_single_cpu(void);
/* setns(fd, CLONE_NEWNET) for the calling thread; 0 or -errno. */
int gw_setns_net(int fd);
/* Sets the calling thread's nice value (Linux schedules threads apart); 0 or -errno. */
int gw_set_thread_nice(int nice);
/* The calling thread's ID (gettid), which another process may set the nice value of. */
int gw_current_thread_id(void);
/* Names the calling thread (at most 15 bytes are kept), for top -H, perf and /proc. 0 or -errno. */
int gw_set_thread_name(const char *name);
/* The calling thread's nice value. */
int gw_thread_nice(void);
/* Returns memory freed in every malloc arena to the system (malloc_trim(0)). */
void gw_release_free_memory(void);

#endif
