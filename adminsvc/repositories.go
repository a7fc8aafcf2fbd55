package adminsvc

import (
	"context"
	"errors"
	"strings"

	"github.com/distribution/reference"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
	"git.wntrmute.dev/kyle/mcr/store"
)

// Repository list paging: default and maximum page size.
const (
	RepoPageDefault = 50
	RepoPageMax     = 1000
)

// RepoQuery selects a page of repositories: names containing Q, after
// Last (keyset) or at Offset. N 0 means RepoPageDefault.
type RepoQuery struct {
	Q, Last   string
	N, Offset int
}

// RepoList is a page of repositories. Total counts every repository the
// caller may see that matches the query; Next is the Last of the next
// page, empty on a short page.
type RepoList struct {
	Next         string
	Repositories []store.RepoSummary
	Total        int
	N, Offset    int
}

// CheckRepoName validates a repository name from a path or a request.
func CheckRepoName(name string) error {
	if name == "" {
		return Errorf(InvalidArgument, "repository name is required")
	}
	if _, err := reference.WithName(name); err != nil || strings.Contains(name, "..") {
		return Errorf(InvalidArgument, "invalid repository name %s", Quote(name))
	}
	return nil
}

// CheckPage validates paging parameters; n 0 means def.
func CheckPage(n, offset, def, most int) (int, error) {
	switch {
	case n == 0:
		n = def
	case n < 0:
		return 0, Errorf(InvalidArgument, "n: must be a positive integer")
	case n > most:
		return 0, Errorf(InvalidArgument, "n: must be at most %d", most)
	}
	if offset < 0 {
		return 0, Errorf(InvalidArgument, "offset: must be a non-negative integer")
	}
	return n, nil
}

// mayPull applies the policy to a repository read exactly as /v2 does
// for a pull: admins bypass it, everyone else needs registry:pull.
func (s *Service) mayPull(p *identity.Principal, repo string) bool {
	if p.IsAdmin() {
		return true
	}
	if s.opts.Policy == nil {
		return false
	}
	ok, _ := authplugin.Allowed(s.opts.Policy, p, policyplugin.ActionPull, repo)
	return ok
}

// ListRepositories returns the page of repositories the caller may pull.
func (s *Service) ListRepositories(ctx context.Context, c Caller, q RepoQuery) (*RepoList, error) {
	if err := RequireUser(c.Principal); err != nil {
		return nil, err
	}
	n, err := CheckPage(q.N, q.Offset, RepoPageDefault, RepoPageMax)
	if err != nil {
		return nil, err
	}
	var repos []store.RepoSummary
	var total int
	if c.Principal.IsAdmin() {
		repos, total, err = s.opts.Store.ListRepositories(ctx, q.Q, q.Last, n, q.Offset)
	} else {
		repos, total, err = s.visibleRepositories(ctx, c.Principal, q, n)
	}
	if err != nil {
		return nil, internal("listing repositories failed", err)
	}
	out := &RepoList{Repositories: repos, Total: total, N: n, Offset: q.Offset}
	if len(repos) == n {
		out.Next = repos[len(repos)-1].Name
	}
	return out, nil
}

// visibleRepositories pages through the index in name order and keeps
// what p may pull, so Total, Offset and Next count visible repositories
// only (a hidden name must not shift a page or leak through a count). It
// reads every matching name once per call: the index holds a summary row
// per repository, and the policy is evaluated in memory without
// allocation.
func (s *Service) visibleRepositories(ctx context.Context, p *identity.Principal, q RepoQuery, n int) ([]store.RepoSummary, int, error) {
	const batch = 1000
	out := []store.RepoSummary{}
	total, skipped := 0, 0
	after := ""
	for {
		rows, err := s.opts.Store.ScanRepositories(ctx, q.Q, after, batch)
		if err != nil {
			return nil, 0, err
		}
		for _, r := range rows {
			if !s.mayPull(p, r.Name) {
				continue
			}
			total++
			if q.Last != "" && r.Name <= q.Last {
				continue
			}
			if skipped < q.Offset {
				skipped++
				continue
			}
			if len(out) < n {
				out = append(out, r)
			}
		}
		if len(rows) < batch {
			return out, total, nil
		}
		after = rows[len(rows)-1].Name
	}
}

// GetRepository returns a repository with its tags and manifests. A
// repository the caller may not pull is NotFound, like one that does not
// exist, so its name does not leak either.
func (s *Service) GetRepository(ctx context.Context, c Caller, name string) (*store.RepoDetail, error) {
	if err := RequireUser(c.Principal); err != nil {
		return nil, err
	}
	if err := CheckRepoName(name); err != nil {
		return nil, err
	}
	if !s.mayPull(c.Principal, name) {
		return nil, Errorf(NotFound, "repository %s not found", Quote(name))
	}
	d, err := s.opts.Store.Repository(ctx, name)
	if err != nil {
		return nil, storeErr(err, "repository "+Quote(name))
	}
	return d, nil
}

// DeleteRepository removes a repository (admins only).
func (s *Service) DeleteRepository(ctx context.Context, c Caller, name string) error {
	if err := RequireAdmin(c.Principal); err != nil {
		return err
	}
	if err := CheckRepoName(name); err != nil {
		return err
	}
	if _, err := s.opts.Store.Repository(ctx, name); err != nil {
		return storeErr(err, "repository "+Quote(name))
	}
	if s.opts.DeleteRepository == nil {
		return Errorf(Unimplemented, "repository deletion is not available")
	}
	if err := s.opts.DeleteRepository(ctx, name, c.Principal, c.IP); err != nil {
		return internal("deleting repository "+Quote(name)+" failed", err)
	}
	return nil
}

// storeErr maps the store's not-found to NotFound naming what.
func storeErr(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return Errorf(NotFound, "%s not found", what)
	}
	return internal("reading "+what+" failed", err)
}
