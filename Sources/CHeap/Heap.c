#include "CHeap.h"

#include <stdlib.h>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>

size_t sr_heap_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}

void sr_heap_map_large_blocks(size_t threshold) {
    mallopt(M_MMAP_THRESHOLD, (int)threshold);
}
#else
size_t sr_heap_in_use(void) { return 0; }
void sr_heap_map_large_blocks(size_t threshold) { (void)threshold; }
#endif
