package ociext

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// PageSize bounds one referrers response; larger sets are paginated with Link.
const PageSize = 500

func (h *handler) referrers(w http.ResponseWriter, r *http.Request, name, ref string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnsupported.WithMessage("the referrers API is read-only"))
		return
	}
	if _, err := reference.WithName(name); err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeNameInvalid.WithDetail(map[string]string{"name": name}))
		return
	}
	if !h.authorize(w, r, name, "pull") {
		return
	}
	dgst, err := digest.Parse(ref)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeDigestInvalid.WithDetail(map[string]string{"digest": ref}))
		return
	}
	// distribution-spec 1.1: a registry that supports the referrers API
	// MUST NOT answer 404; an unknown repository has no referrers.
	ctx := r.Context()
	ms, err := h.Store.Referrers(ctx, name, dgst.String())
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithMessage("repository index unavailable"))
		return
	}
	q := r.URL.Query()
	filter := q.Get("artifactType")
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{}}
	idx.SchemaVersion = 2
	for _, m := range ms {
		if filter != "" && m.ArtifactType != filter {
			continue
		}
		d := v1.Descriptor{MediaType: m.MediaType, Digest: digest.Digest(m.Digest), Size: m.Size, ArtifactType: m.ArtifactType}
		if m.Annotations != "" {
			_ = json.Unmarshal([]byte(m.Annotations), &d.Annotations)
		}
		idx.Manifests = append(idx.Manifests, d)
	}
	// Pagination: `last` is the digest after which the page starts.
	if last := q.Get("last"); last != "" {
		for i, d := range idx.Manifests {
			if d.Digest.String() == last {
				idx.Manifests = idx.Manifests[i+1:]
				break
			}
		}
	}
	if len(idx.Manifests) > PageSize {
		idx.Manifests = idx.Manifests[:PageSize]
		next := url.Values{"last": {idx.Manifests[PageSize-1].Digest.String()}}
		if filter != "" {
			next.Set("artifactType", filter)
		}
		w.Header().Set("Link", `<`+r.URL.Path+`?`+next.Encode()+`>; rel="next"`)
	}
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	body, _ := json.Marshal(idx)
	w.Header().Set("Content-Type", v1.MediaTypeImageIndex)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}
