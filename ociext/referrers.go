// Package ociext adds what OCI distribution-spec 1.1 asks of a registry
// and distribution v3.1.2 lacks, in front of distribution's app: the
// referrers API (`GET /v2/<name>/referrers/<digest>`, served from the
// repository index that registry events keep current) and the `OCI-Subject`
// header on manifest pushes that carry a subject.
//
//	h := ociext.Wrap(app, st, accessController, driverFunc)
//	mux.Handle("/v2/", authplugin.V2Middleware(h, recorder))
package ociext

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/store"
)

// PageSize bounds one referrers response; larger sets are paginated with Link.
const PageSize = 500

// maxManifest is distribution's manifest size limit; larger bodies are left
// for distribution to refuse.
const maxManifest = 4 << 20

// Wrap serves the referrers API and decorates manifest pushes; every other
// request goes to next unchanged.
// driver may be nil (no alias links are then written).
func Wrap(next http.Handler, st *store.Store, ac auth.AccessController, driver DriverFunc) http.Handler {
	return &handler{next: next, st: st, ac: ac, driver: driver}
}

type handler struct {
	next   http.Handler
	st     *store.Store
	ac     auth.AccessController
	driver DriverFunc
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.aliasRequest(w, r) {
		return
	}
	if name, ref, ok := split(r.URL.Path, "/referrers/"); ok {
		h.referrers(w, r, name, ref)
		return
	}
	if r.Method == http.MethodPut {
		if _, _, ok := split(r.URL.Path, "/manifests/"); ok {
			h.putManifest(w, r)
			return
		}
	}
	h.next.ServeHTTP(w, r)
}

// split parses /v2/<name><sep><ref>.
func split(p, sep string) (name, ref string, ok bool) {
	if !strings.HasPrefix(p, "/v2/") {
		return "", "", false
	}
	rest := p[len("/v2/"):]
	i := strings.LastIndex(rest, sep)
	if i <= 0 {
		return "", "", false
	}
	name, ref = rest[:i], rest[i+len(sep):]
	if ref == "" || strings.Contains(ref, "/") {
		return "", "", false
	}
	return name, ref, true
}

func (h *handler) referrers(w http.ResponseWriter, r *http.Request, name, ref string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		authplugin.WriteOCIError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the referrers API is read-only", nil)
		return
	}
	if _, err := reference.WithName(name); err != nil {
		authplugin.WriteOCIError(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name", map[string]string{"name": name})
		return
	}
	access := auth.Access{Resource: auth.Resource{Type: "repository", Name: name}, Action: "pull"}
	if !authplugin.Authorize(w, r, h.ac, access) {
		return
	}
	dgst, err := digest.Parse(ref)
	if err != nil {
		authplugin.WriteOCIError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content", map[string]string{"digest": ref})
		return
	}
	// distribution-spec 1.1: a registry that supports the referrers API
	// MUST NOT answer 404; an unknown repository has no referrers.
	ctx := r.Context()
	ms, err := h.st.Referrers(ctx, name, dgst.String())
	if err != nil {
		authplugin.WriteOCIError(w, http.StatusInternalServerError, "UNKNOWN", "repository index unavailable", nil)
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

// putManifest passes the push to distribution and, when the manifest names
// a subject and the push succeeded, answers with OCI-Subject.
func (h *handler) putManifest(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > maxManifest {
		h.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
	if err != nil {
		authplugin.WriteOCIError(w, http.StatusBadRequest, "MANIFEST_INVALID", "could not read manifest body", nil)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var m struct {
		Subject *struct {
			Digest string `json:"digest"`
		} `json:"subject"`
	}
	if json.Unmarshal(body, &m) != nil || m.Subject == nil || m.Subject.Digest == "" {
		h.next.ServeHTTP(w, r)
		return
	}
	h.next.ServeHTTP(&subjectWriter{ResponseWriter: w, subject: m.Subject.Digest}, r)
}

type subjectWriter struct {
	http.ResponseWriter
	subject string
	wrote   bool
}

func (s *subjectWriter) WriteHeader(code int) {
	if !s.wrote && code == http.StatusCreated {
		s.ResponseWriter.Header().Set("OCI-Subject", s.subject)
	}
	s.wrote = true
	s.ResponseWriter.WriteHeader(code)
}

func (s *subjectWriter) Write(b []byte) (int, error) {
	if !s.wrote {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

func (s *subjectWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
