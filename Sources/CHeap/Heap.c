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
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// Drops the pages of [start, end) that are resident and still the file's own (pagemap: present,
// file-backed), in runs: a page the loader wrote (relocated) is the process's copy and stays.
static void drop_file_pages(int pagemap, unsigned long start, unsigned long end) {
    const unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
    const uint64_t present = 1ULL << 63, fileBacked = 1ULL << 61;
    uint64_t entries[512];
    unsigned long runStart = 0;
    for (unsigned long address = start; address < end;) {
        unsigned long count = (end - address) / page;
        if (count > 512) count = 512;
        ssize_t got = pread(pagemap, entries, count * sizeof entries[0], (off_t)(address / page * sizeof entries[0]));
        if (got <= 0) break;
        count = (unsigned long)got / sizeof entries[0];
        for (unsigned long index = 0; index < count; index++, address += page) {
            int droppable = (entries[index] & present) && (entries[index] & fileBacked);
            if (droppable && !runStart) runStart = address;
            if (!droppable && runStart) {
                madvise((void *)runStart, address - runStart, MADV_DONTNEED);
                runStart = 0;
            }
        }
    }
    if (runStart) madvise((void *)runStart, end - runStart, MADV_DONTNEED);
}

void sr_drop_startup_pages(void) {
    char executable[4096];
    ssize_t length = readlink("/proc/self/exe", executable, sizeof executable - 1);
    if (length <= 0) return;
    executable[length] = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) return;
    int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    char line[8192];
    while (fgets(line, sizeof line, maps)) {
        unsigned long start, end;
        char permissions[8] = "";
        char path[4096] = "";
        if (!strstr(line, executable)) continue;  // most lines: sscanf costs more than the rest
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %4095[^\n]", &start, &end, permissions, path) < 4) continue;
        if (strcmp(path, executable) != 0) continue;
        if (strcmp(permissions, "r-xp") == 0) {
            madvise((void *)start, end - start, MADV_DONTNEED);
        } else if (strcmp(permissions, "r--p") == 0 && pagemap >= 0) {
            drop_file_pages(pagemap, start, end);
        } else if (strcmp(permissions, "rw-p") == 0) {
            // Writable: another thread may write a page while it is looked at, so not dropped
            // here but reclaimed by the kernel, which takes the file's clean pages and leaves
            // the process's own (Linux 5.4+; earlier kernels refuse it, and nothing changes).
            madvise((void *)start, end - start, MADV_PAGEOUT);
        }
    }
    if (pagemap >= 0) close(pagemap);
    fclose(maps);
}
#else
void sr_drop_startup_pages(void) {}
#endif
