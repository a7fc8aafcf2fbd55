package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Index operation kinds.
const (
	OpManifestPut    = "manifest_put"
	OpManifestDelete = "manifest_delete"
	OpTagDelete      = "tag_delete"
	OpRepoDelete     = "repo_delete"
	// OpRepoPut records a repository that exists on storage without
	// manifests (every manifest deleted): /v2/_catalog lists it, so the
	// index does too.
	OpRepoPut = "repo_put"
)

// Ref is a descriptor a manifest references (config, layer, child manifest).
type Ref struct {
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`
}

// IndexOp is one change to the repository index.
type IndexOp struct {
	Kind         string
	Repository   string
	Digest       string
	MediaType    string
	ArtifactType string
	Subject      string
	Annotations  string // JSON object or ""
	Tag          string
	Time         time.Time
	Refs         []Ref
	Size         int64
}

// ApplyBatch commits audit events and index changes in one transaction —
// the unit of group commit — retrying while SQLite is busy or locked.
func (s *Store) ApplyBatch(ctx context.Context, evs []AuditEvent, ops []IndexOp) error {
	if len(evs) == 0 && len(ops) == 0 {
		return nil
	}
	backoff := 5 * time.Millisecond
	for {
		err := s.applyOnce(ctx, evs, ops)
		if err == nil || !IsRetryable(err) {
			if err != nil {
				return fmt.Errorf("store: apply batch: %w", err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: apply batch: %w (last: %w)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		if backoff < time.Second {
			backoff *= 2
		}
	}
}

func (s *Store) applyOnce(ctx context.Context, evs []AuditEvent, ops []IndexOp) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op after Commit
	if err := insertAudit(ctx, tx, evs); err != nil {
		return err
	}
	touched := map[int64]bool{}
	for _, op := range ops {
		id, err := applyOp(ctx, tx, op)
		if err != nil {
			return fmt.Errorf("%s %s: %w", op.Kind, op.Repository, err)
		}
		if id > 0 {
			touched[id] = true
		}
	}
	for id := range touched {
		if err := refreshRepoStats(ctx, tx, id); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// repoID finds (or, with create, makes) a repository's row. Creation
// tolerates another writer (replica) creating it first: ON CONFLICT waits
// for that transaction and the select then sees its row.
func repoID(ctx context.Context, tx *sql.Tx, name string, create bool, now int64) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM repositories WHERE name = ?`, name).Scan(&id)
	if err == nil || !errors.Is(err, sql.ErrNoRows) || !create {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		return id, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO repositories(name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING`, name, now); err != nil {
		return 0, err
	}
	err = tx.QueryRowContext(ctx, `SELECT id FROM repositories WHERE name = ?`, name).Scan(&id)
	return id, err
}

func applyOp(ctx context.Context, tx *sql.Tx, op IndexOp) (int64, error) {
	t := op.Time
	if t.IsZero() {
		t = time.Now()
	}
	now := t.UTC().UnixNano()
	switch op.Kind {
	case OpManifestPut:
		id, err := repoID(ctx, tx, op.Repository, true, now)
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO manifests(repo_id, digest, media_type, size, artifact_type, subject, annotations_json, created_at)
			VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(repo_id, digest) DO NOTHING`,
			id, op.Digest, op.MediaType, op.Size, op.ArtifactType, op.Subject, op.Annotations, now); err != nil {
			return 0, err
		}
		for _, r := range op.Refs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO manifest_refs(repo_id, manifest_digest, ref_digest, media_type, size) VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING`,
				id, op.Digest, r.Digest, r.MediaType, r.Size); err != nil {
				return 0, err
			}
		}
		if op.Tag != "" {
			if _, err := tx.ExecContext(ctx, `INSERT INTO tags(repo_id, name, digest, updated_at) VALUES (?,?,?,?)
				ON CONFLICT(repo_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
				id, op.Tag, op.Digest, now); err != nil {
				return 0, err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE repositories SET last_push = CASE WHEN last_push < ?1 THEN ?1 ELSE last_push END WHERE id = ?2`, now, id)
		return id, err
	case OpManifestDelete:
		id, err := repoID(ctx, tx, op.Repository, false, now)
		if err != nil || id == 0 {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tags WHERE repo_id = ? AND digest = ?`, id, op.Digest); err != nil {
			return 0, err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM manifests WHERE repo_id = ? AND digest = ?`, id, op.Digest)
		return id, err
	case OpTagDelete:
		id, err := repoID(ctx, tx, op.Repository, false, now)
		if err != nil || id == 0 {
			return 0, err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM tags WHERE repo_id = ? AND name = ?`, id, op.Tag)
		return id, err
	case OpRepoDelete:
		_, err := tx.ExecContext(ctx, `DELETE FROM repositories WHERE name = ?`, op.Repository)
		return 0, err
	case OpRepoPut:
		return repoID(ctx, tx, op.Repository, true, now)
	}
	return 0, fmt.Errorf("unknown index op %q", op.Kind)
}

// refreshRepoStats recomputes a repository's counts and size: manifests
// plus each distinct non-manifest blob they reference, counted once.
// A repository left with no manifests stays, with zero counts, as it
// stays in /v2/_catalog (its directory remains until it is deleted).
func refreshRepoStats(ctx context.Context, tx *sql.Tx, id int64) error {
	var manifests int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM manifests WHERE repo_id = ?`, id).Scan(&manifests); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE repositories SET
		manifest_count = ?2,
		tag_count = (SELECT COUNT(*) FROM tags WHERE repo_id = ?1),
		total_size = (SELECT COALESCE(SUM(size),0) FROM manifests WHERE repo_id = ?1)
		           + (SELECT COALESCE(SUM(size),0) FROM (SELECT ref_digest, MAX(size) AS size FROM manifest_refs
		              WHERE repo_id = ?1 AND ref_digest NOT IN (SELECT digest FROM manifests WHERE repo_id = ?1)
		              GROUP BY ref_digest) AS refs)
		WHERE id = ?1`, id, manifests)
	return err
}

// RepoSummary is a repository as the index lists it.
type RepoSummary struct {
	CreatedAt     time.Time `json:"created_at"`
	LastPush      time.Time `json:"last_push"`
	Name          string    `json:"name"`
	TagCount      int64     `json:"tag_count"`
	ManifestCount int64     `json:"manifest_count"`
	TotalSize     int64     `json:"total_size"`
}

// ListRepositories returns repositories ordered by name, after `last`
// (keyset) or at offset, optionally filtered by a substring.
func (s *Store) ListRepositories(ctx context.Context, filter, last string, limit, offset int) ([]RepoSummary, int, error) {
	where, args := repoFilter(filter)
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM repositories WHERE `+strings.Join(where, " AND "), args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: list repositories: %w", err)
	}
	out, err := s.scanRepositories(ctx, filter, last, limit, offset)
	return out, total, err
}

// ScanRepositories returns up to limit repositories after last in name
// order (filter as ListRepositories), without the total: for callers that
// walk the whole index in batches (the policy-filtered listing), where a
// COUNT per batch would read the table once per batch.
func (s *Store) ScanRepositories(ctx context.Context, filter, last string, limit int) ([]RepoSummary, error) {
	return s.scanRepositories(ctx, filter, last, limit, 0)
}

func repoFilter(filter string) ([]string, []any) {
	where, args := []string{"1=1"}, []any{}
	if filter != "" {
		where, args = append(where, "instr(name, ?) > 0"), append(args, filter)
	}
	return where, args
}

func (s *Store) scanRepositories(ctx context.Context, filter, last string, limit, offset int) ([]RepoSummary, error) {
	where, args := repoFilter(filter)
	if last != "" {
		where, args = append(where, "name > ?"), append(args, last)
	}
	args = append(args, limit, offset)
	rows, err := s.db.QueryContext(ctx, `SELECT name, tag_count, manifest_count, total_size, created_at, last_push FROM repositories
		WHERE `+strings.Join(where, " AND ")+` ORDER BY name LIMIT ? OFFSET ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list repositories: %w", err)
	}
	defer rows.Close()
	out := []RepoSummary{}
	for rows.Next() {
		var r RepoSummary
		var c, lp int64
		if err := rows.Scan(&r.Name, &r.TagCount, &r.ManifestCount, &r.TotalSize, &c, &lp); err != nil {
			return nil, fmt.Errorf("store: list repositories: %w", err)
		}
		r.CreatedAt, r.LastPush = time.Unix(0, c).UTC(), time.Unix(0, lp).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// TagInfo maps a tag to its manifest.
type TagInfo struct {
	Name      string    `json:"name"`
	UpdatedAt time.Time `json:"updated_at"`
	Digest    string    `json:"digest"`
}

// ManifestInfo is an indexed manifest.
type ManifestInfo struct {
	Digest       string    `json:"digest"`
	MediaType    string    `json:"media_type"`
	ArtifactType string    `json:"artifact_type,omitempty"`
	Subject      string    `json:"subject,omitempty"`
	Annotations  string    `json:"-"`
	CreatedAt    time.Time `json:"created_at"`
	Tags         []string  `json:"tags"`
	Refs         []Ref     `json:"layers"`
	Size         int64     `json:"size"`
}

// RepoDetail is a repository with its tags and manifests.
type RepoDetail struct {
	Tags      []TagInfo      `json:"tags"`
	Manifests []ManifestInfo `json:"manifests"`
	RepoSummary
}

// Repository returns one repository's index entry.
func (s *Store) Repository(ctx context.Context, name string) (*RepoDetail, error) {
	var d RepoDetail
	var id, c, lp int64
	err := s.db.QueryRowContext(ctx, `SELECT id, name, tag_count, manifest_count, total_size, created_at, last_push FROM repositories WHERE name = ?`, name).
		Scan(&id, &d.Name, &d.TagCount, &d.ManifestCount, &d.TotalSize, &c, &lp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: repository %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: repository %q: %w", name, err)
	}
	d.CreatedAt, d.LastPush = time.Unix(0, c).UTC(), time.Unix(0, lp).UTC()
	rows, err := s.db.QueryContext(ctx, `SELECT name, digest, updated_at FROM tags WHERE repo_id = ? ORDER BY name`, id)
	if err != nil {
		return nil, err
	}
	d.Tags = []TagInfo{}
	byDigest := map[string][]string{}
	for rows.Next() {
		var t TagInfo
		var u int64
		if err := rows.Scan(&t.Name, &t.Digest, &u); err != nil {
			rows.Close()
			return nil, err
		}
		t.UpdatedAt = time.Unix(0, u).UTC()
		d.Tags = append(d.Tags, t)
		byDigest[t.Digest] = append(byDigest[t.Digest], t.Name)
	}
	rows.Close()
	ms, err := s.manifests(ctx, `repo_id = ?`, id)
	if err != nil {
		return nil, err
	}
	for i := range ms {
		ms[i].Tags = byDigest[ms[i].Digest]
		if ms[i].Tags == nil {
			ms[i].Tags = []string{}
		}
		ms[i].Refs, err = s.refs(ctx, id, ms[i].Digest)
		if err != nil {
			return nil, err
		}
	}
	d.Manifests = ms
	return &d, nil
}

func (s *Store) manifests(ctx context.Context, where string, args ...any) ([]ManifestInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT digest, media_type, size, artifact_type, subject, annotations_json, created_at FROM manifests WHERE `+where+` ORDER BY created_at DESC, digest`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []ManifestInfo{}
	for rows.Next() {
		var m ManifestInfo
		var c int64
		if err := rows.Scan(&m.Digest, &m.MediaType, &m.Size, &m.ArtifactType, &m.Subject, &m.Annotations, &c); err != nil {
			return nil, err
		}
		m.CreatedAt = time.Unix(0, c).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

func (s *Store) refs(ctx context.Context, repoID int64, manifest string) ([]Ref, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT ref_digest, media_type, size FROM manifest_refs WHERE repo_id = ? AND manifest_digest = ?`, repoID, manifest)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Ref{}
	for rows.Next() {
		var r Ref
		if err := rows.Scan(&r.Digest, &r.MediaType, &r.Size); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Referrers returns the manifests of repo whose subject is digest.
func (s *Store) Referrers(ctx context.Context, repo, digest string) ([]ManifestInfo, error) {
	return s.manifests(ctx, `repo_id = (SELECT id FROM repositories WHERE name = ?) AND subject = ?`, repo, digest)
}

// ReplaceIndex rebuilds the whole repository index from ops (as produced
// by walking storage) in one transaction.
func (s *Store) ReplaceIndex(ctx context.Context, ops []IndexOp) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: reindex: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	for _, q := range []string{`DELETE FROM manifest_refs`, `DELETE FROM tags`, `DELETE FROM manifests`, `DELETE FROM repositories`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("store: reindex: %w", err)
		}
	}
	touched := map[int64]bool{}
	for _, op := range ops {
		id, err := applyOp(ctx, tx, op)
		if err != nil {
			return fmt.Errorf("store: reindex %s: %w", op.Repository, err)
		}
		touched[id] = true
	}
	for id := range touched {
		if err := refreshRepoStats(ctx, tx, id); err != nil {
			return fmt.Errorf("store: reindex: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: reindex: %w", err)
	}
	return nil
}

// IndexedRepo is what the index holds for one repository: its manifest
// digests and tags (tag -> digest).
type IndexedRepo struct {
	Manifests map[string]bool
	Tags      map[string]string
}

// IndexContents returns the whole index as repository -> contents (for
// reconciling it against storage).
func (s *Store) IndexContents(ctx context.Context) (map[string]*IndexedRepo, error) {
	out := map[string]*IndexedRepo{}
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM repositories`)
	if err != nil {
		return nil, fmt.Errorf("store: index contents: %w", err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: index contents: %w", err)
		}
		out[n] = &IndexedRepo{Manifests: map[string]bool{}, Tags: map[string]string{}}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: index contents: %w", err)
	}
	rows, err = s.db.QueryContext(ctx, `SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id`)
	if err != nil {
		return nil, fmt.Errorf("store: index contents: %w", err)
	}
	for rows.Next() {
		var n, d string
		if err := rows.Scan(&n, &d); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: index contents: %w", err)
		}
		if r := out[n]; r != nil {
			r.Manifests[d] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: index contents: %w", err)
	}
	rows, err = s.db.QueryContext(ctx, `SELECT r.name, t.name, t.digest FROM tags t JOIN repositories r ON r.id = t.repo_id`)
	if err != nil {
		return nil, fmt.Errorf("store: index contents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n, tag, d string
		if err := rows.Scan(&n, &tag, &d); err != nil {
			return nil, fmt.Errorf("store: index contents: %w", err)
		}
		if r := out[n]; r != nil {
			r.Tags[tag] = d
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: index contents: %w", err)
	}
	return out, nil
}
