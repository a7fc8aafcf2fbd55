package adminapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token       string             `json:"token"`
	ExpiresAt   string             `json:"expires_at"`
	Username    string             `json:"username"`
	Roles       []string           `json:"roles"`
	AccountType string             `json:"account_type"`
	Principal   identity.Principal `json:"-"`
}

// login exchanges a username and password for an identity token usable as
// a bearer on /v1 and /v2/token.
func (a *API) login(c echo.Context) error {
	var req loginRequest
	if err := decodeJSONLimit(c, &req, maxLoginBody); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusRequestEntityTooLarge {
			// Refused before anything is hashed, logged or audited.
			return errorf(http.StatusBadRequest, "request body too large for a sign-in")
		}
		return err
	}
	if req.Username == "" || req.Password == "" {
		return errorf(http.StatusBadRequest, "username and password are required")
	}
	s, err := a.signIn().Login(c.Request(), req.Username, req.Password)
	if err != nil {
		var te *authplugin.ThrottledError
		switch {
		case errors.Is(err, authplugin.ErrInputTooLong):
			return errorf(http.StatusBadRequest, "username or password too long")
		case errors.As(err, &te):
			c.Response().Header().Set("Retry-After", te.RetryAfterSeconds())
			return errorf(http.StatusTooManyRequests, te.Error())
		case errors.Is(err, identity.ErrUnavailable):
			return errorf(http.StatusBadGateway, "identity service unavailable; try again later")
		}
		return errorf(http.StatusUnauthorized, "invalid username or password")
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, loginResponse{
		Token: s.Token, ExpiresAt: s.ExpiresAt.UTC().Format(time.RFC3339),
		Username: s.Principal.Username, Roles: s.Principal.Roles, AccountType: s.Principal.AccountType,
	})
}

// maxLoginBody bounds a sign-in body: a username and a password, each
// bounded far below it.
const maxLoginBody = 8 << 10

func (a *API) signIn() *authplugin.SignIn {
	if a.opts.SignIn != nil {
		return a.opts.SignIn
	}
	return &authplugin.SignIn{Provider: a.opts.Authn.Provider, Recorder: a.opts.Recorder}
}

// logout revokes the bearer token.
func (a *API) logout(c echo.Context) error {
	tok, ok := authplugin.BearerToken(c.Request())
	if !ok {
		return errorf(http.StatusUnauthorized, "authentication required")
	}
	if err := a.opts.Authn.Provider.Logout(c.Request().Context(), tok); err != nil {
		if errors.Is(err, identity.ErrUnavailable) {
			return errorf(http.StatusBadGateway, "identity service unavailable")
		}
		return errorf(http.StatusUnauthorized, "invalid or expired token")
	}
	// Every refresh token minted with this session goes with it.
	if err := a.opts.Store.RevokeSessionFamilies(c.Request().Context(), authplugin.SessionKey(tok)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
