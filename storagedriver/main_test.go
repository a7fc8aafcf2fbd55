package storagedriver

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs the tests in -short mode unless -short was given explicitly
// or MCRFS_FULL_SUITE=1 is set. distribution's conformance suite uses
// testing.Short as its knob for its largest cases (a 5 GiB stream, 32
// concurrent 32 MiB streams, 128 MiB concurrent reads), which take about a
// minute on a small machine; the rest of the suite runs in full either way.
//
//	go test ./storagedriver/                   # short conformance suite
//	go test -short=false ./storagedriver/      # everything
//	MCRFS_FULL_SUITE=1 go test ./storagedriver/
//
// CI runs TestDriverSuite in full (.ci/run, stage mcrfs-large).
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.short" {
			explicit = true
		}
	})
	if !explicit && os.Getenv("MCRFS_FULL_SUITE") != "1" {
		if err := flag.Set("test.short", "true"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
