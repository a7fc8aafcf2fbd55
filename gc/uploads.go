package gc

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// Upload is one upload in progress or abandoned: a directory
// repositories/<repo>/_uploads/<id>/ holding its data, its start time
// (startedat) and hash states.
type Upload struct {
	Repository string    `json:"repository"`
	Started    time.Time `json:"started"`
	// Modified is the newest modification time inside the directory (the
	// last byte received).
	Modified time.Time `json:"modified"`
	ID       string    `json:"id"`
	Size     int64     `json:"size"`
}

// Age is how long ago the upload started (or was last written, when its
// start time is unreadable) at now.
func (u Upload) Age(now time.Time) time.Duration {
	if !u.Started.IsZero() {
		return now.Sub(u.Started)
	}
	return now.Sub(u.Modified)
}

// ListUploads lists every upload directory, sorted by repository and id.
// Unlike distribution's PurgeUploads walk, an upload whose startedat is
// missing or unreadable (a start that hit a full disk) is listed too, aged
// by its newest file.
func ListUploads(ctx context.Context, d storagedriver.StorageDriver) ([]Upload, error) {
	var out []Upload
	err := walk(ctx, d, reposRoot, func(fi storagedriver.FileInfo) (bool, error) {
		if !fi.IsDir() {
			return false, nil
		}
		base := path.Base(fi.Path())
		switch base {
		case "_layers", "_manifests":
			return false, nil
		case "_uploads":
			ups, err := readUploads(ctx, d, fi.Path())
			if err != nil {
				return false, err
			}
			out = append(out, ups...)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("gc: listing uploads: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Repository != out[j].Repository {
			return out[i].Repository < out[j].Repository
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func readUploads(ctx context.Context, d storagedriver.StorageDriver, dir string) ([]Upload, error) {
	repo := strings.TrimSuffix(strings.TrimPrefix(dir, reposRoot+"/"), "/_uploads")
	ids, err := d.List(ctx, dir)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []Upload
	for _, p := range ids {
		u := Upload{Repository: repo, ID: path.Base(p)}
		fi, err := d.Stat(ctx, p)
		if err != nil {
			if isNotFound(err) {
				continue // finished meanwhile
			}
			return nil, err
		}
		u.Modified = fi.ModTime()
		if err := walk(ctx, d, p, func(fi storagedriver.FileInfo) (bool, error) {
			if fi.ModTime().After(u.Modified) {
				u.Modified = fi.ModTime()
			}
			switch path.Base(fi.Path()) {
			case "data":
				if !fi.IsDir() && path.Dir(fi.Path()) == p {
					u.Size = fi.Size()
				}
			case "startedat":
				if b, err := d.GetContent(ctx, fi.Path()); err == nil {
					if t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b))); err == nil {
						u.Started = t
					}
				}
			}
			return true, nil
		}); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// PurgeUploads removes the upload directories older than olderThan at now
// (see Upload.Age) and returns them. An upload still being written is
// removed too if it started that long ago: its client gets
// BLOB_UPLOAD_UNKNOWN and must start over.
func PurgeUploads(ctx context.Context, d storagedriver.StorageDriver, olderThan time.Duration, now time.Time) ([]Upload, error) {
	all, err := ListUploads(ctx, d)
	if err != nil {
		return nil, err
	}
	var purged []Upload
	for _, u := range all {
		if u.Age(now) < olderThan {
			continue
		}
		if err := d.Delete(ctx, path.Join(repoDir(u.Repository), "_uploads", u.ID)); err != nil && !isNotFound(err) {
			return purged, fmt.Errorf("gc: purging upload %s of %s: %w", u.ID, u.Repository, err)
		}
		purged = append(purged, u)
	}
	return purged, nil
}
