// Package layout is distribution's storage layout
// (registry/storage/paths.go), which both the "filesystem" and "mcrfs"
// drivers keep: the paths MCR's own code reads and writes beside
// distribution (the collector, blob serving, alias links, reindex).
package layout

import (
	"path"

	"github.com/opencontainers/go-digest"
)

// The roots of the layout.
const (
	Root      = "/docker/registry/v2"
	BlobsRoot = Root + "/blobs"
	ReposRoot = Root + "/repositories"
)

// BlobDir is the directory of a blob: blobs/<alg>/<2 hex>/<hex>.
func BlobDir(d digest.Digest) string {
	enc := d.Encoded()
	return path.Join(BlobsRoot, d.Algorithm().String(), enc[:2], enc)
}

// BlobDataPath is the blob's content file.
func BlobDataPath(d digest.Digest) string { return path.Join(BlobDir(d), "data") }

// RepoDir is a repository's directory.
func RepoDir(repo string) string { return path.Join(ReposRoot, repo) }

// RevisionLinkPath is the link file of a manifest revision in repo.
func RevisionLinkPath(repo string, d digest.Digest) string {
	return path.Join(RepoDir(repo), "_manifests/revisions", d.Algorithm().String(), d.Encoded(), "link")
}
