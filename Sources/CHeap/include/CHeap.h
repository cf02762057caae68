#ifndef CHEAP_H
#define CHEAP_H

#include <stddef.h>

/// Bytes the C allocator has handed out and not had back (glibc: the main arena's and the
/// mmapped blocks; 0 elsewhere). Swift's Glibc module does not import <malloc.h>.
size_t sr_heap_in_use(void);

#endif
