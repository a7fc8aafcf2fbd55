//go:build unix

package main

import (
	"os"
	"syscall"
)

// lockDir takes an exclusive lock on a directory (flock on the directory
// itself, so nothing is written into it), waiting for other holders; the
// returned function releases it.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
