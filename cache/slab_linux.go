package cache

import "golang.org/x/sys/unix"

func madviseHuge(b []byte) { _ = unix.Madvise(b, unix.MADV_HUGEPAGE) }
