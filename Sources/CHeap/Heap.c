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

#if defined(__linux__)
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void sr_drop_startup_code_pages(void) {
    char executable[4096];
    ssize_t length = readlink("/proc/self/exe", executable, sizeof executable - 1);
    if (length <= 0) return;
    executable[length] = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) return;
    char line[8192];
    while (fgets(line, sizeof line, maps)) {
        unsigned long start, end;
        char permissions[8] = "";
        char path[4096] = "";
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %4095[^\n]", &start, &end, permissions, path) < 4) continue;
        if (strcmp(path, executable) != 0 || strcmp(permissions, "r-xp") != 0) continue;
        madvise((void *)start, end - start, MADV_DONTNEED);
    }
    fclose(maps);
}
#else
void sr_drop_startup_code_pages(void) {}
#endif
