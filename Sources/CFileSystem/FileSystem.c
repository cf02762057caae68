#define _GNU_SOURCE
#include "CFileSystem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

// The generation store's atomic, durable commits are built on these two Linux calls; there is
// no equivalent with the same guarantees elsewhere, so StageRunner builds on Linux only.
#if !defined(__linux__)
#error "StageRunner builds on Linux only: its store needs renameat2(RENAME_EXCHANGE) and syncfs"
#endif

int sr_rename_exchange(const char *from, const char *to) {
#if defined(SYS_renameat2)
    return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 2 /* RENAME_EXCHANGE */);
#else
    (void)from;
    (void)to;
    errno = ENOSYS;
    return -1;
#endif
}

int sr_syncfs(int descriptor) {
    return syncfs(descriptor);
}
