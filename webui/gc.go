package webui

import (
	"net/http"
	"net/url"
	"strconv"
)

// gcData is the garbage collection page's content.
type gcData struct {
	Status      *GCStatus
	Message     string
	Error       string
	Unavailable bool
}

// Duration is how long the last run took, when it finished.
func (d *gcData) Duration() string {
	if d.Status == nil || d.Status.LastRun == nil || d.Status.LastRun.Duration() == 0 {
		return ""
	}
	return d.Status.LastRun.Duration().Round(1e6).String()
}

// loadGC reads the status; a 404 means this mcrsrv has no GC endpoints.
func (srv *Server) loadGC(r *http.Request, s *Session) (*gcData, error) {
	st, err := srv.api.GCStatus(r.Context(), s.Token)
	switch {
	case err == nil:
		return &gcData{Status: st}, nil
	case statusOf(err) == http.StatusNotFound || statusOf(err) == http.StatusNotImplemented:
		return &gcData{Unavailable: true}, nil
	}
	return nil, err
}

func (srv *Server) gcPage(w http.ResponseWriter, r *http.Request, s *Session) error {
	d, err := srv.loadGC(r, s)
	if err != nil {
		return err
	}
	srv.render(w, http.StatusOK, "gc", srv.newView(w, r, s, "Garbage collection", "gc", d))
	return nil
}

func (srv *Server) gcStatus(w http.ResponseWriter, r *http.Request, s *Session) error {
	d, err := srv.loadGC(r, s)
	if err != nil {
		return err
	}
	if !isHTMX(r) {
		srv.redirect(w, r, "/gc")
		return nil
	}
	srv.partial(w, http.StatusOK, "gc", "gc-status", srv.newView(w, r, s, "Garbage collection", "gc", d))
	return nil
}

func (srv *Server) gcStart(w http.ResponseWriter, r *http.Request, s *Session) error {
	reconcile := r.PostFormValue("mode") == "reconcile"
	opts := GCOptions{DryRun: r.PostFormValue("dry_run") != "", RemoveUntagged: r.PostFormValue("remove_untagged") != ""}
	id, err := srv.api.StartGC(r.Context(), s.Token, reconcile, opts)
	var msg, errMsg string
	switch {
	case err == nil:
		msg = "Garbage collection started"
		if reconcile {
			msg = "Storage reconciliation started"
		}
		if id != 0 {
			msg += " (run " + strconv.FormatInt(id, 10) + ")"
		}
		if opts.DryRun {
			msg += " as a dry run: nothing will be deleted"
		}
		msg += "."
	case statusOf(err) == http.StatusConflict:
		errMsg = "A garbage collection is already running; wait for it to finish."
	case statusOf(err) == http.StatusNotFound || statusOf(err) == http.StatusNotImplemented:
	case statusOf(err) == http.StatusBadRequest:
		errMsg = "The registry refused to start: " + messageOf(err) + "."
	default:
		return err
	}
	if !isHTMX(r) {
		if err == nil && !reconcile && !opts.DryRun {
			srv.redirect(w, r, "/gc?"+url.Values{"done": {"gc-started"}, "name": {strconv.FormatInt(id, 10)}}.Encode())
			return nil
		}
	}
	d, lerr := srv.loadGC(r, s)
	if lerr != nil {
		return lerr
	}
	d.Message, d.Error = msg, errMsg
	status := http.StatusOK
	switch {
	case statusOf(err) == http.StatusConflict:
		status = http.StatusConflict
	case errMsg != "":
		status = http.StatusBadRequest
	}
	v := srv.newView(w, r, s, "Garbage collection", "gc", d)
	if isHTMX(r) {
		srv.partial(w, status, "gc", "gc-status", v)
		return nil
	}
	srv.render(w, status, "gc", v)
	return nil
}
