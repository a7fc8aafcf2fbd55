package store

import (
	"context"
	"fmt"
)

// migrations are applied in order, each once, inside one transaction.
// Append only: never edit a migration that has shipped. Each one has a
// PostgreSQL twin at the same index in pgMigrations (postgres.go, which
// says how to write it).
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
	// 3: audit log (DESIGN §7) and the repository index kept from registry
	// events. Times are Unix nanoseconds (UTC). audit_log ids grow with time,
	// so pages are keyset-paginated on id; each filter has an (x, id) index.
	`CREATE TABLE audit_log (
		id           INTEGER PRIMARY KEY,
		event_time   INTEGER NOT NULL,
		event_type   TEXT NOT NULL,
		actor_id     TEXT NOT NULL DEFAULT '',
		actor        TEXT NOT NULL DEFAULT '',
		repository   TEXT NOT NULL DEFAULT '',
		digest       TEXT NOT NULL DEFAULT '',
		tag          TEXT NOT NULL DEFAULT '',
		ip           TEXT NOT NULL DEFAULT '',
		details_json TEXT NOT NULL DEFAULT '{}'
	);
	CREATE INDEX audit_log_time ON audit_log(event_time);
	CREATE INDEX audit_log_type ON audit_log(event_type, id);
	CREATE INDEX audit_log_actor ON audit_log(actor_id, id);
	CREATE INDEX audit_log_repo ON audit_log(repository, id);
	CREATE TABLE repositories (
		id             INTEGER PRIMARY KEY,
		name           TEXT NOT NULL UNIQUE,
		created_at     INTEGER NOT NULL,
		last_push      INTEGER NOT NULL DEFAULT 0,
		tag_count      INTEGER NOT NULL DEFAULT 0,
		manifest_count INTEGER NOT NULL DEFAULT 0,
		total_size     INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE manifests (
		repo_id          INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
		digest           TEXT NOT NULL,
		media_type       TEXT NOT NULL,
		size             INTEGER NOT NULL,
		artifact_type    TEXT NOT NULL DEFAULT '',
		subject          TEXT NOT NULL DEFAULT '',
		annotations_json TEXT NOT NULL DEFAULT '',
		created_at       INTEGER NOT NULL,
		PRIMARY KEY (repo_id, digest)
	) WITHOUT ROWID;
	CREATE INDEX manifests_subject ON manifests(repo_id, subject) WHERE subject != '';
	CREATE TABLE manifest_refs (
		repo_id         INTEGER NOT NULL,
		manifest_digest TEXT NOT NULL,
		ref_digest      TEXT NOT NULL,
		media_type      TEXT NOT NULL DEFAULT '',
		size            INTEGER NOT NULL,
		PRIMARY KEY (repo_id, manifest_digest, ref_digest),
		FOREIGN KEY (repo_id, manifest_digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
	) WITHOUT ROWID;
	CREATE INDEX manifest_refs_ref ON manifest_refs(repo_id, ref_digest);
	CREATE TABLE tags (
		repo_id    INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
		name       TEXT NOT NULL,
		digest     TEXT NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (repo_id, name)
	) WITHOUT ROWID;
	CREATE INDEX tags_digest ON tags(repo_id, digest);`,
	// 4: garbage-collection runs (DESIGN §8). kind is "gc" or "reconcile";
	// times are Unix nanoseconds (UTC); completed is NULL while running
	// (or when the process died mid-run).
	`CREATE TABLE gc_runs (
		id                INTEGER PRIMARY KEY,
		kind              TEXT NOT NULL DEFAULT 'gc' CHECK (kind IN ('gc','reconcile')),
		started           INTEGER NOT NULL,
		completed         INTEGER,
		blobs_removed     INTEGER NOT NULL DEFAULT 0,
		bytes_freed       INTEGER NOT NULL DEFAULT 0,
		manifests_removed INTEGER NOT NULL DEFAULT 0,
		error             TEXT NOT NULL DEFAULT '',
		dry_run           INTEGER NOT NULL DEFAULT 0,
		remove_untagged   INTEGER NOT NULL DEFAULT 0,
		actor             TEXT NOT NULL DEFAULT '',
		details_json      TEXT NOT NULL DEFAULT '{}'
	);`,
	// 5: digest aliases — content pushed with sha512 is stored by
	// distribution under its sha256; the pair is recorded once verified.
	`CREATE TABLE digest_aliases (
		alias      TEXT PRIMARY KEY,
		canonical  TEXT NOT NULL,
		kind       TEXT NOT NULL CHECK (kind IN ('blob','manifest')),
		created_at INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX digest_aliases_canonical ON digest_aliases(canonical);`,
	// 6: audit queries that combine a repository or actor with an event
	// type walk one index in id order instead of scanning all the
	// repository's or actor's rows.
	`CREATE INDEX audit_log_repo_type ON audit_log(repository, event_type, id);
	CREATE INDEX audit_log_actor_type ON audit_log(actor_id, event_type, id);`,
	// 7: every audit row pays for every index. Queries by repository or
	// actor alone now merge walks of the (x, event_type, id) indexes, and
	// time bounds are found by a binary search over ids, so these three go.
	`DROP INDEX IF EXISTS audit_log_time;
	DROP INDEX IF EXISTS audit_log_repo;
	DROP INDEX IF EXISTS audit_log_actor;`,
	// 8: blobs a repository deletion released (issue 17): unreferenced by
	// intent, not in flight, so the next collection may remove them
	// regardless of the grace period. Times are Unix nanoseconds (UTC).
	`CREATE TABLE gc_released (
		digest      TEXT PRIMARY KEY,
		repository  TEXT NOT NULL,
		released_at INTEGER NOT NULL
	) WITHOUT ROWID;`,
	// 9: revocation. users.disabled refuses sign-in and every token of the
	// account; account_generations holds a per-subject counter (the
	// "valid after" stamp, without clocks) that every token carries and
	// that any change to the account bumps; refresh_families records each
	// chain of rotated refresh tokens: only current_jti works, an older one
	// presented again revokes the family.
	`ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE account_generations (
		subject    TEXT PRIMARY KEY,
		generation INTEGER NOT NULL,
		changed_at INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE refresh_families (
		id          TEXT PRIMARY KEY,
		subject     TEXT NOT NULL,
		session     TEXT NOT NULL DEFAULT '',
		current_jti TEXT NOT NULL,
		revoked     INTEGER NOT NULL DEFAULT 0,
		created_at  INTEGER NOT NULL,
		expires_at  INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX refresh_families_session ON refresh_families(session) WHERE session != '';
	CREATE INDEX refresh_families_subject ON refresh_families(subject);
	CREATE INDEX refresh_families_expires ON refresh_families(expires_at);`,
	// 10: replicas sharing one database (DESIGN §13, package cluster):
	// members' heartbeats, broadcast topics with the version each member
	// has applied, and the GC lease. Unused by a single SQLite node.
	`CREATE TABLE cluster_members (
		id         TEXT PRIMARY KEY,
		started_at INTEGER NOT NULL,
		last_seen  INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE cluster_topics (
		topic   TEXT PRIMARY KEY,
		version INTEGER NOT NULL,
		payload TEXT NOT NULL DEFAULT ''
	) WITHOUT ROWID;
	CREATE TABLE cluster_acks (
		member  TEXT NOT NULL,
		topic   TEXT NOT NULL,
		version INTEGER NOT NULL,
		PRIMARY KEY (member, topic)
	) WITHOUT ROWID;
	CREATE TABLE gc_lease (
		name       TEXT PRIMARY KEY,
		holder     TEXT NOT NULL,
		expires_at INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE gc_recent (
		digest  TEXT PRIMARY KEY,
		seen_at INTEGER NOT NULL
	) WITHOUT ROWID;`,
	// 11: audit queries with both a repository and an actor (issue 17)
	// walk this index in id order per event type, as those with one key
	// walk that key's: no per-row check of the other key, whatever the
	// two keys' sizes (BenchmarkAuditQuery: p50 7–17 ms before, 0.6–3
	// after). Pulls are left out: they are most rows and come in bulk,
	// and a (repository, actor) index over them made a commit of pulls
	// across 300 repositories half again as dear (BenchmarkApplyBatchPulls);
	// ListAudit finds a pair's pulls through the keys' own indexes.
	`CREATE INDEX audit_log_repo_actor_type ON audit_log(repository, actor_id, event_type, id) WHERE event_type <> 'manifest_pulled';`,
}

// newerSchema refuses a database migrated by a newer mcrsrv (one this
// binary would misread), SQLite and PostgreSQL alike.
func newerSchema(current, known int) error {
	if current > known {
		return fmt.Errorf("store: database schema version %d is newer than this mcrsrv (%d): upgrade mcrsrv", current, known)
	}
	return nil
}

// Migrate brings the schema up to date. It is idempotent; a schema newer
// than this binary's is refused.
func (s *Store) Migrate(ctx context.Context) error {
	if s.postgres {
		return s.migratePostgres(ctx)
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	var current int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version),0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if err := newerSchema(current, len(migrations)); err != nil {
		return err
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

// migratePostgres applies pgMigrations in one transaction under an
// advisory lock, so replicas starting together migrate once (PostgreSQL
// DDL is transactional: a failed migration leaves nothing behind).
func (s *Store) migratePostgres(ctx context.Context) error {
	if len(pgMigrations) != len(migrations) {
		return fmt.Errorf("store: %d SQLite migrations but %d PostgreSQL ones (see pgMigrations)", len(migrations), len(pgMigrations))
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(migrateLockKey)); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version),0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if err := newerSchema(current, len(pgMigrations)); err != nil {
		return err
	}
	for i := current; i < len(pgMigrations); i++ {
		if _, err := tx.ExecContext(ctx, pgMigrations[i]); err != nil {
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version) VALUES (?)`, i+1); err != nil {
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// SchemaVersion returns the number of applied migrations.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version),0) FROM schema_migrations`).Scan(&v)
	return v, err
}
