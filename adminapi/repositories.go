package adminapi

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/adminsvc"
	"git.wntrmute.dev/kyle/mcr/store"
)

type repoList struct {
	Next         string              `json:"next,omitempty"`
	Repositories []store.RepoSummary `json:"repositories"`
	Total        int                 `json:"total"`
	N            int                 `json:"n"`
	Offset       int                 `json:"offset"`
}

func repoName(c echo.Context) string { return strings.Trim(c.Param("*"), "/") }

func (a *API) listRepositories(c echo.Context) error {
	n, offset, err := pageParams(c)
	if err != nil {
		return err
	}
	l, err := a.svc.ListRepositories(c.Request().Context(), caller(c),
		adminsvc.RepoQuery{Q: c.QueryParam("q"), Last: c.QueryParam("last"), N: n, Offset: offset})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, repoList{Repositories: l.Repositories, Total: l.Total, N: l.N, Offset: l.Offset, Next: l.Next})
}

func (a *API) getRepository(c echo.Context) error {
	d, err := a.svc.GetRepository(c.Request().Context(), caller(c), repoName(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, d)
}

func (a *API) deleteRepository(c echo.Context) error {
	if err := a.svc.DeleteRepository(c.Request().Context(), caller(c), repoName(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
