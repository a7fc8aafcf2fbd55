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
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" {
		return errorf(http.StatusBadRequest, "username and password are required")
	}
	s, err := a.opts.Authn.Provider.Login(c.Request().Context(), req.Username, req.Password)
	if err != nil {
		if errors.Is(err, identity.ErrUnavailable) {
			if a.opts.Recorder != nil {
				a.opts.Recorder.LoginFailed(c.Request(), req.Username, "identity service unavailable")
			}
			return errorf(http.StatusBadGateway, "identity service unavailable; try again later")
		}
		if a.opts.Recorder != nil {
			a.opts.Recorder.LoginFailed(c.Request(), req.Username, "invalid credentials")
		}
		return errorf(http.StatusUnauthorized, "invalid username or password")
	}
	if a.opts.Recorder != nil {
		a.opts.Recorder.LoginSucceeded(c.Request(), &s.Principal)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, loginResponse{
		Token: s.Token, ExpiresAt: s.ExpiresAt.UTC().Format(time.RFC3339),
		Username: s.Principal.Username, Roles: s.Principal.Roles, AccountType: s.Principal.AccountType,
	})
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
	return c.NoContent(http.StatusNoContent)
}
