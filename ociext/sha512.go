package ociext

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/opencontainers/go-digest"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/store"
)

// distribution verifies content pushed with a sha512 digest but stores and
// addresses it by its canonical sha256 digest, answers with the sha256 in
// Docker-Content-Digest, refuses manifests PUT by sha512 digest and breaks
// mounts by sha512. MCR keeps a table of verified aliases and translates
// sha512 references to the canonical digest on the way in and back on the
// way out, so clients see their algorithm end to end.

const (
	kindBlob     = "blob"
	kindManifest = "manifest"
)

func isAlias(d string) bool {
	return strings.HasPrefix(d, string(digest.SHA512)+":") || strings.HasPrefix(d, string(digest.SHA384)+":")
}

// headerWriter rewrites Docker-Content-Digest and Location on a successful
// response, and lets the caller see the original canonical digest.
type headerWriter struct {
	http.ResponseWriter
	alias     string
	name      string
	kind      string // path segment: "blobs" or "manifests"
	canonical string
	status    int
}

func (h *headerWriter) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
		hd := h.Header()
		if code < 300 {
			h.canonical = hd.Get("Docker-Content-Digest")
			if h.canonical != "" {
				hd.Set("Docker-Content-Digest", h.alias)
			}
			if loc := hd.Get("Location"); loc != "" && h.canonical != "" {
				hd.Set("Location", strings.Replace(loc, h.canonical, h.alias, 1))
			}
		}
	}
	h.ResponseWriter.WriteHeader(code)
}

func (h *headerWriter) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.WriteHeader(http.StatusOK)
	}
	return h.ResponseWriter.Write(b)
}

func (h *headerWriter) Flush() {
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (h *headerWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// aliasRequest handles a request that names a non-canonical digest; it
// reports false when the request is not one of those.
func (h *handler) aliasRequest(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	q := r.URL.Query()
	switch {
	case strings.Contains(p, "/blobs/uploads/"):
		if r.Method == http.MethodPut && isAlias(q.Get("digest")) {
			h.completeUpload(w, r, q.Get("digest"))
			return true
		}
		if r.Method == http.MethodPost && isAlias(q.Get("mount")) {
			h.mount(w, r, q)
			return true
		}
		return false
	}
	if name, ref, ok := split(p, "/blobs/"); ok && isAlias(ref) {
		h.byCanonical(w, r, name, ref, "blobs", kindBlob)
		return true
	}
	if name, ref, ok := split(p, "/manifests/"); ok && isAlias(ref) {
		if r.Method == http.MethodPut {
			h.putManifestByAlias(w, r, name, ref)
		} else {
			h.byCanonical(w, r, name, ref, "manifests", kindManifest)
		}
		return true
	}
	return false
}

// completeUpload lets distribution verify and store the blob, then records
// the alias of the canonical digest it reports.
func (h *handler) completeUpload(w http.ResponseWriter, r *http.Request, alias string) {
	name := uploadRepo(r.URL.Path)
	hw := &headerWriter{ResponseWriter: w, alias: alias, name: name, kind: "blobs"}
	h.next.ServeHTTP(hw, r)
	if hw.status == http.StatusCreated && hw.canonical != "" && hw.canonical != alias {
		if err := h.st.PutDigestAlias(r.Context(), alias, hw.canonical, kindBlob); err != nil {
			slog.Error("recording digest alias", "alias", alias, "err", err)
		}
	}
}

func uploadRepo(p string) string {
	rest := strings.TrimPrefix(p, "/v2/")
	if i := strings.Index(rest, "/blobs/uploads"); i > 0 {
		return rest[:i]
	}
	return ""
}

// mount translates a mount by alias into a mount by canonical digest; an
// unknown alias becomes an ordinary upload (the spec lets a registry
// decline a mount).
func (h *handler) mount(w http.ResponseWriter, r *http.Request, q url.Values) {
	alias := q.Get("mount")
	canonical, err := h.st.CanonicalDigest(r.Context(), alias)
	if err != nil {
		q.Del("mount")
		q.Del("from")
		r.URL.RawQuery = q.Encode()
		h.next.ServeHTTP(w, r)
		return
	}
	q.Set("mount", canonical)
	r.URL.RawQuery = q.Encode()
	hw := &headerWriter{ResponseWriter: w, alias: alias, kind: "blobs"}
	h.next.ServeHTTP(hw, r)
	if hw.status == http.StatusCreated {
		if err := h.writeAliasLink(r.Context(), uploadRepo(r.URL.Path), "_layers", alias, canonical); err != nil {
			slog.Error("linking blob alias after mount", "alias", alias, "err", err)
		}
	}
}

// byCanonical serves GET/HEAD/DELETE of a blob or manifest named by alias.
func (h *handler) byCanonical(w http.ResponseWriter, r *http.Request, name, alias, seg, kind string) {
	if _, err := digest.Parse(alias); err != nil {
		h.next.ServeHTTP(w, r) // distribution answers DIGEST_INVALID
		return
	}
	canonical, err := h.st.CanonicalDigest(r.Context(), alias)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			authplugin.WriteOCIError(w, http.StatusInternalServerError, "UNKNOWN", "digest index unavailable", nil)
			return
		}
		h.next.ServeHTTP(w, r)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/v2/" + name + "/" + seg + "/" + canonical
	r2.URL.RawPath = ""
	r2.RequestURI = r2.URL.RequestURI()
	hw := &headerWriter{ResponseWriter: w, alias: alias, name: name, kind: seg}
	h.next.ServeHTTP(hw, r2)
	if r.Method == http.MethodDelete && hw.status == http.StatusAccepted {
		section := "_layers"
		if kind == kindManifest {
			section = "_manifests/revisions"
		}
		if err := h.removeAliasLink(r.Context(), name, section, alias); err != nil {
			slog.Error("removing alias link", "alias", alias, "err", err)
		}
	}
}

// putManifestByAlias verifies the manifest against the alias digest, then
// pushes it by its canonical digest.
func (h *handler) putManifestByAlias(w http.ResponseWriter, r *http.Request, name, alias string) {
	want, err := digest.Parse(alias)
	if err != nil {
		authplugin.WriteOCIError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content", map[string]string{"digest": alias})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
	if err != nil {
		authplugin.WriteOCIError(w, http.StatusBadRequest, "MANIFEST_INVALID", "could not read manifest body", nil)
		return
	}
	if len(body) > maxManifest {
		authplugin.WriteOCIError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", "manifest too large", nil)
		return
	}
	if !matches(want, body) {
		authplugin.WriteOCIError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content", map[string]string{"digest": alias})
		return
	}
	sum := sha256.Sum256(body)
	canonical := "sha256:" + hex.EncodeToString(sum[:])
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/v2/" + name + "/manifests/" + canonical
	r2.URL.RawPath = ""
	r2.RequestURI = r2.URL.RequestURI()
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	hw := &headerWriter{ResponseWriter: w, alias: alias, name: name, kind: "manifests"}
	// Record the alias first: the push's own events (and a client's next
	// GET by alias) must find it.
	if err := h.st.PutDigestAlias(r.Context(), alias, canonical, kindManifest); err != nil {
		authplugin.WriteOCIError(w, http.StatusInternalServerError, "UNKNOWN", "digest index unavailable", nil)
		return
	}
	h.putManifest(hw, r2)
	if hw.status == http.StatusCreated {
		if err := h.writeAliasLink(r.Context(), name, "_manifests/revisions", alias, canonical); err != nil {
			slog.Error("linking manifest alias", "alias", alias, "err", err)
		}
	}
}

func matches(want digest.Digest, body []byte) bool {
	switch want.Algorithm() {
	case digest.SHA512:
		sum := sha512.Sum512(body)
		return want.Encoded() == hex.EncodeToString(sum[:])
	case digest.SHA384:
		sum := sha512.Sum384(body)
		return want.Encoded() == hex.EncodeToString(sum[:])
	}
	return want.Algorithm().Available() && want.Algorithm().FromBytes(body) == want
}
