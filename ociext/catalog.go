package ociext

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/distribution/v3/registry/auth"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/edge/exchange"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
)

// distribution lists every repository to anyone allowed the catalog at
// all. MCR lists only the repositories the caller may pull (as Harbor
// filters by membership), with distribution's pagination contract: at most
// n names after `last`, and a Link to the next page while there may be
// more.

// defaultCatalogEntries is distribution's page size when n is absent.
const defaultCatalogEntries = 100

// lister is the part of distribution.Namespace the catalog needs.
type lister interface {
	Repositories(ctx context.Context, repos []string, last string) (int, error)
}

func (h *handler) catalog(w http.ResponseWriter, r *http.Request, x *exchange.Exchange) {
	if !authplugin.Authorize(w, r, h.Access, auth.Access{Resource: auth.Resource{Type: "registry", Name: "catalog"}, Action: "*"}) {
		return
	}
	q := r.URL.Query()
	n := min(defaultCatalogEntries, h.CatalogMax)
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > h.CatalogMax {
			_ = errcode.ServeJSON(w, errcode.ErrorCodePaginationNumberInvalid.WithDetail(map[string]string{"n": s}))
			return
		}
		n = v
	}
	ns, _, err := h.Registry()
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithMessage("registry storage unavailable"))
		return
	}
	may := func(repo string) bool {
		ok, _ := authplugin.Allowed(h.Policy, x.Principal, policyplugin.ActionPull, repo)
		return ok
	}
	if x.Principal.IsAdmin() {
		may = func(string) bool { return true }
	}
	repos, more, err := catalogPage(r.Context(), ns, may, n, q.Get("last"))
	if err != nil {
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnknown.WithMessage("could not list repositories"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if more {
		next := url.URL{Path: r.URL.Path, RawQuery: url.Values{"n": {strconv.Itoa(n)}, "last": {repos[len(repos)-1]}}.Encode()}
		w.Header().Set("Link", `<`+next.String()+`>; rel="next"`)
	}
	body, _ := json.Marshal(struct {
		Repositories []string `json:"repositories"`
	}{repos})
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(append(body, '\n'))
	}
}

// catalogPage returns up to n repositories after last that may allows,
// reading the namespace in pages of n, and whether there may be more.
func catalogPage(ctx context.Context, ns lister, may func(string) bool, n int, last string) ([]string, bool, error) {
	out := []string{}
	if n == 0 {
		return out, false, nil
	}
	buf := make([]string, n)
	for {
		filled, err := ns.Repositories(ctx, buf, last)
		done := false
		if err != nil {
			var nf storagedriver.PathNotFoundError
			if !errors.Is(err, io.EOF) && !errors.As(err, &nf) {
				return nil, false, err
			}
			done = true
		}
		for i, repo := range buf[:filled] {
			if !may(repo) {
				continue
			}
			out = append(out, repo)
			if len(out) == n {
				// More may follow: the rest of this page or later ones.
				return out, !done || i < filled-1, nil
			}
		}
		if done || filled == 0 {
			return out, false, nil
		}
		last = buf[filled-1]
	}
}
