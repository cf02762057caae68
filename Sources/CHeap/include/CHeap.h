#ifndef CHEAP_H
#define CHEAP_H

#include <stddef.h>

/// Bytes the C allocator has handed out and not had back (glibc: the main arena's and the
/// mmapped blocks; 0 elsewhere). Swift's Glibc module does not import <malloc.h>.
size_t sr_heap_in_use(void);

/// Serves every block of `threshold` bytes or more with its own mapping, given back to the
/// system when freed (glibc: a fixed M_MMAP_THRESHOLD; by default glibc raises the threshold
/// after the first large block is freed, and the next large message's growing buffers then stay
/// resident in the heap). Does nothing elsewhere.
void sr_heap_map_large_blocks(size_t threshold);

/// Drops the pages of the executable that start-up touched and that are still the file's own
/// from the resident set: its code, and the read-only data (Swift's metadata and conformance
/// tables, unwind tables) it read. What runs afterwards comes back from the page cache on first
/// use (with the kernel's fault-around, 64 KB at a time), so the resident set holds what the
/// process uses, not all it used once to start. Never writable mappings (another thread may be
/// writing), nor a read-only page the loader relocated (the process's own copy): only pages
/// `/proc/self/pagemap` says are file-backed. Does nothing elsewhere.
void sr_drop_startup_pages(void);

#endif
