package gc

import (
	"path"
	"strings"

	"github.com/opencontainers/go-digest"

	"git.wntrmute.dev/kyle/mcr/internal/layout"
)

// Distribution's storage layout (package layout).
const (
	blobsRoot = layout.BlobsRoot
	reposRoot = layout.ReposRoot
)

func blobDir(d digest.Digest) string      { return layout.BlobDir(d) }
func blobDataPath(d digest.Digest) string { return layout.BlobDataPath(d) }
func repoDir(repo string) string          { return layout.RepoDir(repo) }

func layerLinkDir(repo string, d digest.Digest) string {
	return path.Join(repoDir(repo), "_layers", d.Algorithm().String(), d.Encoded())
}

func revisionLinkDir(repo string, d digest.Digest) string {
	return path.Join(repoDir(repo), "_manifests/revisions", d.Algorithm().String(), d.Encoded())
}

func revisionLinkPath(repo string, d digest.Digest) string { return layout.RevisionLinkPath(repo, d) }

// digestFromBlobData parses blobs/<alg>/<2hex>/<hex>/data.
func digestFromBlobData(p string) (digest.Digest, bool) {
	rel, ok := strings.CutPrefix(p, blobsRoot+"/")
	if !ok {
		return "", false
	}
	parts := strings.Split(rel, "/")
	if len(parts) != 4 || parts[3] != "data" {
		return "", false
	}
	return digestOf(parts[0], parts[2])
}

// digestOf builds alg:hex and validates it.
func digestOf(alg, hex string) (digest.Digest, bool) {
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
	if d.Validate() != nil {
		return "", false
	}
	return d, true
}

// linkKind is what a link file under repositories/ is.
type linkKind int

const (
	linkOther linkKind = iota
	linkLayer
	linkRevision
	linkTagCurrent
	linkTagIndex
	linkUpload
)

// repoPath splits a path under repositories/ into the repository name,
// its area ("_layers", "_manifests", "_uploads") and the rest.
func repoPath(p string) (repo, area, rest string, ok bool) {
	rel, ok := strings.CutPrefix(p, reposRoot+"/")
	if !ok {
		return "", "", "", false
	}
	for _, a := range []string{"/_layers/", "/_manifests/", "/_uploads/"} {
		if i := strings.Index(rel, a); i > 0 {
			return rel[:i], a[1 : len(a)-1], rel[i+len(a):], true
		}
	}
	return "", "", "", false
}

// classifyLink recognises the link files distribution writes:
//
//	_layers/<alg>/<hex>/link
//	_manifests/revisions/<alg>/<hex>/link
//	_manifests/tags/<tag>/current/link
//	_manifests/tags/<tag>/index/<alg>/<hex>/link
//
// For tag links, tag is set; digest is set when the path encodes it.
func classifyLink(p string) (kind linkKind, repo, tag string, d digest.Digest) {
	repo, area, rest, ok := repoPath(p)
	if !ok {
		return linkOther, "", "", ""
	}
	parts := strings.Split(rest, "/")
	switch area {
	case "_uploads":
		return linkUpload, repo, "", ""
	case "_layers":
		if len(parts) == 3 && parts[2] == "link" {
			if d, ok := digestOf(parts[0], parts[1]); ok {
				return linkLayer, repo, "", d
			}
		}
	case "_manifests":
		switch {
		case len(parts) == 4 && parts[0] == "revisions" && parts[3] == "link":
			if d, ok := digestOf(parts[1], parts[2]); ok {
				return linkRevision, repo, "", d
			}
		case len(parts) == 4 && parts[0] == "tags" && parts[2] == "current" && parts[3] == "link":
			return linkTagCurrent, repo, parts[1], ""
		case len(parts) == 6 && parts[0] == "tags" && parts[2] == "index" && parts[5] == "link":
			if d, ok := digestOf(parts[3], parts[4]); ok {
				return linkTagIndex, repo, parts[1], d
			}
		}
	}
	return linkOther, repo, "", ""
}
