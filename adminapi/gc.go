package adminapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/adminsvc"
	"git.wntrmute.dev/kyle/mcr/store"
)

type gcRequest struct {
	Grace          string `json:"grace"`
	DryRun         bool   `json:"dry_run"`
	RemoveUntagged bool   `json:"remove_untagged"`
}

type gcStarted struct {
	ID int64 `json:"id"`
}

type gcStatus struct {
	LastRun *store.GCRun `json:"last_run"`
	Running bool         `json:"running"`
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

func (a *API) runGC(c echo.Context, reconcile bool) error {
	var body gcRequest
	if err := decodeOptionalJSON(c, &body); err != nil {
		return err
	}
	if q := c.QueryParam("grace"); q != "" {
		if body.Grace != "" && body.Grace != q {
			return errorf(http.StatusBadRequest, "grace given twice (query and body) with different values")
		}
		body.Grace = q
	}
	id, err := a.svc.StartGC(c.Request().Context(), caller(c), reconcile,
		adminsvc.GCOptions{DryRun: body.DryRun, RemoveUntagged: body.RemoveUntagged, Grace: body.Grace})
	if err != nil {
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
	st, err := a.svc.GCStatus(c.Request().Context(), caller(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, gcStatus{Running: st.Running, LastRun: st.LastRun})
}
