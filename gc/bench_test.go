//go:build linux

package gc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	_ "git.wntrmute.dev/kyle/mcr/storagedriver" // registers "mcrfs"
)

// writeFile writes a file under the storage root, creating directories,
// and backdates it past any grace period.
func writeFile(b testing.TB, root, p string, content []byte, mod time.Time) {
	full := filepath.Join(root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(full, content, 0o644); err != nil {
		b.Fatal(err)
	}
	_ = os.Chtimes(full, mod, mod)
}

// populate lays out repos×perRepo tagged images of layersPer blobs each
// (config + layers, all distinct) directly in distribution's on-disk
// format, then deletes every tenth image so the sweep has work. It
// returns the number of blobs and manifests written.
func populate(b testing.TB, root string, repos, perRepo, blobsPer int) (blobs, manifests int) {
	old := time.Now().Add(-48 * time.Hour)
	for r := range repos {
		repo := fmt.Sprintf("bench/repo%03d", r)
		for m := range perRepo {
			var descs []v1.Descriptor
			for l := range blobsPer {
				content := fmt.Appendf(nil, "blob %s %d %d", repo, m, l)
				d := digest.FromBytes(content)
				writeFile(b, root, blobDataPath(d), content, old)
				writeFile(b, root, filepath.ToSlash(filepath.Join(layerLinkDir(repo, d), "link")), []byte(d), old)
				descs = append(descs, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(content))})
				blobs++
			}
			descs[0].MediaType = v1.MediaTypeImageConfig
			raw, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": v1.MediaTypeImageManifest,
				"config": descs[0], "layers": descs[1:]})
			md := digest.FromBytes(raw)
			writeFile(b, root, blobDataPath(md), raw, old)
			manifests++
			if m%10 == 9 {
				continue // deleted image: blobs and layer links stay, no revision
			}
			writeFile(b, root, revisionLinkPath(repo, md), []byte(md), old)
			tag := fmt.Sprintf("v%d", m)
			writeFile(b, root, repoDir(repo)+"/_manifests/tags/"+tag+"/current/link", []byte(md), old)
			writeFile(b, root, repoDir(repo)+"/_manifests/tags/"+tag+"/index/sha256/"+md.Encoded()+"/link", []byte(md), old)
		}
	}
	return blobs, manifests
}

// BenchmarkGC measures mark and sweep over 10,000 blobs in 1,000 manifests
// (and twice that) on the mcrfs driver; a tenth of the images are
// unreferenced, so the sweep removes about 1,100 (2,200) blobs.
//
//	go test ./gc -run '^$' -bench GC -benchtime 1x
func BenchmarkGC(b *testing.B) {
	for _, scale := range []int{1, 2} {
		repos, perRepo, blobsPer := 100*scale, 10, 10
		b.Run(fmt.Sprintf("blobs=%d/manifests=%d", repos*perRepo*blobsPer, repos*perRepo), func(b *testing.B) {
			var mark, sweep, cpu time.Duration
			var removed int
			for range b.N {
				b.StopTimer()
				root := b.TempDir()
				populate(b, root, repos, perRepo, blobsPer)
				syscall.Sync() // measure GC, not the write-back of the setup
				d, err := factory.Create(context.Background(), "mcrfs", map[string]any{"rootdirectory": root})
				if err != nil {
					b.Fatal(err)
				}
				e := &Engine{Driver: d, Grace: time.Hour}
				cpu0 := cpuTime()
				b.StartTimer()
				res, err := e.Run(context.Background(), Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += cpuTime() - cpu0
				mark += res.MarkDuration
				sweep += res.SweepDuration
				removed += res.BlobsRemoved
			}
			b.ReportMetric(float64(mark.Milliseconds())/float64(b.N), "mark-ms/op")
			b.ReportMetric(float64(sweep.Milliseconds())/float64(b.N), "sweep-ms/op")
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(removed)/float64(b.N), "blobs-removed/op")
		})
	}
}

// cpuTime is the process's user+system CPU time (the wall time of a
// benchmark on a shared machine says little).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
