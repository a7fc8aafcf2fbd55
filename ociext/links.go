package ociext

import (
	"context"
	"errors"
	"path"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"git.wntrmute.dev/kyle/mcr/internal/layout"
)

// distribution resolves a repository's blob and manifest references through
// link files naming the canonical digest. After distribution has accepted
// content under its sha256 digest, MCR adds the alias's link beside it, so
// distribution's own existence checks (an index naming children by sha512,
// an image naming layers by sha512 after a mount) find it. linkPath is
// that link's path in distribution's layout.
func linkPath(repo, section string, alias digest.Digest) string {
	return path.Join(layout.ReposRoot, repo, section, alias.Algorithm().String(), alias.Encoded(), "link")
}

func (h *handler) writeAliasLink(ctx context.Context, repo, section, alias, canonical string) error {
	if h.Registry == nil {
		return nil
	}
	_, d, err := h.Registry()
	if err != nil {
		return err
	}
	return d.PutContent(ctx, linkPath(repo, section, digest.Digest(alias)), []byte(canonical))
}

func (h *handler) removeAliasLink(ctx context.Context, repo, section, alias string) error {
	if h.Registry == nil {
		return nil
	}
	_, d, err := h.Registry()
	if err != nil {
		return err
	}
	p := path.Dir(linkPath(repo, section, digest.Digest(alias)))
	if err := d.Delete(ctx, p); err != nil {
		if errors.As(err, new(storagedriver.PathNotFoundError)) {
			return nil
		}
		return err
	}
	return nil
}
