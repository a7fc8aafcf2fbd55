package webui

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// dashboardData is the dashboard's content.
type dashboardData struct {
	Pushes      []AuditEvent
	PushesError string
	Recent      []RepoSummary
	Repos       int
	TotalSize   int64
	Tags        int64
	Manifests   int64
	Truncated   bool
}

// maxDashboardPages bounds how many repository pages the dashboard sums.
const maxDashboardPages = 20

func (srv *Server) dashboard(w http.ResponseWriter, r *http.Request, s *Session) error {
	d := &dashboardData{}
	var all []RepoSummary
	last := ""
	for page := 0; ; page++ {
		if page == maxDashboardPages {
			d.Truncated = true
			break
		}
		list, err := srv.api.Repositories(r.Context(), s.Token, "", last, 1000, 0)
		if err != nil {
			return err
		}
		if page == 0 {
			d.Repos = list.Total
		}
		all = append(all, list.Repositories...)
		if list.Next == "" || len(list.Repositories) == 0 {
			break
		}
		last = list.Next
	}
	for _, rp := range all {
		d.TotalSize += rp.TotalSize
		d.Tags += rp.TagCount
		d.Manifests += rp.ManifestCount
	}
	if s.IsAdmin() {
		page, err := srv.api.Audit(r.Context(), s.Token, url.Values{"event_type": {"manifest_pushed"}, "n": {"10"}})
		switch {
		case err == nil:
			d.Pushes = page.Events
		case statusOf(err) == http.StatusUnauthorized:
			return err
		default:
			d.PushesError = err.Error()
		}
	} else {
		sort.SliceStable(all, func(i, j int) bool { return all[i].LastPush.After(all[j].LastPush) })
		if len(all) > 8 {
			all = all[:8]
		}
		d.Recent = all
	}
	srv.render(w, http.StatusOK, "dashboard", srv.newView(w, r, s, "Dashboard", "dashboard", d))
	return nil
}

// reposData is the repository list's content.
type reposData struct {
	Query    string
	List     *RepoList
	PrevURL  string
	NextURL  string
	Page     int
	Pages    int
	First    int
	LastItem int
}

const reposPerPage = 25

func (srv *Server) repositories(w http.ResponseWriter, r *http.Request, s *Session) error {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 256 {
		q = q[:256]
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if page < 1 {
		page = 1
	}
	list, err := srv.api.Repositories(r.Context(), s.Token, q, "", reposPerPage, (page-1)*reposPerPage)
	if err != nil {
		return err
	}
	d := &reposData{Query: q, List: list, Page: page, Pages: (list.Total + reposPerPage - 1) / reposPerPage}
	if d.Pages == 0 {
		d.Pages = 1
	}
	pageURL := func(p int) string {
		v := url.Values{}
		if q != "" {
			v.Set("q", q)
		}
		if p > 1 {
			v.Set("page", strconv.Itoa(p))
		}
		if len(v) == 0 {
			return "/repositories"
		}
		return "/repositories?" + v.Encode()
	}
	if page > 1 {
		d.PrevURL = pageURL(page - 1)
	}
	if page < d.Pages {
		d.NextURL = pageURL(page + 1)
	}
	if n := len(list.Repositories); n > 0 {
		d.First = (page-1)*reposPerPage + 1
		d.LastItem = d.First + n - 1
	}
	v := srv.newView(w, r, s, "Repositories", "repositories", d)
	if hxTarget(r) == "repo-results" {
		srv.partial(w, http.StatusOK, "repositories", "repo-results", v)
		return nil
	}
	srv.render(w, http.StatusOK, "repositories", v)
	return nil
}

var (
	repoNameRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	digestRe   = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)
)

// splitRepoPath splits "team/app/-/manifests/sha256:…" into the name and
// the sub-path after "/-/" (repository name components never are "-").
func splitRepoPath(rest string) (name, sub string) {
	name, sub, _ = strings.Cut(rest, "/-/")
	return strings.Trim(name, "/"), sub
}

func badRepoName(name string) *pageError {
	if len(name) > 60 {
		name = name[:60] + "…"
	}
	return &pageError{Status: http.StatusBadRequest, Title: "Invalid repository name",
		Message: "“" + name + "” is not a valid repository name (lowercase letters, digits and . _ - separators, components joined by /).",
		Hint:    "Pick a repository from the list."}
}

func repoNotFound(name string) *pageError {
	return &pageError{Status: http.StatusNotFound, Title: "Repository not found",
		Message: "There is no repository named “" + name + "”. It may have been deleted, or nothing was pushed to it yet.",
		Hint:    "Pick one from the repository list, or push an image to create it."}
}

func (srv *Server) repositoryGET(w http.ResponseWriter, r *http.Request, s *Session) error {
	name, sub := splitRepoPath(r.PathValue("rest"))
	if !repoNameRe.MatchString(name) {
		return badRepoName(name)
	}
	switch {
	case sub == "":
		return srv.repoDetail(w, r, s, name)
	case strings.HasPrefix(sub, "manifests/"):
		return srv.manifestDetail(w, r, s, name, strings.TrimPrefix(sub, "manifests/"))
	case sub == "delete":
		if !s.IsAdmin() {
			return &pageError{Status: http.StatusForbidden, Title: "Administrators only", Message: "Only administrators can delete repositories."}
		}
		return srv.repoDeleteConfirm(w, r, s, name, "", http.StatusOK)
	}
	return &pageError{Status: http.StatusNotFound, Title: "Page not found", Message: "There is no page at " + r.URL.Path + "."}
}

func (srv *Server) repositoryPOST(w http.ResponseWriter, r *http.Request, s *Session) error {
	name, sub := splitRepoPath(r.PathValue("rest"))
	if !repoNameRe.MatchString(name) {
		return badRepoName(name)
	}
	if sub != "delete" {
		return &pageError{Status: http.StatusNotFound, Title: "Page not found", Message: "There is no action at " + r.URL.Path + "."}
	}
	if strings.TrimSpace(r.PostFormValue("confirm")) != name {
		return srv.repoDeleteConfirm(w, r, s, name, "Type the repository name exactly (“"+name+"”) to confirm the deletion.", http.StatusUnprocessableEntity)
	}
	if err := srv.api.DeleteRepository(r.Context(), s.Token, name); err != nil {
		if statusOf(err) == http.StatusNotFound {
			return repoNotFound(name)
		}
		return err
	}
	srv.redirect(w, r, "/repositories?"+url.Values{"done": {"repo-deleted"}, "name": {name}}.Encode())
	return nil
}

// repoData is the repository page's content.
type repoData struct {
	Repo      *RepoDetail
	Referrers map[string]int
}

func (srv *Server) repoDetail(w http.ResponseWriter, r *http.Request, s *Session, name string) error {
	d, err := srv.api.Repository(r.Context(), s.Token, name)
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return repoNotFound(name)
		}
		return err
	}
	refs := map[string]int{}
	for _, m := range d.Manifests {
		if m.Subject != "" {
			refs[m.Subject]++
		}
	}
	srv.render(w, http.StatusOK, "repository", srv.newView(w, r, s, name, "repositories", &repoData{Repo: d, Referrers: refs}))
	return nil
}

// deleteData is the repository deletion confirm page's content.
type deleteData struct {
	Repo  *RepoDetail
	Error string
}

func (srv *Server) repoDeleteConfirm(w http.ResponseWriter, r *http.Request, s *Session, name, msg string, status int) error {
	d, err := srv.api.Repository(r.Context(), s.Token, name)
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return repoNotFound(name)
		}
		return err
	}
	srv.render(w, status, "repo-delete", srv.newView(w, r, s, "Delete "+name, "repositories", &deleteData{Repo: d, Error: msg}))
	return nil
}

// descriptor is an OCI descriptor as a manifest body holds it.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Variant      string `json:"variant"`
	} `json:"platform"`
	ArtifactType string `json:"artifactType"`
	Size         int64  `json:"size"`
}

// PlatformText is "linux/arm64/v8" for index entries.
func (d descriptor) PlatformText() string {
	if d.Platform == nil {
		return ""
	}
	p := d.Platform.OS + "/" + d.Platform.Architecture
	if d.Platform.Variant != "" {
		p += "/" + d.Platform.Variant
	}
	return p
}

type manifestBody struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *descriptor       `json:"config"`
	Layers       []descriptor      `json:"layers"`
	Subject      *descriptor       `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
	Manifests    []descriptor      `json:"manifests"`
}

// manifestData is the manifest page's content.
type manifestData struct {
	Repo       *RepoDetail
	JSON       string
	FetchError string
	Body       manifestBody
	Referrers  []ManifestInfo
	Subject    string
	PullDigest string
	PullTags   []string
	Info       ManifestInfo
	LayerTotal int64
}

func (srv *Server) manifestDetail(w http.ResponseWriter, r *http.Request, s *Session, name, digest string) error {
	if !digestRe.MatchString(digest) {
		return &pageError{Status: http.StatusBadRequest, Title: "Invalid digest",
			Message: "“" + digest + "” is not a manifest digest (algorithm:hex, e.g. sha256:…).", Hint: "Open a manifest from its repository page."}
	}
	repo, err := srv.api.Repository(r.Context(), s.Token, name)
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return repoNotFound(name)
		}
		return err
	}
	d := &manifestData{Repo: repo}
	found := false
	for _, m := range repo.Manifests {
		if m.Digest == digest {
			d.Info, found = m, true
		}
		if m.Subject == digest {
			d.Referrers = append(d.Referrers, m)
		}
	}
	if !found {
		return &pageError{Status: http.StatusNotFound, Title: "Manifest not found",
			Message: "Repository “" + name + "” has no manifest " + digest + ".", Hint: "It may have been deleted; the repository page lists the current ones."}
	}
	d.Subject = d.Info.Subject
	d.PullDigest = srv.opts.RegistryHost + "/" + name + "@" + digest
	for _, t := range d.Info.Tags {
		d.PullTags = append(d.PullTags, srv.opts.RegistryHost+"/"+name+":"+t)
	}
	body, err := srv.fetchManifest(r, s, name, digest)
	if err != nil {
		var fe *manifestFetchError
		if statusOf(err) == http.StatusUnauthorized && isTokenError(err) && errors.As(err, &fe) {
			return fe.err
		}
		d.FetchError = err.Error()
	} else {
		var pretty bytes.Buffer
		if json.Indent(&pretty, body, "", "  ") == nil {
			d.JSON = pretty.String()
		} else {
			d.JSON = string(body)
		}
		if json.Unmarshal(body, &d.Body) == nil {
			for _, l := range d.Body.Layers {
				d.LayerTotal += l.Size
			}
			if d.Subject == "" && d.Body.Subject != nil {
				d.Subject = d.Body.Subject.Digest
			}
		}
	}
	srv.render(w, http.StatusOK, "manifest", srv.newView(w, r, s, name+"@"+shortDigest(digest), "repositories", d))
	return nil
}

// manifestFetchError says which step of fetching a manifest body failed.
type manifestFetchError struct {
	err  error
	step string
}

func (e *manifestFetchError) Error() string { return e.step + ": " + e.err.Error() }
func (e *manifestFetchError) Unwrap() error { return e.err }

// isTokenError reports whether err came from exchanging the session token
// (the session is no longer good) rather than from the registry itself.
func isTokenError(err error) bool {
	var fe *manifestFetchError
	return errors.As(err, &fe) && fe.step == "registry token"
}

// fetchManifest gets a pull token for the signed-in user and the manifest
// body from the registry API.
func (srv *Server) fetchManifest(r *http.Request, s *Session, name, digest string) ([]byte, error) {
	tok, err := srv.reg.RegistryToken(r.Context(), s.Token, name)
	if err != nil {
		return nil, &manifestFetchError{err, "registry token"}
	}
	body, _, err := srv.reg.Manifest(r.Context(), tok, name, digest)
	if err != nil {
		return nil, &manifestFetchError{err, "could not fetch the manifest from the registry"}
	}
	return body, nil
}
