package adminapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/authplugin"
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token       string   `json:"token"`
	ExpiresAt   string   `json:"expires_at"`
	Username    string   `json:"username"`
	AccountType string   `json:"account_type"`
	Roles       []string `json:"roles"`
}

// login exchanges a username and password for an identity token usable as
// a bearer on /v1 and /v2/token.
func (a *API) login(c echo.Context) error {
	var req loginRequest
	if err := decodeJSONLimit(c, &req, maxLoginBody); err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge {
			// Refused before anything is hashed, logged or audited.
			return errorf(http.StatusBadRequest, "request body too large for a sign-in")
		}
		return err
	}
	s, err := a.svc.Login(c.Request().Context(), caller(c), req.Username, req.Password)
	if err != nil {
		return err
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

// logout revokes the bearer token.
func (a *API) logout(c echo.Context) error {
	tok, _ := authplugin.BearerToken(c.Request())
	if err := a.svc.Logout(c.Request().Context(), tok); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
