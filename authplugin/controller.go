package authplugin

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/distribution/distribution/v3/registry/auth"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/metrics"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
)

// ControllerName is the name the access controller is registered under.
const ControllerName = "mcr"

// Option keys of the access controller. distribution passes the options
// map through verbatim, so the server hands over live objects.
const (
	OptAuthenticator = "authenticator"
	OptPolicy        = "policy"
	OptService       = "service"
	OptHostname      = "hostname"
)

func init() {
	if err := auth.Register(ControllerName, auth.InitFunc(newController)); err != nil {
		panic(err)
	}
}

type controller struct {
	authn    *Authenticator
	policy   Policy
	service  string
	hostname string
}

func newController(opts map[string]any) (auth.AccessController, error) {
	c := &controller{}
	var ok bool
	if c.authn, ok = opts[OptAuthenticator].(*Authenticator); !ok || c.authn == nil {
		return nil, errors.New("mcr access controller: option authenticator missing")
	}
	if c.policy, ok = opts[OptPolicy].(Policy); !ok || c.policy == nil {
		return nil, errors.New("mcr access controller: option policy missing")
	}
	if c.service, ok = opts[OptService].(string); !ok || c.service == "" {
		return nil, errors.New("mcr access controller: option service missing")
	}
	c.hostname, _ = opts[OptHostname].(string)
	return c, nil
}

func scopeOf(access []auth.Access) string {
	var s string
	seen := map[string]bool{}
	for _, a := range access {
		key := a.Type + ":" + a.Name
		if seen[key] {
			continue
		}
		seen[key] = true
		acts := ""
		for _, b := range access {
			if b.Type == a.Type && b.Name == a.Name {
				if acts != "" {
					acts += ","
				}
				acts += b.Action
			}
		}
		if s != "" {
			s += " "
		}
		s += key + ":" + acts
	}
	return s
}

// Authorized implements auth.AccessController: authenticate the bearer,
// evaluate the policy for every access record distribution asks for, and
// check a registry token's grants.
func (c *controller) Authorized(r *http.Request, access ...auth.Access) (*auth.Grant, error) {
	ch := &challenge{hostname: c.hostname, service: c.service, scope: scopeOf(access)}
	token, ok := BearerToken(r)
	if !ok {
		return nil, ch
	}
	id, err := c.authn.Bearer(r.Context(), token)
	if err != nil {
		ch.code = "invalid_token"
		ch.reason = "invalid bearer token"
		metrics.AuthFailures.WithLabelValues("invalid_token").Inc()
		if errors.Is(err, identity.ErrUnavailable) {
			slog.Warn("identity service unavailable while validating a bearer token", "err", err)
		}
		return nil, ch
	}
	st := stateFrom(r.Context())
	if st != nil {
		st.principal = id.Principal
	}
	deny := func(action policyplugin.Action, repo string, rule int64) error {
		if st != nil {
			st.denial = &Denial{Principal: id.Principal, Action: action, Repository: repo, RuleID: rule}
		}
		ch.reason = fmt.Sprintf("denied: %s %s", action, repo)
		return ch
	}
	if len(access) == 0 { // GET /v2/: the version check
		if ok, rule := Allowed(c.policy, id.Principal, policyplugin.ActionVersionCheck, ""); !ok {
			return nil, deny(policyplugin.ActionVersionCheck, "", rule)
		}
	}
	for _, a := range access {
		action, repo, mapped := policyplugin.ActionFor(a.Type, a.Name, a.Action)
		if !mapped {
			return nil, deny(policyplugin.Action(a.Type+":"+a.Action), a.Name, 0)
		}
		if ok, rule := Allowed(c.policy, id.Principal, action, repo); !ok {
			return nil, deny(action, repo, rule)
		}
		if id.Claims != nil && !id.Claims.Allows(a.Type, a.Name, a.Action) {
			ch.code = "insufficient_scope"
			ch.reason = "token does not grant " + a.Type + ":" + a.Name + ":" + a.Action
			return nil, ch
		}
	}
	return &auth.Grant{User: auth.UserInfo{Name: id.Principal.Username}}, nil
}

// NewAccessController returns the `mcr` access controller for handlers MCR
// serves itself in front of distribution (e.g. the referrers API), so they
// authenticate and authorize exactly as distribution's routes do.
func NewAccessController(authn *Authenticator, pol Policy, service, hostname string) auth.AccessController {
	return &controller{authn: authn, policy: pol, service: service, hostname: hostname}
}

// Authorize runs ac for access and, when refused, writes the challenge
// (401, or 403 DENIED through V2Middleware) and returns false.
func Authorize(w http.ResponseWriter, r *http.Request, ac auth.AccessController, access ...auth.Access) bool {
	_, err := ac.Authorized(r, access...)
	if err == nil {
		return true
	}
	var ch auth.Challenge
	if errors.As(err, &ch) {
		ch.SetHeaders(r, w)
		WriteOCIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required", access)
		return false
	}
	WriteOCIError(w, http.StatusBadRequest, "UNAUTHORIZED", "authorization failed", nil)
	return false
}
