//go:build linux

package storagedriver

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openDirect opens name for writing with O_DIRECT, as a second descriptor
// next to the buffered one. Filesystems without direct I/O refuse it
// (EINVAL); the writer then stays with the page cache.
func openDirect(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_WRONLY|unix.O_DIRECT, 0) //nolint:gosec // the driver's own upload file, already open

}

// directRefused reports whether a direct write failed because of direct I/O
// itself (alignment or filesystem support), so that the same data can be
// written through the page cache instead.
func directRefused(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP)
}
