package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/gc"
	"git.wntrmute.dev/kyle/mcr/store"
)

// GCService runs garbage collection; *gc.Runner implements it.
type GCService interface {
	// Start begins a run in the background and returns its id, or an
	// error wrapping gc.ErrRunning.
	Start(req gc.Request) (int64, error)
	// Status reports whether a run is in progress and the newest run.
	Status(ctx context.Context) (bool, *store.GCRun, error)
}

type gcRequest struct {
	DryRun         bool   `json:"dry_run"`
	RemoveUntagged bool   `json:"remove_untagged"`
	Grace          string `json:"grace"`
}

type gcStarted struct {
	ID int64 `json:"id"`
}

type gcStatus struct {
	Running bool         `json:"running"`
	LastRun *store.GCRun `json:"last_run"`
}

// decodeOptionalJSON is decodeJSON for bodies that may be absent.
func decodeOptionalJSON(c echo.Context, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, 1<<20))
	if err != nil {
		return errorf(http.StatusBadRequest, "reading request body: "+err.Error())
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, fmt.Sprintf("malformed JSON: %v", err))
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "malformed JSON: trailing data after object")
	}
	return nil
}

func (a *API) gcRequest(c echo.Context, reconcile bool) (gc.Request, error) {
	var body gcRequest
	if err := decodeOptionalJSON(c, &body); err != nil {
		return gc.Request{}, err
	}
	if q := c.QueryParam("grace"); q != "" {
		if body.Grace != "" && body.Grace != q {
			return gc.Request{}, errorf(http.StatusBadRequest, "grace given twice (query and body) with different values")
		}
		body.Grace = q
	}
	p := principalOf(c)
	req := gc.Request{Options: gc.Options{DryRun: body.DryRun, RemoveUntagged: body.RemoveUntagged},
		Reconcile: reconcile, IP: authplugin.ClientIP(c.Request())}
	if body.Grace != "" {
		if reconcile {
			return gc.Request{}, errorf(http.StatusBadRequest, "grace applies to /v1/gc only, not to reconcile")
		}
		g, err := time.ParseDuration(body.Grace)
		if err != nil || g < 0 {
			return gc.Request{}, errorf(http.StatusBadRequest, "grace: want a non-negative duration such as 0s, 10m or 1h, got "+quote(body.Grace))
		}
		req.Grace = &g
	}
	if p != nil {
		req.ActorID, req.Actor = p.Subject, p.Username
	}
	return req, nil
}

func (a *API) runGC(c echo.Context, reconcile bool) error {
	req, err := a.gcRequest(c, reconcile)
	if err != nil {
		return err
	}
	id, err := a.opts.GC.Start(req)
	if err != nil {
		if errors.Is(err, gc.ErrRunning) {
			return errorf(http.StatusConflict, err.Error())
		}
		return err
	}
	return c.JSON(http.StatusAccepted, gcStarted{ID: id})
}

// startGC serves POST /v1/gc: body optional {"dry_run","remove_untagged",
// "grace"} (grace also as ?grace=);
// 202 {"id"}, 409 while a run is in progress.
func (a *API) startGC(c echo.Context) error { return a.runGC(c, false) }

// startReconcile serves POST /v1/gc/reconcile (same contract as /v1/gc).
func (a *API) startReconcile(c echo.Context) error { return a.runGC(c, true) }

// gcStatus serves GET /v1/gc/status: {"running":bool,"last_run":{...}|null}.
func (a *API) gcStatus(c echo.Context) error {
	running, last, err := a.opts.GC.Status(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, gcStatus{Running: running, LastRun: last})
}
