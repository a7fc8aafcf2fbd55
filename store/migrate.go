package store

import (
	"context"
	"fmt"
)

// migrations are applied in order, each once, inside one transaction.
// Append only: never edit a migration that has shipped.
var migrations = []string{
	// 1: local identity accounts and revoked session tokens.
	`CREATE TABLE users (
		id            INTEGER PRIMARY KEY,
		uuid          TEXT NOT NULL UNIQUE,
		username      TEXT NOT NULL UNIQUE,
		password_hash TEXT NOT NULL,
		role          TEXT NOT NULL CHECK (role IN ('admin','user','guest')),
		account_type  TEXT NOT NULL CHECK (account_type IN ('human','system')),
		created_at    TEXT NOT NULL,
		updated_at    TEXT NOT NULL
	);
	CREATE TABLE revoked_tokens (
		jti        TEXT PRIMARY KEY,
		expires_at INTEGER NOT NULL
	);
	CREATE INDEX revoked_tokens_expires ON revoked_tokens(expires_at);`,
	// 2: policy rules (DESIGN §5).
	`CREATE TABLE policy_rules (
		id          INTEGER PRIMARY KEY,
		priority    INTEGER NOT NULL CHECK (priority >= 1),
		description TEXT NOT NULL DEFAULT '',
		effect      TEXT NOT NULL CHECK (effect IN ('allow','deny')),
		rule_json   TEXT NOT NULL,
		enabled     INTEGER NOT NULL DEFAULT 1,
		created_by  TEXT NOT NULL DEFAULT '',
		created_at  TEXT NOT NULL,
		updated_by  TEXT NOT NULL DEFAULT '',
		updated_at  TEXT NOT NULL
	);
	CREATE INDEX policy_rules_enabled ON policy_rules(enabled, priority);`,
}

// Migrate brings the schema up to date. It is idempotent.
func (s *Store) Migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	var current int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version),0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	for i := current; i < len(migrations); i++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version) VALUES (?)`, i+1); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
	}
	return nil
}

// SchemaVersion returns the number of applied migrations.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version),0) FROM schema_migrations`).Scan(&v)
	return v, err
}
