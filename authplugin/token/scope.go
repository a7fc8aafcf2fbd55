package token

import (
	"fmt"
	"strings"
)

// Scope is one requested `type:name:actions` scope of the token spec.
type Scope struct {
	Type    string
	Name    string
	Actions []string
}

func (s Scope) String() string {
	return s.Type + ":" + s.Name + ":" + strings.Join(s.Actions, ",")
}

// Bounds on what a token request may ask for: a docker push names a few
// repositories; these leave room for many more and still refuse a flood
// before any work is done for it.
const (
	MaxScopeBytes = 16 << 10
	MaxScopes     = 64
)

// ParseScopes parses scope parameters; each may hold several scopes
// separated by spaces. The name sits between the first and last colon, so
// a `host:port/repo` style name survives.
func ParseScopes(params []string) ([]Scope, error) {
	total := 0
	for _, p := range params {
		total += len(p)
	}
	if total > MaxScopeBytes {
		return nil, fmt.Errorf("scope too long: %d bytes, at most %d", total, MaxScopeBytes)
	}
	var out []Scope
	for _, p := range params {
		for _, s := range strings.Fields(p) {
			first := strings.IndexByte(s, ':')
			last := strings.LastIndexByte(s, ':')
			if first <= 0 || last == first || last == len(s)-1 {
				return nil, fmt.Errorf("malformed scope %q: want type:name:actions", s)
			}
			typ := s[:first]
			if i := strings.IndexByte(typ, '('); i > 0 { // "repository(plugin)"
				typ = typ[:i]
			}
			sc := Scope{Type: typ, Name: s[first+1 : last]}
			for _, a := range strings.Split(s[last+1:], ",") {
				if a = strings.TrimSpace(a); a != "" {
					sc.Actions = append(sc.Actions, a)
				}
			}
			if sc.Name == "" || len(sc.Actions) == 0 {
				return nil, fmt.Errorf("malformed scope %q: want type:name:actions", s)
			}
			if len(out) == MaxScopes {
				return nil, fmt.Errorf("too many scopes: at most %d", MaxScopes)
			}
			out = append(out, sc)
		}
	}
	return out, nil
}
