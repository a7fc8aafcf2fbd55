package exchange

import (
	"net/http"
	"strings"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
)

// Route names beyond distribution's own (v2.RouteName*).
const (
	RouteReferrers = "referrers" // GET /v2/<name>/referrers/<digest> (ociext)
	RouteToken     = "token"     // /v2/token
	RouteV2Other   = "v2_other"  // under /v2/ but no route of the v2 API
	RouteOther     = "other"     // anything else
)

// v1Resources are the admin API's top-level resources; any other /v1 path
// is "v1_other", so a metric label never carries a client's string.
var v1Resources = map[string]bool{
	"health": true, "auth": true, "repositories": true, "audit": true,
	"policy": true, "gc": true, "snapshot": true,
}

// Route is what a request addresses.
type Route struct {
	// Name is one of distribution's v2 route names, RouteReferrers,
	// RouteToken, "v1_<resource>", RouteV2Other or RouteOther: a fixed set.
	Name string
	// Repository, Reference, Digest and UUID are the route's variables.
	Repository string
	Reference  string // manifests/<reference>: a tag or a digest
	Digest     string // blobs/<digest>, referrers/<digest>
	UUID       string // blobs/uploads/<uuid>
}

// Known reports whether the route is one an API serves (not RouteOther,
// RouteV2Other or v1_other).
func (rt Route) Known() bool {
	switch rt.Name {
	case RouteOther, RouteV2Other, "v1_other":
		return false
	}
	return true
}

// Names is every value Route.Name can take (metric label set).
func Names() []string {
	n := []string{
		v2.RouteNameBase, v2.RouteNameManifest, v2.RouteNameTags, v2.RouteNameBlob,
		v2.RouteNameBlobUpload, v2.RouteNameBlobUploadChunk, v2.RouteNameCatalog,
		RouteReferrers, RouteToken, RouteV2Other, RouteOther, "v1_other",
	}
	for r := range v1Resources {
		n = append(n, "v1_"+r)
	}
	return n
}

// router is distribution's route table (the one its App dispatches with)
// plus the referrers route MCR serves. It is a private copy:
// v2.Router() is shared with the App and must not gain routes.
var router = func() *mux.Router {
	r := v2.RouterWithPrefix("")
	// Loose patterns on purpose: ociext answers NAME_INVALID and
	// DIGEST_INVALID for malformed values instead of a bare 404.
	r.Path("/v2/{name:.+}/referrers/{digest:[^/]+}").Name(RouteReferrers)
	return r
}()

// Classify names the route of r.
func Classify(r *http.Request) Route {
	p := r.URL.Path
	switch {
	case p == "/v2/token":
		return Route{Name: RouteToken}
	case strings.HasPrefix(p, "/v1/"):
		res, _, _ := strings.Cut(strings.TrimPrefix(p, "/v1/"), "/")
		if v1Resources[res] {
			return Route{Name: "v1_" + res}
		}
		return Route{Name: "v1_other"}
	case p != "/v2" && !strings.HasPrefix(p, "/v2/"):
		return Route{Name: RouteOther}
	}
	var m mux.RouteMatch
	if !router.Match(r, &m) || m.Route == nil || m.Route.GetName() == "" {
		return Route{Name: RouteV2Other}
	}
	return Route{
		Name:       m.Route.GetName(),
		Repository: m.Vars["name"],
		Reference:  m.Vars["reference"],
		Digest:     m.Vars["digest"],
		UUID:       m.Vars["uuid"],
	}
}

// NamedDigest reports the digest a route names, if it is one: a blob, a
// manifest by digest, or a referrers subject.
func (rt Route) NamedDigest() digest.Digest {
	s := rt.Digest
	if s == "" {
		s = rt.Reference
	}
	if !strings.Contains(s, ":") {
		return ""
	}
	d, err := digest.Parse(s)
	if err != nil {
		return ""
	}
	return d
}
