package store

import (
	"context"
	"fmt"
	"time"
)

// ReleaseBlobs records that deleting repository released digests (its
// layers and manifests): the next collection may remove those no other
// repository links, without waiting for the grace period.
func (s *Store) ReleaseBlobs(ctx context.Context, repository string, digests []string) error {
	if len(digests) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: release blobs: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	now := time.Now().UTC().UnixNano()
	for _, d := range digests {
		if _, err := tx.ExecContext(ctx, `INSERT INTO gc_released(digest, repository, released_at) VALUES (?, ?, ?)
			ON CONFLICT(digest) DO UPDATE SET repository = excluded.repository, released_at = excluded.released_at`,
			d, repository, now); err != nil {
			return fmt.Errorf("store: release blobs: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: release blobs: %w", err)
	}
	return nil
}

// ReleasedBlobs returns the released digests with the time of their release.
func (s *Store) ReleasedBlobs(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT digest, released_at FROM gc_released`)
	if err != nil {
		return nil, fmt.Errorf("store: released blobs: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var d string
		var at int64
		if err := rows.Scan(&d, &at); err != nil {
			return nil, fmt.Errorf("store: released blobs: %w", err)
		}
		out[d] = time.Unix(0, at).UTC()
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: released blobs: %w", err)
	}
	return out, nil
}

// ForgetReleased drops releases recorded before t: a completed collection
// has removed those blobs, or found them linked again (then the ordinary
// rules apply to them).
func (s *Store) ForgetReleased(ctx context.Context, before time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM gc_released WHERE released_at < ?`, before.UTC().UnixNano()); err != nil {
		return fmt.Errorf("store: forget released blobs: %w", err)
	}
	return nil
}
