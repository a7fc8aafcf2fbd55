//go:build !linux

package storagedriver

import (
	"errors"
	"os"
)

var errNoDirect = errors.New("direct I/O not implemented on this platform")

// openDirect is unavailable here; writers use the page cache.
func openDirect(string) (*os.File, error) { return nil, errNoDirect }

func directRefused(err error) bool { return errors.Is(err, errNoDirect) }
