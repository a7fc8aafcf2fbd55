package authplugin

import (
	"fmt"
	"net/http"
	"strings"
)

// challenge is the auth.Challenge distribution answers with 401; it names
// the token realm on the host the client used.
type challenge struct {
	hostname string // configured external host; empty = request Host
	service  string
	scope    string
	code     string // "", "invalid_token", "insufficient_scope"
	reason   string
}

func (c *challenge) Error() string {
	if c.reason == "" {
		return "authentication required"
	}
	return c.reason
}

// Realm is the token endpoint URL for r.
func Realm(r *http.Request, hostname string) string {
	host := hostname
	if host == "" {
		host = r.Host
	}
	return "https://" + host + "/v2/token"
}

// SetHeaders implements auth.Challenge.
func (c *challenge) SetHeaders(r *http.Request, w http.ResponseWriter) {
	var b strings.Builder
	fmt.Fprintf(&b, "Bearer realm=%q,service=%q", Realm(r, c.hostname), c.service)
	if c.scope != "" {
		fmt.Fprintf(&b, ",scope=%q", c.scope)
	}
	if c.code != "" {
		fmt.Fprintf(&b, ",error=%q", c.code)
	}
	w.Header().Set("WWW-Authenticate", b.String())
}
