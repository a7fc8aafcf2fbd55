package adminapi

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/clientip"
	"git.wntrmute.dev/kyle/mcr/store"
)

// Accounts is what the account endpoints act on: the sign-in throttle of
// this process and the revocation of an account's tokens.
type Accounts interface {
	// Unlock clears an account's failed sign-ins and lockout; it reports
	// whether there was anything to clear.
	Unlock(username string) bool
	// RevokeTokens ends every session, refresh and access token of a
	// subject.
	RevokeTokens(r *http.Request, subject string) error
}

type accountUnlocked struct {
	Username string `json:"username"`
	Unlocked bool   `json:"unlocked"`
}

type tokensRevoked struct {
	Username string `json:"username"`
	Subject  string `json:"subject"`
}

// MaxAccountName bounds an account name in a path.
const MaxAccountName = 256

func (a *API) accountRoutes(admin *echo.Group) {
	if a.opts.Accounts == nil {
		return
	}
	admin.POST("/accounts/:name/unlock", a.unlockAccount)
	admin.POST("/accounts/:name/revoke", a.revokeAccount)
}

func accountName(c echo.Context) (string, error) {
	name := c.Param("name")
	if name == "" || len(name) > MaxAccountName {
		return "", errorf(http.StatusBadRequest, "account name must be 1-256 characters")
	}
	return name, nil
}

// unlockAccount clears the sign-in throttle of an account in this process.
func (a *API) unlockAccount(c echo.Context) error {
	name, err := accountName(c)
	if err != nil {
		return err
	}
	had := a.opts.Accounts.Unlock(name)
	a.adminEvent(c, store.AuditEvent{Type: "account_unlocked", Details: map[string]any{"username": name, "had_failures": had}})
	return c.JSON(http.StatusOK, accountUnlocked{Username: name, Unlocked: had})
}

// revokeAccount ends every token of an account. A local account is found
// by name; an MCIAS account (not stored here) by ?subject=UUID, as the
// audit log shows it.
func (a *API) revokeAccount(c echo.Context) error {
	name, err := accountName(c)
	if err != nil {
		return err
	}
	sub := c.QueryParam("subject")
	if len(sub) > MaxAccountName {
		return errorf(http.StatusBadRequest, "subject too long")
	}
	if sub == "" {
		u, err := a.opts.Store.UserByName(c.Request().Context(), name)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusNotFound, "no local account "+name+" (for an MCIAS account pass ?subject=<uuid>)")
		}
		if err != nil {
			return err
		}
		sub = u.UUID
	}
	if err := a.opts.Accounts.RevokeTokens(c.Request(), sub); err != nil {
		return err
	}
	a.adminEvent(c, store.AuditEvent{Type: "tokens_revoked", Details: map[string]any{"username": name, "subject": sub}})
	return c.JSON(http.StatusOK, tokensRevoked{Username: name, Subject: sub})
}

// adminEvent records an admin operation with its actor.
func (a *API) adminEvent(c echo.Context, ev store.AuditEvent) {
	if a.opts.OnAdminEvent == nil {
		return
	}
	if p := principalOf(c); p != nil {
		ev.ActorID, ev.Actor = p.Subject, p.Username
	}
	ev.IP = clientip.From(c.Request())
	a.opts.OnAdminEvent(c.Request(), ev)
}
