//go:build !unix

package gc

import "os"

// Without flock the lock is advisory only: it always succeeds.
func flock(*os.File) error { return nil }

func funlock(*os.File) error { return nil }
