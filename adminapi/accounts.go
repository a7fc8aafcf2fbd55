package adminapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

type accountUnlocked struct {
	Username string `json:"username"`
	Unlocked bool   `json:"unlocked"`
}

type tokensRevoked struct {
	Username string `json:"username"`
	Subject  string `json:"subject"`
}

// unlockAccount serves POST /v1/accounts/{name}/unlock.
func (a *API) unlockAccount(c echo.Context) error {
	name := c.Param("name")
	had, err := a.svc.UnlockAccount(c.Request().Context(), caller(c), name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, accountUnlocked{Username: name, Unlocked: had})
}

// revokeAccount serves POST /v1/accounts/{name}/revoke[?subject=UUID].
func (a *API) revokeAccount(c echo.Context) error {
	name := c.Param("name")
	sub, err := a.svc.RevokeAccount(c.Request().Context(), caller(c), name, c.QueryParam("subject"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokensRevoked{Username: name, Subject: sub})
}
