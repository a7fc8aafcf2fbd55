package adminapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/gc"
)

type uploadInfo struct {
	Repository string    `json:"repository"`
	Started    time.Time `json:"started"`
	Modified   time.Time `json:"modified"`
	ID         string    `json:"id"`
	Size       int64     `json:"size"`
	AgeSeconds int64     `json:"age_seconds"`
}

type uploadList struct {
	Uploads    []uploadInfo `json:"uploads"`
	TotalBytes int64        `json:"total_bytes"`
}

type uploadPurgeRequest struct {
	OlderThan string `json:"older_than"`
}

type uploadPurged struct {
	Purged     []uploadInfo `json:"purged"`
	BytesFreed int64        `json:"bytes_freed"`
}

func uploadInfos(ups []gc.Upload, now time.Time) ([]uploadInfo, int64) {
	out := make([]uploadInfo, 0, len(ups))
	var total int64
	for _, u := range ups {
		out = append(out, uploadInfo{Repository: u.Repository, ID: u.ID, Size: u.Size, Started: u.Started,
			Modified: u.Modified, AgeSeconds: int64(u.Age(now).Seconds())})
		total += u.Size
	}
	return out, total
}

// listUploads serves GET /v1/uploads: every upload directory with its
// repository, id, size and age.
func (a *API) listUploads(c echo.Context) error {
	ups, err := a.svc.ListUploads(c.Request().Context(), caller(c))
	if err != nil {
		return err
	}
	infos, total := uploadInfos(ups, time.Now())
	return c.JSON(http.StatusOK, uploadList{Uploads: infos, TotalBytes: total})
}

// purgeUploads serves POST /v1/uploads/purge {"older_than":"24h"} (or
// ?older_than=): removes uploads that started at least that long ago;
// audited uploads_purged.
func (a *API) purgeUploads(c echo.Context) error {
	var body uploadPurgeRequest
	if err := decodeOptionalJSON(c, &body); err != nil {
		return err
	}
	if q := c.QueryParam("older_than"); q != "" {
		if body.OlderThan != "" && body.OlderThan != q {
			return errorf(http.StatusBadRequest, "older_than given twice (query and body) with different values")
		}
		body.OlderThan = q
	}
	purged, err := a.svc.PurgeUploads(c.Request().Context(), caller(c), body.OlderThan)
	if err != nil {
		return err
	}
	infos, freed := uploadInfos(purged, time.Now())
	return c.JSON(http.StatusOK, uploadPurged{Purged: infos, BytesFreed: freed})
}

// reconcileIndex serves POST /v1/index/reconcile: the repository index is
// re-derived from storage where they differ; 200 with what changed;
// audited index_reconciled.
func (a *API) reconcileIndex(c echo.Context) error {
	res, err := a.svc.ReconcileIndex(c.Request().Context(), caller(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}
