// Package ociext adds what OCI distribution-spec 1.1 asks of a registry
// and distribution v3.1.2 lacks, in front of distribution's app: the
// referrers API (`GET /v2/<name>/referrers/<digest>`, served from the
// repository index that registry events keep current), the `OCI-Subject`
// header on manifest pushes that carry a subject, sha512 digests end to end,
// and a catalog filtered by what the caller may pull.
//
// It runs behind the edge (package edge): the request has been classified
// and authenticated; ociext authorizes with the same access controller as
// distribution before it reads a manifest body, reads that body bounded and
// with a deadline, and records aliases only after distribution accepted the
// content.
//
//	h := ociext.Wrap(app, ociext.Options{Store: st, Access: ac, Policy: pol, Registry: capt.get})
package ociext

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/distribution/v3/registry/auth"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/edge/exchange"
	"git.wntrmute.dev/kyle/mcr/store"
)

// MaxManifest is distribution's manifest size limit (4 MiB); ociext reads
// no more of a body.
const MaxManifest = 4 << 20

// DefaultBodyTimeout bounds reading a manifest body when Options leaves it
// zero.
const DefaultBodyTimeout = 30 * time.Second

// Options configures Wrap.
type Options struct {
	Store *store.Store
	// Access is the access controller distribution uses (the same
	// instance), for the routes ociext answers itself.
	Access auth.AccessController
	// Policy filters the catalog to repositories the caller may pull.
	Policy authplugin.Policy
	// Registry returns the App's namespace and storage driver (nil: no
	// alias links, catalog left to distribution).
	Registry func() (distribution.Namespace, storagedriver.StorageDriver, error)
	// CatalogMax is catalog.max_entries (distribution's page limit).
	CatalogMax int
	// BodyTimeout bounds reading a manifest body (default 30 s).
	BodyTimeout time.Duration
}

// Wrap serves the OCI additions; every other request goes to next
// unchanged.
func Wrap(next http.Handler, o Options) http.Handler {
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = DefaultBodyTimeout
	}
	return &handler{next: next, Options: o}
}

type handler struct {
	next http.Handler
	Options
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := exchange.From(r.Context())
	if x == nil {
		h.next.ServeHTTP(w, r)
		return
	}
	rt := x.Route
	switch rt.Name {
	case exchange.RouteReferrers:
		h.referrers(w, r, rt.Repository, rt.Digest)
		return
	case v2.RouteNameCatalog:
		if h.Registry != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			h.catalog(w, r, x)
			return
		}
	}
	if h.aliasRequest(w, r, x) {
		return
	}
	if rt.Name == v2.RouteNameManifest && r.Method == http.MethodPut {
		h.putManifest(w, r, x)
		return
	}
	h.next.ServeHTTP(w, r)
}

// authorize asks the access controller, as distribution's dispatcher
// would, before ociext acts on a request itself.
func (h *handler) authorize(w http.ResponseWriter, r *http.Request, repo string, actions ...string) bool {
	access := make([]auth.Access, 0, len(actions))
	for _, a := range actions {
		access = append(access, auth.Access{Resource: auth.Resource{Type: "repository", Name: repo}, Action: a})
	}
	return authplugin.Authorize(w, r, h.Access, access...)
}

// errBodyTooLarge: the body is over MaxManifest.
var errBodyTooLarge = errors.New("manifest larger than 4 MiB")

// readManifest reads a manifest body, at most MaxManifest bytes, with a
// read deadline so a client that stops sending holds nothing for long.
func (h *handler) readManifest(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxManifest {
		return nil, errBodyTooLarge
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(h.BodyTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil, fmt.Errorf("manifest body: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxManifest+1))
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("manifest body not received within %s", h.BodyTimeout)
		}
		return nil, errors.New("could not read manifest body")
	}
	if len(body) > MaxManifest {
		return nil, errBodyTooLarge
	}
	return body, nil
}

// putManifest authorizes the push, reads the body (bounded, with a
// deadline), passes it to distribution and, when the manifest names a
// subject and distribution answered 201, adds OCI-Subject.
func (h *handler) putManifest(w http.ResponseWriter, r *http.Request, x *exchange.Exchange) {
	if !h.authorize(w, r, x.Route.Repository, "pull", "push") {
		return
	}
	body, err := h.readManifest(w, r)
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeManifestInvalid.WithMessage(err.Error()))
		return
	}
	h.pushManifest(w, r, x, body)
}

// pushManifest hands a manifest already read to distribution.
func (h *handler) pushManifest(w http.ResponseWriter, r *http.Request, x *exchange.Exchange, body []byte) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if subject := subjectOf(body); subject != "" {
		x.OnHeader(func(status int, hd http.Header) error {
			if status == http.StatusCreated {
				hd.Set("OCI-Subject", subject)
			}
			return nil
		})
	}
	h.next.ServeHTTP(w, r)
}

// subjectOf returns the digest of a manifest's subject, or "".
func subjectOf(body []byte) string {
	var m struct {
		Subject *struct {
			Digest string `json:"digest"`
		} `json:"subject"`
	}
	if json.Unmarshal(body, &m) != nil || m.Subject == nil {
		return ""
	}
	return m.Subject.Digest
}
