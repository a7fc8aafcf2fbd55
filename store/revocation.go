package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ErrReused is returned when a refresh token that was already rotated is
// presented again: the family has been revoked.
var ErrReused = errors.New("refresh token reused")

// inTx runs fn in one transaction.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// revokeSubjectTx bumps the generation of subject and revokes its refresh
// families.
func revokeSubjectTx(ctx context.Context, tx *sql.Tx, subject string) error {
	now := time.Now().UnixNano()
	if _, err := tx.ExecContext(ctx, `INSERT INTO account_generations(subject, generation, changed_at) VALUES (?, 1, ?)
		ON CONFLICT(subject) DO UPDATE SET generation = account_generations.generation + 1, changed_at = excluded.changed_at`, subject, now); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE refresh_families SET revoked = 1 WHERE subject = ? AND revoked = 0`, subject)
	return err
}

// RevokeSubject ends every token of an account (local or from MCIAS):
// tokens issued before now carry an older generation and are refused.
func (s *Store) RevokeSubject(ctx context.Context, subject string) error {
	if err := s.inTx(ctx, func(tx *sql.Tx) error { return revokeSubjectTx(ctx, tx, subject) }); err != nil {
		return fmt.Errorf("store: revoke tokens of %s: %w", subject, err)
	}
	s.markAccountsChanged()
	return nil
}

// Generations returns the generation of every subject that has one (a
// subject absent from the map is at generation 0).
func (s *Store) Generations(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT subject, generation FROM account_generations`)
	if err != nil {
		return nil, fmt.Errorf("store: generations: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var sub string
		var g int64
		if err := rows.Scan(&sub, &g); err != nil {
			return nil, fmt.Errorf("store: generations: %w", err)
		}
		out[sub] = g
	}
	return out, rows.Err()
}

// AccountsMarker is a file next to the database that every account change
// replaces (a new inode each time), so a server can notice a change made
// by another process — `mcrsrv user passwd` — with a stat, without a
// database read per request. Empty for a database without a file.
func (s *Store) AccountsMarker() string {
	if s.path == "" {
		return ""
	}
	return s.path + "-accounts"
}

// markAccountsChanged replaces the marker file. A failure is reported on
// stderr by the caller's log only through the returned state: the change
// itself is committed, and servers also re-read generations periodically.
func (s *Store) markAccountsChanged() {
	m := s.AccountsMarker()
	if m == "" {
		return
	}
	tmp := m + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(time.Now().UnixNano(), 10)+"\n"), 0o600); err != nil {
		accountsMarkerErr(err)
		return
	}
	if err := os.Rename(tmp, m); err != nil {
		_ = os.Remove(tmp)
		accountsMarkerErr(err)
	}
}

// accountsMarkerErr is replaced by tests; by default it writes to stderr
// (the store has no logger of its own).
var accountsMarkerErr = func(err error) {
	fmt.Fprintf(os.Stderr, "store: accounts change marker not written (servers notice within their poll interval): %v\n", err)
}

// RefreshFamily is one chain of rotated refresh tokens.
type RefreshFamily struct {
	ID         string
	Subject    string
	Session    string // digest of the session token it was minted with, or ""
	ExpiresAt  time.Time
	CurrentJTI string
	Revoked    bool
}

// CreateFamily records a new refresh-token family.
func (s *Store) CreateFamily(ctx context.Context, f RefreshFamily) error {
	now := time.Now()
	_, err := s.db.ExecContext(ctx, `INSERT INTO refresh_families(id, subject, session, current_jti, created_at, expires_at)
		VALUES (?,?,?,?,?,?)`, f.ID, f.Subject, f.Session, f.CurrentJTI, now.UnixNano(), f.ExpiresAt.Unix())
	if err != nil {
		return fmt.Errorf("store: create refresh family: %w", err)
	}
	_, _ = s.db.ExecContext(ctx, `DELETE FROM refresh_families WHERE expires_at < ?`, now.Unix())
	return nil
}

// RotateFamily replaces the current token of a family: oldJTI must be the
// current one. If it is not (an older token presented again, i.e. one of
// the two holders is not its owner), the family is revoked and ErrReused
// returned; ErrNotFound if the family is unknown or already revoked.
func (s *Store) RotateFamily(ctx context.Context, id, oldJTI, newJTI string, expires time.Time) (*RefreshFamily, error) {
	var f RefreshFamily
	reused := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var exp int64
		err := tx.QueryRowContext(ctx, `SELECT id, subject, session, current_jti, revoked, expires_at FROM refresh_families WHERE id = ?`, id).
			Scan(&f.ID, &f.Subject, &f.Session, &f.CurrentJTI, &f.Revoked, &exp)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		f.ExpiresAt = time.Unix(exp, 0)
		if f.Revoked {
			return ErrNotFound
		}
		if f.CurrentJTI != oldJTI {
			reused = true // commit the revocation, then report it
			_, err := tx.ExecContext(ctx, `UPDATE refresh_families SET revoked = 1 WHERE id = ?`, id)
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE refresh_families SET current_jti = ?, expires_at = ? WHERE id = ?`, newJTI, expires.Unix(), id)
		return err
	})
	if err == nil && reused {
		// The revocation committed; the error tells the caller to audit it.
		return &f, ErrReused
	}
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store: refresh family %s: %w", id, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: rotate refresh family: %w", err)
	}
	f.CurrentJTI = newJTI
	return &f, nil
}

// CheckFamily reports whether jti is the standing token of family id
// (a non-rotating identity token): ErrNotFound if the family is unknown,
// revoked, or holds another token.
func (s *Store) CheckFamily(ctx context.Context, id, jti string) error {
	var revoked bool
	var current string
	err := s.db.QueryRowContext(ctx, `SELECT current_jti, revoked FROM refresh_families WHERE id = ?`, id).Scan(&current, &revoked)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (revoked || current != jti)) {
		return fmt.Errorf("store: refresh family %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: check refresh family: %w", err)
	}
	return nil
}

// RevokeSessionFamilies revokes every refresh family minted with a
// session (logout).
func (s *Store) RevokeSessionFamilies(ctx context.Context, session string) error {
	if session == "" {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE refresh_families SET revoked = 1 WHERE session = ? AND revoked = 0`, session); err != nil {
		return fmt.Errorf("store: revoke refresh tokens of a session: %w", err)
	}
	return nil
}
