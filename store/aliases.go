package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Digest aliases: distribution stores content under its canonical sha256
// digest; a client that pushed with another algorithm (sha512) addresses
// it by that digest. MCR records the pair once distribution has verified
// the content against both.

// PutDigestAlias records that alias names the content of canonical.
func (s *Store) PutDigestAlias(ctx context.Context, alias, canonical, kind string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO digest_aliases(alias, canonical, kind, created_at) VALUES (?,?,?,?)
		ON CONFLICT(alias) DO UPDATE SET canonical = excluded.canonical, kind = excluded.kind`,
		alias, canonical, kind, time.Now().UTC().UnixNano())
	if err != nil {
		return fmt.Errorf("store: digest alias: %w", err)
	}
	return nil
}

// CanonicalDigest returns the canonical digest an alias names.
func (s *Store) CanonicalDigest(ctx context.Context, alias string) (string, error) {
	var c string
	err := s.db.QueryRowContext(ctx, `SELECT canonical FROM digest_aliases WHERE alias = ?`, alias).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("store: digest alias: %w", err)
	}
	return c, nil
}

// AliasesOf returns the aliases of canonical digests (canonical → alias).
func (s *Store) AliasesOf(ctx context.Context, kind string) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT alias, canonical FROM digest_aliases WHERE kind = ?`, kind)
	if err != nil {
		return nil, fmt.Errorf("store: digest aliases: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var a, c string
		if err := rows.Scan(&a, &c); err != nil {
			return nil, err
		}
		out[c] = a
	}
	return out, rows.Err()
}
