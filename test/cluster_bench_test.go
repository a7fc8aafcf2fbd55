package e2e

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.wntrmute.dev/kyle/mcr/test/mcrtest"
)

// BenchmarkClusterPushPull pushes and pulls (verifying every layer) small
// images through HAProxy in front of one and of three replicas on
// PostgreSQL and versitygw, 8 clients at a time; one op is one image
// pushed and pulled. `make bench` runs it (bench/run.sh) and reports the
// three-to-one ratio.
func BenchmarkClusterPushPull(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			c := mcrtest.StartCluster(b, n)
			var scopes []string
			for k := range 8 {
				scopes = append(scopes, fmt.Sprintf("repository:bench/c%d:pull,push", k))
			}
			auth := authn.FromConfig(authn.AuthConfig{RegistryToken: c.LB.Token(b, "admin", mcrtest.AdminPassword, scopes...)})
			var client atomic.Int64
			b.SetParallelism(4) // 8 clients on this 2-core machine
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				k := client.Add(1) % 8
				opts := remoteOpts(b, c.LB, auth, nil)
				for i := 0; pb.Next(); i++ {
					img, err := random.Image(64<<10, 2)
					if err != nil {
						b.Error(err)
						return
					}
					r := ref(b, c.LB, fmt.Sprintf("bench/c%d:i%d", k, i))
					if err := remote.Write(r, img, opts...); err != nil {
						b.Errorf("push: %v", err)
						return
					}
					got, err := remote.Image(r, opts...)
					if err == nil {
						err = gcVerify(got)
					}
					if err != nil {
						b.Errorf("pull: %v", err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
