//go:build linux

package storagedriver

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing back the dirty pages in
// [off, off+n) without waiting for completion, so that a later fsync has
// less left to do. It is purely advisory: errors (for example on
// filesystems that do not support it) are ignored, and fsync remains the
// only durability point.
func startWriteback(raw syscall.RawConn, off, n int64) {
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
