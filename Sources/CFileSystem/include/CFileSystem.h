// File-system calls Swift's Glibc module does not expose (GNU extensions).
#ifndef STAGERUNNER_CFILESYSTEM_H
#define STAGERUNNER_CFILESYSTEM_H

/// Atomically swaps two paths (Linux renameat2 with RENAME_EXCHANGE): readers see the old or the
/// new one, never neither. Returns 0, or -1 with errno set (ENOSYS or EINVAL where unsupported).
int sr_rename_exchange(const char *from, const char *to);

/// Flushes every dirty page and inode of the file system holding `descriptor` (Linux syncfs):
/// one durability barrier for a whole batch of files. Returns 0, or -1 with errno set.
int sr_syncfs(int descriptor);

#endif
