package adminapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/distribution/reference"
	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
)

// RepoDeleter removes a repository (every manifest and tag) through
// distribution and records repo_deleted for actor.
type RepoDeleter func(ctx context.Context, name string, actor *identity.Principal, ip string) error

type repoList struct {
	Repositories any    `json:"repositories"`
	Total        int    `json:"total"`
	N            int    `json:"n"`
	Offset       int    `json:"offset"`
	Next         string `json:"next,omitempty"`
}

func repoName(c echo.Context) (string, error) {
	name := strings.Trim(c.Param("*"), "/")
	if name == "" {
		return "", errorf(http.StatusBadRequest, "repository name is required")
	}
	if _, err := reference.WithName(name); err != nil || strings.Contains(name, "..") {
		return "", errorf(http.StatusBadRequest, "invalid repository name "+quote(name))
	}
	return name, nil
}

func quote(s string) string {
	if len(s) > 256 {
		s = s[:256] + "…"
	}
	return `"` + s + `"`
}

func (a *API) listRepositories(c echo.Context) error {
	n, offset, err := pageParams(c, 50, 1000)
	if err != nil {
		return err
	}
	repos, total, err := a.opts.Store.ListRepositories(c.Request().Context(), c.QueryParam("q"), c.QueryParam("last"), n, offset)
	if err != nil {
		return err
	}
	out := repoList{Repositories: repos, Total: total, N: n, Offset: offset}
	if len(repos) == n {
		out.Next = repos[len(repos)-1].Name
	}
	return c.JSON(http.StatusOK, out)
}

func (a *API) getRepository(c echo.Context) error {
	name, err := repoName(c)
	if err != nil {
		return err
	}
	d, err := a.opts.Store.Repository(c.Request().Context(), name)
	if err != nil {
		return storeErr(err, "repository "+quote(name))
	}
	return c.JSON(http.StatusOK, d)
}

func (a *API) deleteRepository(c echo.Context) error {
	name, err := repoName(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := a.opts.Store.Repository(ctx, name); err != nil {
		return storeErr(err, "repository "+quote(name))
	}
	if a.opts.DeleteRepository == nil {
		return errorf(http.StatusNotImplemented, "repository deletion is not available")
	}
	if err := a.opts.DeleteRepository(ctx, name, principalOf(c), authplugin.ClientIP(c.Request())); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
