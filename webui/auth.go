package webui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// loginData is the sign-in page's content.
type loginData struct {
	Username string
	Next     string
	Error    string
	Notice   string
}

// safeNext keeps only local paths, so the sign-in page cannot be used to
// send a user to another site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/login") ||
		strings.ContainsRune(next, '\\') {
		return "/"
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f {
			// Browsers drop tabs and newlines: "/\t/evil" would become "//evil".
			return "/"
		}
	}
	return next
}

func (srv *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if srv.session(r) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	d := &loginData{Next: r.URL.Query().Get("next")}
	switch {
	case r.URL.Query().Get("expired") != "":
		d.Notice = "Your session has expired or was revoked. Sign in again to continue."
	case r.URL.Query().Get("out") != "":
		d.Notice = "You are signed out."
	}
	srv.render(w, http.StatusOK, "login", srv.newView(w, r, nil, "Sign in", "", d))
}

func (srv *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	d := &loginData{Username: strings.TrimSpace(r.PostFormValue("username")), Next: r.PostFormValue("next")}
	again := func(status int, msg string) {
		d.Error = msg
		srv.render(w, status, "login", srv.newView(w, r, nil, "Sign in", "", d))
	}
	if !srv.checkCSRF(r, "") {
		again(http.StatusForbidden, "This sign-in form expired (its security token was missing or stale). Please try again.")
		return
	}
	password := r.PostFormValue("password")
	if d.Username == "" || password == "" {
		again(http.StatusBadRequest, "Enter your username and password.")
		return
	}
	if len(d.Username) > MaxUsername || len(password) > MaxPassword {
		again(http.StatusBadRequest, "That username or password is too long.")
		return
	}
	res, err := srv.api.Login(WithClientIP(r.Context(), srv.clientIP(r)), d.Username, password)
	if err != nil {
		var ue *UnreachableError
		var ae *APIError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
			if ae.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
			}
			again(http.StatusTooManyRequests, fmt.Sprintf("Too many failed sign-ins. Try again in %s.", waitText(ae.RetryAfter)))
		case statusOf(err) == http.StatusUnauthorized:
			again(http.StatusUnauthorized, "Wrong username or password.")
		case statusOf(err) == http.StatusBadGateway:
			again(http.StatusBadGateway, "The identity service is unavailable right now; try again in a moment.")
		case errors.As(err, &ue):
			srv.log.Warn("mcr-web: login: api unreachable", "err", err)
			again(http.StatusBadGateway, "mcr-web cannot reach the registry at "+ue.URL+". Check that mcrsrv is running.")
		default:
			srv.log.Warn("mcr-web: login failed", "err", err)
			again(http.StatusBadGateway, "Sign-in failed: "+err.Error())
		}
		return
	}
	if guestOnly(res.Roles) {
		// Guests may not use the dashboard: give the token back at once.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		defer cancel()
		_ = srv.api.Logout(ctx, res.Token)
		again(http.StatusForbidden, "Guest accounts cannot use the web dashboard. Ask an administrator to give your account the user or admin role.")
		return
	}
	s := &Session{ID: newSessionID(), Token: res.Token, Username: res.Username, Roles: res.Roles, AccountType: res.AccountType}
	if s.Username == "" {
		s.Username = d.Username
	}
	if t, err := time.Parse(time.RFC3339, res.ExpiresAt); err == nil {
		s.Expires = t
	} else {
		s.Expires = srv.now().Add(8 * time.Hour)
	}
	if _, err := srv.setSession(w, s); err != nil {
		again(http.StatusInternalServerError, "Could not start a session: "+err.Error())
		return
	}
	http.Redirect(w, r, safeNext(d.Next), http.StatusSeeOther)
}

// Bounds on what the sign-in form passes on (mcrsrv enforces the same).
const (
	MaxUsername = 256
	MaxPassword = 1024
)

// waitText says how long to wait, in words.
func waitText(seconds int) string {
	switch {
	case seconds <= 1:
		return "a moment"
	case seconds < 120:
		return fmt.Sprintf("%d seconds", seconds)
	default:
		return fmt.Sprintf("%d minutes", (seconds+59)/60)
	}
}

// clientIP is the browser's address as mcr-web sees it: the peer, or the
// forwarded client when the peer is one of web.trusted_proxies.
func (srv *Server) clientIP(r *http.Request) string {
	return srv.opts.ClientIP.Resolve(r)
}

func (srv *Server) logout(w http.ResponseWriter, r *http.Request) {
	s := srv.session(r)
	if s == nil {
		srv.clearSession(w)
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	if !srv.checkCSRF(r, s.ID) {
		srv.errorPage(w, r, s, &pageError{Status: http.StatusForbidden, Title: "Request refused",
			Message: "The sign-out form did not carry a valid security token (CSRF protection); you are still signed in.",
			Hint:    "Reload the page and use Sign out again."})
		return
	}
	if err := srv.api.Logout(r.Context(), s.Token); err != nil && statusOf(err) != http.StatusUnauthorized {
		srv.log.Warn("mcr-web: logout: token not revoked", "user", s.Username, "err", err)
	}
	srv.clearSession(w)
	http.SetCookie(w, srv.cookie(csrfCookie, "", -1))
	http.Redirect(w, r, "/login?out=1", http.StatusSeeOther)
}
