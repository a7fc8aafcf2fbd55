//go:build linux

package main

import (
	"bufio"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// readNoEcho reads one line from a terminal with echo turned off; ok is
// false when f is not a terminal.
func readNoEcho(f *os.File) (string, bool, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", false, nil
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", false, nil
	}
	defer func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }()
	s, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && s == "" {
		return "", true, err
	}
	return strings.TrimRight(s, "\r\n"), true, nil
}
