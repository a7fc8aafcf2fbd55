//go:build !linux

package main

import "os"

// readNoEcho is not available here: the password is read as a plain line.
func readNoEcho(*os.File) (string, bool, error) { return "", false, nil }
