package ociext

import (
	_ "crypto/sha256" // registers sha256 with go-digest
	_ "crypto/sha512" // registers sha384 and sha512 with go-digest
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/opencontainers/go-digest"

	"git.wntrmute.dev/kyle/mcr/edge/exchange"
	"git.wntrmute.dev/kyle/mcr/store"
)

// distribution verifies content pushed with a sha512 digest but stores and
// addresses it by its canonical sha256 digest, answers with the sha256 in
// Docker-Content-Digest, refuses manifests PUT by sha512 digest and breaks
// mounts by sha512. MCR keeps a table of verified aliases and translates
// sha512 references to the canonical digest on the way in and back on the
// way out, so clients see their algorithm end to end. An alias is recorded
// only once distribution has accepted the content (2xx), and before the
// client sees that answer, so its next request by alias finds it.

const (
	kindBlob     = "blob"
	kindManifest = "manifest"
)

func isAlias(d string) bool {
	return strings.HasPrefix(d, string(digest.SHA512)+":") || strings.HasPrefix(d, string(digest.SHA384)+":")
}

// aliasAnswer rewrites a successful answer for a request made by alias:
// Docker-Content-Digest and Location name the alias, not the canonical
// digest. then, when set, runs with the canonical digest distribution
// reported; an error from it replaces the answer.
func aliasAnswer(x *exchange.Exchange, alias string, then func(canonical string) error) {
	x.OnHeader(func(status int, hd http.Header) error {
		if status >= 300 {
			return nil
		}
		canonical := hd.Get("Docker-Content-Digest")
		if canonical != "" {
			hd.Set("Docker-Content-Digest", alias)
			if loc := hd.Get("Location"); loc != "" {
				hd.Set("Location", strings.Replace(loc, canonical, alias, 1))
			}
		}
		if then != nil {
			return then(canonical)
		}
		return nil
	})
}

// aliasRequest handles a request that names a non-canonical digest; it
// reports false when the request is not one of those.
func (h *handler) aliasRequest(w http.ResponseWriter, r *http.Request, x *exchange.Exchange) bool {
	rt := x.Route
	switch rt.Name {
	case v2.RouteNameBlobUploadChunk:
		if d := r.URL.Query().Get("digest"); r.Method == http.MethodPut && isAlias(d) {
			h.completeUpload(w, r, x, d)
			return true
		}
	case v2.RouteNameBlobUpload:
		if q := r.URL.Query(); r.Method == http.MethodPost && isAlias(q.Get("mount")) {
			h.mount(w, r, x, q)
			return true
		}
	case v2.RouteNameBlob:
		if isAlias(rt.Digest) {
			h.byCanonical(w, r, x, rt.Digest, "blobs", kindBlob)
			return true
		}
	case v2.RouteNameManifest:
		if isAlias(rt.Reference) {
			if r.Method == http.MethodPut {
				h.putManifestByAlias(w, r, x, rt.Reference)
			} else {
				h.byCanonical(w, r, x, rt.Reference, "manifests", kindManifest)
			}
			return true
		}
	}
	return false
}

// completeUpload lets distribution verify and store the blob, then records
// the alias of the canonical digest it reports.
func (h *handler) completeUpload(w http.ResponseWriter, r *http.Request, x *exchange.Exchange, alias string) {
	aliasAnswer(x, alias, func(canonical string) error {
		if x.Status() != http.StatusCreated || canonical == "" || canonical == alias {
			return nil
		}
		if err := h.Store.PutDigestAlias(r.Context(), alias, canonical, kindBlob); err != nil {
			slog.Error("recording digest alias", "alias", alias, "err", err)
			return errcode.ErrorCodeUnknown.WithMessage("digest index unavailable; retry the upload")
		}
		return nil
	})
	h.next.ServeHTTP(w, r)
}

// mount translates a mount by alias into a mount by canonical digest; an
// unknown alias becomes an ordinary upload (the spec lets a registry
// decline a mount).
func (h *handler) mount(w http.ResponseWriter, r *http.Request, x *exchange.Exchange, q url.Values) {
	alias := q.Get("mount")
	canonical, err := h.Store.CanonicalDigest(r.Context(), alias)
	if err != nil {
		q.Del("mount")
		q.Del("from")
		r.URL.RawQuery = q.Encode()
		r.Form = q // what distribution reads (the edge keeps forms to the query)
		h.next.ServeHTTP(w, r)
		return
	}
	q.Set("mount", canonical)
	r.URL.RawQuery = q.Encode()
	r.Form = q
	aliasAnswer(x, alias, func(string) error {
		if x.Status() != http.StatusCreated {
			return nil
		}
		if err := h.writeAliasLink(r.Context(), x.Route.Repository, "_layers", alias, canonical); err != nil {
			slog.Error("linking blob alias after mount", "alias", alias, "err", err)
		}
		return nil
	})
	h.next.ServeHTTP(w, r)
}

// byCanonical serves GET/HEAD/DELETE of a blob or manifest named by alias.
func (h *handler) byCanonical(w http.ResponseWriter, r *http.Request, x *exchange.Exchange, alias, seg, kind string) {
	if _, err := digest.Parse(alias); err != nil {
		h.next.ServeHTTP(w, r) // distribution answers DIGEST_INVALID
		return
	}
	canonical, err := h.Store.CanonicalDigest(r.Context(), alias)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithMessage("digest index unavailable"))
			return
		}
		h.next.ServeHTTP(w, r)
		return
	}
	name := x.Route.Repository
	r2 := rewrite(r, "/v2/"+name+"/"+seg+"/"+canonical)
	if kind == kindManifest {
		x.Route.Reference = canonical
	} else {
		x.Route.Digest = canonical
	}
	aliasAnswer(x, alias, func(string) error {
		if r.Method != http.MethodDelete || x.Status() != http.StatusAccepted {
			return nil
		}
		section := "_layers"
		if kind == kindManifest {
			section = "_manifests/revisions"
		}
		if err := h.removeAliasLink(r.Context(), name, section, alias); err != nil {
			slog.Error("removing alias link", "alias", alias, "err", err)
		}
		return nil
	})
	h.next.ServeHTTP(w, r2)
}

// rewrite returns r addressed to path instead.
func rewrite(r *http.Request, path string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.URL.Path = path
	r2.URL.RawPath = ""
	r2.RequestURI = r2.URL.RequestURI()
	return r2
}

// putManifestByAlias authorizes the push, verifies the manifest against
// the alias digest, pushes it by its canonical digest and, once
// distribution accepted it, records the alias.
func (h *handler) putManifestByAlias(w http.ResponseWriter, r *http.Request, x *exchange.Exchange, alias string) {
	name := x.Route.Repository
	if !h.authorize(w, r, name, "pull", "push") {
		return
	}
	want, err := digest.Parse(alias)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeDigestInvalid.WithDetail(map[string]string{"digest": alias}))
		return
	}
	body, err := h.readManifest(w, r)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeManifestInvalid.WithMessage(err.Error()))
		return
	}
	if !matches(want, body) {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeDigestInvalid.WithDetail(map[string]string{"digest": alias}))
		return
	}
	canonical := digest.FromBytes(body).String()
	r2 := rewrite(r, "/v2/"+name+"/manifests/"+canonical)
	x.Route.Reference = canonical
	aliasAnswer(x, alias, func(string) error {
		if x.Status() != http.StatusCreated {
			return nil
		}
		if err := h.Store.PutDigestAlias(r.Context(), alias, canonical, kindManifest); err != nil {
			slog.Error("recording digest alias", "alias", alias, "err", err)
			return errcode.ErrorCodeUnknown.WithMessage("digest index unavailable; retry the push")
		}
		if err := h.writeAliasLink(r.Context(), name, "_manifests/revisions", alias, canonical); err != nil {
			slog.Error("linking manifest alias", "alias", alias, "err", err)
		}
		return nil
	})
	h.pushManifest(w, r2, x, body)
}

// matches reports whether body has digest want (go-digest hashes sha384
// and sha512 once crypto/sha512 is linked, as the import above does).
func matches(want digest.Digest, body []byte) bool {
	return want.Algorithm().Available() && want.Algorithm().FromBytes(body) == want
}
