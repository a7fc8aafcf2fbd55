package authplugin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/distribution/v3/registry/auth"

	"git.wntrmute.dev/kyle/mcr/edge/exchange"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
)

// ControllerName is the name the access controller is registered under.
const ControllerName = "mcr"

// OptController is the option key under which the server hands distribution
// the one Controller instance (distribution passes options verbatim), so
// distribution's routes and MCR's own (referrers, catalog, manifest
// pre-authorization) are judged by the same object.
const OptController = "controller"

func init() {
	if err := auth.Register(ControllerName, auth.InitFunc(func(opts map[string]any) (auth.AccessController, error) {
		c, ok := opts[OptController].(*Controller)
		if !ok || c == nil {
			return nil, errors.New("mcr access controller: option controller missing")
		}
		return c, nil
	})); err != nil {
		panic(err)
	}
}

// Controller is the `mcr` access controller. It authenticates nothing: the
// edge has verified the bearer and put the identity into the exchange; the
// controller evaluates the policy (and a registry token's grants) for each
// access record distribution asks about.
type Controller struct {
	policy   Policy
	service  string
	hostname string
}

// NewAccessController returns the controller for pol. service and hostname
// shape the challenge of a refused request.
func NewAccessController(pol Policy, service, hostname string) *Controller {
	return &Controller{policy: pol, service: service, hostname: hostname}
}

func scopeOf(access []auth.Access) string {
	var parts []string
	seen := map[string]bool{}
	for _, a := range access {
		key := a.Type + ":" + a.Name
		if seen[key] {
			continue
		}
		seen[key] = true
		var acts []string
		for _, b := range access {
			if b.Type == a.Type && b.Name == a.Name {
				acts = append(acts, b.Action)
			}
		}
		parts = append(parts, key+":"+strings.Join(acts, ","))
	}
	return strings.Join(parts, " ")
}

// Authorized implements auth.AccessController: the policy for every access
// record, then a registry token's grants. A denial is noted in the
// exchange (the edge answers it 403 DENIED); the returned error is a
// Challenge because distribution turns any other error into a bare 400.
func (c *Controller) Authorized(r *http.Request, access ...auth.Access) (*auth.Grant, error) {
	ch := &challenge{hostname: c.hostname, service: c.service, scope: scopeOf(access)}
	x := exchange.From(r.Context())
	if !x.Authenticated() { // the edge answers before this; never trust a request it did not see
		return nil, ch
	}
	p := x.Principal
	deny := func(action policyplugin.Action, repo string, rule int64) error {
		x.Denial = &exchange.Denial{Principal: p, Action: action, Repository: repo, RuleID: rule}
		ch.reason = fmt.Sprintf("denied: %s %s", action, repo)
		return ch
	}
	if len(access) == 0 { // GET /v2/: the version check
		if ok, rule := Allowed(c.policy, p, policyplugin.ActionVersionCheck, ""); !ok {
			return nil, deny(policyplugin.ActionVersionCheck, "", rule)
		}
	}
	for _, a := range access {
		action, repo, mapped := policyplugin.ActionFor(a.Type, a.Name, a.Action)
		if !mapped {
			return nil, deny(policyplugin.Action(a.Type+":"+a.Action), a.Name, 0)
		}
		if ok, rule := Allowed(c.policy, p, action, repo); !ok {
			return nil, deny(action, repo, rule)
		}
		if x.Claims != nil && !x.Claims.Allows(a.Type, a.Name, a.Action) {
			ch.code = "insufficient_scope"
			ch.reason = "token does not grant " + a.Type + ":" + a.Name + ":" + a.Action
			return nil, ch
		}
	}
	return &auth.Grant{User: auth.UserInfo{Name: p.Username}}, nil
}

// Authorize runs ac for access, as distribution's dispatcher does, for the
// handlers MCR serves itself in front of distribution; when refused it
// writes the challenge (401, or 403 DENIED through the edge) and returns
// false.
func Authorize(w http.ResponseWriter, r *http.Request, ac auth.AccessController, access ...auth.Access) bool {
	_, err := ac.Authorized(r, access...)
	if err == nil {
		return true
	}
	var ch auth.Challenge
	if errors.As(err, &ch) {
		ch.SetHeaders(r, w)
		_ = errcode.ServeJSON(w, errcode.ErrorCodeUnauthorized.WithDetail(access))
		return false
	}
	w.WriteHeader(http.StatusBadRequest) // what distribution answers
	return false
}
