package blobcache

import (
	"context"
	"errors"
	"testing"

	"github.com/distribution/distribution/v3"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestResetForgetsDescriptors(t *testing.T) {
	ctx := context.Background()
	c := New(100)
	d := digest.FromString("blob")
	desc := v1.Descriptor{Digest: d, Size: 4, MediaType: "application/octet-stream"}
	scoped, err := c.RepositoryScoped("team/app")
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []distribution.BlobDescriptorService{c, scoped} {
		if err := svc.SetDescriptor(ctx, d, desc); err != nil {
			t.Fatal(err)
		}
		if got, err := svc.Stat(ctx, d); err != nil || got.Digest != d {
			t.Fatalf("stat after set: %v %v", got, err)
		}
	}
	c.Reset()
	for name, svc := range map[string]distribution.BlobDescriptorService{"global": c, "scoped (handed out before Reset)": scoped} {
		if _, err := svc.Stat(ctx, d); !errors.Is(err, distribution.ErrBlobUnknown) {
			t.Fatalf("%s: stat after reset: %v, want ErrBlobUnknown", name, err)
		}
	}
}
