package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// User is a local-identity account.
type User struct {
	UUID         string
	Username     string
	PasswordHash string
	Role         string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	AccountType  string
	ID           int64
	Disabled     bool
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

const userCols = `id, uuid, username, password_hash, role, account_type, disabled, created_at, updated_at`

func scanUser(row interface{ Scan(...any) error }) (*User, error) {
	var u User
	var c, up string
	if err := row.Scan(&u.ID, &u.UUID, &u.Username, &u.PasswordHash, &u.Role, &u.AccountType, &u.Disabled, &c, &up); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	u.CreatedAt, _ = time.Parse(time.RFC3339Nano, c)
	u.UpdatedAt, _ = time.Parse(time.RFC3339Nano, up)
	return &u, nil
}

// usernamePattern: what Basic credentials, audit rows and URLs can carry
// unambiguously (no ':' — Basic auth splits on it — no spaces, no empty).
var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// ValidUsername reports whether name is acceptable for a local account.
func ValidUsername(name string) error {
	if !usernamePattern.MatchString(name) {
		return fmt.Errorf("invalid username %q: 1-64 characters, letters, digits and . _ @ -, starting with a letter or digit", name)
	}
	return nil
}

// CreateUser inserts a user; the UUID is generated.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	if err := ValidUsername(u.Username); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if u.UUID == "" {
		u.UUID = newUUID()
	}
	err := s.db.QueryRowContext(ctx, `INSERT INTO users(uuid, username, password_hash, role, account_type, created_at, updated_at)
		VALUES (?,?,?,?,?,?,?) RETURNING id`, u.UUID, u.Username, u.PasswordHash, u.Role, u.AccountType, now, now).Scan(&u.ID)
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("store: user %q: %w", u.Username, ErrConflict)
		}
		return fmt.Errorf("store: create user %q: %w", u.Username, err)
	}
	return nil
}

// UserByName looks a user up by username.
func (s *Store) UserByName(ctx context.Context, username string) (*User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE username = ?`, username))
	if err != nil {
		return nil, fmt.Errorf("store: user %q: %w", username, err)
	}
	return u, nil
}

// UserByUUID looks a user up by subject UUID.
func (s *Store) UserByUUID(ctx context.Context, id string) (*User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE uuid = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("store: user %s: %w", id, err)
	}
	return u, nil
}

// ListUsers returns all users ordered by username.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list users: %w", err)
		}
		out = append(out, *u)
	}
	return out, rows.Err()
}

// CountUsers returns how many users exist.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n)
	return n, err
}

// DeleteUser removes a user by username; every token of the account stops
// working (its generation is bumped, its refresh families revoked).
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	return s.changeUser(ctx, username, "delete user", `DELETE FROM users WHERE username = ? RETURNING uuid`)
}

// SetPassword replaces a user's password hash and ends every session and
// token of the account.
func (s *Store) SetPassword(ctx context.Context, username, hash string) error {
	return s.changeUser(ctx, username, "set password",
		`UPDATE users SET password_hash = ?, updated_at = ? WHERE username = ? RETURNING uuid`, hash, nowText())
}

// SetDisabled disables (or enables) a user; disabling ends every session
// and token of the account, and a disabled account cannot sign in.
func (s *Store) SetDisabled(ctx context.Context, username string, disabled bool) error {
	flag := 0 // an INTEGER column in both dialects
	if disabled {
		flag = 1
	}
	return s.changeUser(ctx, username, "disable user",
		`UPDATE users SET disabled = ?, updated_at = ? WHERE username = ? RETURNING uuid`, flag, nowText())
}

// SetRole changes a user's role and ends every session and token of the
// account (tokens carry the role they were issued with).
func (s *Store) SetRole(ctx context.Context, username, role string) error {
	return s.changeUser(ctx, username, "set role",
		`UPDATE users SET role = ?, updated_at = ? WHERE username = ? RETURNING uuid`, role, nowText())
}

func nowText() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// changeUser runs one statement on a user row (which RETURNs the uuid)
// and, in the same transaction, revokes everything the account holds.
func (s *Store) changeUser(ctx context.Context, username, what, query string, args ...any) error {
	// The username is the last placeholder of every query above.
	args = append(args, username)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var sub string
		if err := tx.QueryRowContext(ctx, query, args...).Scan(&sub); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("user %q: %w", username, ErrNotFound)
			}
			return err
		}
		return revokeSubjectTx(ctx, tx, sub)
	})
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	s.markAccountsChanged()
	return nil
}

// RevokeToken records a token id as revoked until it would have expired.
func (s *Store) RevokeToken(ctx context.Context, jti string, expires time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO revoked_tokens(jti, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING`, jti, expires.Unix())
	if err != nil {
		return fmt.Errorf("store: revoke token: %w", err)
	}
	_, _ = s.db.ExecContext(ctx, `DELETE FROM revoked_tokens WHERE expires_at < ?`, time.Now().Unix())
	return nil
}

// TokenRevoked reports whether a token id was revoked.
func (s *Store) TokenRevoked(ctx context.Context, jti string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM revoked_tokens WHERE jti = ?`, jti).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: token revoked: %w", err)
	}
	return true, nil
}
