// Package apitypes holds the JSON wire types of MCR's admin API /v1,
// shared by the server's clients (mcrctl, mcr-web). It imports only the
// standard library so clients never link the server: no store, no
// policy engine, no database driver.
//
// Every type here has the field names, types and omitempty of what the
// server emits or accepts today; adminapi's drift test compares them
// with the server's own types (store.RepoDetail, store.PolicyRule, ...)
// field by field, so a field added on one side only fails the build's
// tests.
package apitypes

import "time"

// Error is the body of every non-2xx answer of /v1.
type Error struct {
	Error string `json:"error"`
}

// ErrorDomain and ReasonStorageFull are the gRPC ErrorInfo detail of a
// RESOURCE_EXHAUSTED that /v1 answers as 507: a write the database's full
// disk refused (the server sets it, grpcclient reads it).
const (
	ErrorDomain       = "mcr.wntrmute.dev"
	ReasonStorageFull = "STORAGE_FULL"
)

// LoginRequest is the body of POST /v1/auth/login.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// LoginResult is POST /v1/auth/login's answer.
type LoginResult struct {
	Token       string   `json:"token"`
	ExpiresAt   string   `json:"expires_at"` // RFC 3339, UTC
	Username    string   `json:"username"`
	AccountType string   `json:"account_type"`
	Roles       []string `json:"roles"`
}

// RepoSummary is one row of GET /v1/repositories.
type RepoSummary struct {
	CreatedAt     time.Time `json:"created_at"`
	LastPush      time.Time `json:"last_push"`
	Name          string    `json:"name"`
	TagCount      int64     `json:"tag_count"`
	ManifestCount int64     `json:"manifest_count"`
	TotalSize     int64     `json:"total_size"`
}

// RepoList is GET /v1/repositories. Next is the `last` of the next page
// (keyset), absent on a short page.
type RepoList struct {
	Next         string        `json:"next,omitempty"`
	Repositories []RepoSummary `json:"repositories"`
	Total        int           `json:"total"`
	N            int           `json:"n"`
	Offset       int           `json:"offset"`
}

// TagInfo maps a tag to its manifest.
type TagInfo struct {
	Name      string    `json:"name"`
	UpdatedAt time.Time `json:"updated_at"`
	Digest    string    `json:"digest"`
}

// Ref is a descriptor a manifest references (config, layer, child
// manifest).
type Ref struct {
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`
}

// ManifestInfo is an indexed manifest. Layers holds every descriptor it
// references (the server's store.ManifestInfo.Refs).
type ManifestInfo struct {
	Digest       string    `json:"digest"`
	MediaType    string    `json:"media_type"`
	ArtifactType string    `json:"artifact_type,omitempty"`
	Subject      string    `json:"subject,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	Tags         []string  `json:"tags"`
	Layers       []Ref     `json:"layers"`
	Size         int64     `json:"size"`
}

// RepoDetail is GET /v1/repositories/{name}.
type RepoDetail struct {
	Tags      []TagInfo      `json:"tags"`
	Manifests []ManifestInfo `json:"manifests"`
	RepoSummary
}

// AuditEvent is one audit log row.
type AuditEvent struct {
	Time       time.Time      `json:"event_time"`
	Type       string         `json:"event_type"`
	ActorID    string         `json:"actor_id,omitempty"`
	Actor      string         `json:"actor,omitempty"`
	Repository string         `json:"repository,omitempty"`
	Digest     string         `json:"digest,omitempty"`
	Tag        string         `json:"tag,omitempty"`
	Details    map[string]any `json:"details,omitempty"`
	IP         string         `json:"ip,omitempty"`
	ID         int64          `json:"id"`
}

// AuditPage is GET /v1/audit, newest first. Next is the cursor of the
// next page (pass it back as `before`), absent on a short page.
type AuditPage struct {
	Next   string       `json:"next,omitempty"`
	Events []AuditEvent `json:"events"`
}

// PolicyRule is a stored policy rule: GET /v1/policy/rules/{id}, and the
// answer of POST and PATCH. Effect is "allow" or "deny"; Actions are
// "registry:pull", "registry:push", ... (policyplugin's names).
type PolicyRule struct {
	CreatedBy    string    `json:"created_by"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedBy    string    `json:"updated_by"`
	UpdatedAt    time.Time `json:"updated_at"`
	Description  string    `json:"description"`
	Effect       string    `json:"effect"`
	Roles        []string  `json:"roles"`
	AccountTypes []string  `json:"account_types"`
	SubjectUUID  string    `json:"subject_uuid"`
	Actions      []string  `json:"actions"`
	Repositories []string  `json:"repositories"`
	ID           int64     `json:"id"`
	Priority     int       `json:"priority"`
	Enabled      bool      `json:"enabled"`
}

// Match returns the rule's matching fields, e.g. to start a PATCH from.
func (r *PolicyRule) Match() RuleMatch {
	return RuleMatch{Effect: r.Effect, Roles: r.Roles, AccountTypes: r.AccountTypes,
		SubjectUUID: r.SubjectUUID, Actions: r.Actions, Repositories: r.Repositories}
}

// RuleList is GET /v1/policy/rules, ordered by priority then id.
type RuleList struct {
	Rules  []PolicyRule `json:"rules"`
	Total  int          `json:"total"`
	N      int          `json:"n"`
	Offset int          `json:"offset"`
}

// RuleMatch is a rule's matching fields: the "rule" object of a PATCH,
// which replaces all of them at once.
type RuleMatch struct {
	Effect       string   `json:"effect"`
	Roles        []string `json:"roles"`
	AccountTypes []string `json:"account_types"`
	SubjectUUID  string   `json:"subject_uuid"`
	Actions      []string `json:"actions"`
	Repositories []string `json:"repositories"`
}

// RuleCreate is the body of POST /v1/policy/rules. A nil Enabled means
// enabled. The server refuses unknown fields.
type RuleCreate struct {
	Description string `json:"description"`
	Enabled     *bool  `json:"enabled"`
	RuleMatch
	Priority int `json:"priority"`
}

// RulePatch is the body of PATCH /v1/policy/rules/{id}: only the fields
// given change; Rule, when given, replaces every matching field.
type RulePatch struct {
	Priority    *int       `json:"priority,omitempty"`
	Description *string    `json:"description,omitempty"`
	Enabled     *bool      `json:"enabled,omitempty"`
	Rule        *RuleMatch `json:"rule,omitempty"`
}

// GCRequest is the optional body of POST /v1/gc and /v1/gc/reconcile.
type GCRequest struct {
	// Grace overrides gc.grace for this run (a Go duration, "0s" for
	// none; /v1/gc only). Uploads in flight younger than it may lose
	// their blobs.
	Grace          string `json:"grace,omitempty"`
	DryRun         bool   `json:"dry_run,omitempty"`
	RemoveUntagged bool   `json:"remove_untagged,omitempty"`
}

// GCStarted is the 202 answer of POST /v1/gc and /v1/gc/reconcile.
type GCStarted struct {
	ID int64 `json:"id"`
}

// GCRun is the record of one garbage collection ("gc") or reconcile
// ("reconcile") run. Completed is nil while the run is in progress.
type GCRun struct {
	Kind             string         `json:"kind"`
	Started          time.Time      `json:"started"`
	Completed        *time.Time     `json:"completed,omitempty"`
	Error            string         `json:"error,omitempty"`
	Details          map[string]any `json:"details,omitempty"`
	Actor            string         `json:"actor,omitempty"`
	ID               int64          `json:"id"`
	BlobsRemoved     int64          `json:"blobs_removed"`
	BytesFreed       int64          `json:"bytes_freed"`
	ManifestsRemoved int64          `json:"manifests_removed"`
	DryRun           bool           `json:"dry_run"`
	RemoveUntagged   bool           `json:"remove_untagged"`
}

// Running reports whether the run has not completed.
func (r *GCRun) Running() bool { return r.Completed == nil }

// Duration is how long a completed run took (0 while it runs).
func (r *GCRun) Duration() time.Duration {
	if r.Completed == nil || r.Started.IsZero() {
		return 0
	}
	return r.Completed.Sub(r.Started)
}

// GCStatus is GET /v1/gc/status; LastRun is null before the first run.
type GCStatus struct {
	LastRun *GCRun `json:"last_run"`
	Running bool   `json:"running"`
}

// SnapshotCreated is the 201 answer of POST /v1/snapshot: the snapshot's
// path on the server.
type SnapshotCreated struct {
	Path string `json:"path"`
}

// AccountUnlocked is POST /v1/accounts/{name}/unlock's answer: whether the
// account had failed sign-ins or a lockout that were cleared.
type AccountUnlocked struct {
	Username string `json:"username"`
	Unlocked bool   `json:"unlocked"`
}

// TokensRevoked is POST /v1/accounts/{name}/revoke's answer.
type TokensRevoked struct {
	Username string `json:"username"`
	Subject  string `json:"subject"`
}

// UploadInfo is one blob upload directory (in progress or abandoned).
type UploadInfo struct {
	Repository string    `json:"repository"`
	Started    time.Time `json:"started"`
	Modified   time.Time `json:"modified"`
	ID         string    `json:"id"`
	Size       int64     `json:"size"`
	AgeSeconds int64     `json:"age_seconds"`
}

// UploadList is GET /v1/uploads.
type UploadList struct {
	Uploads    []UploadInfo `json:"uploads"`
	TotalBytes int64        `json:"total_bytes"`
}

// UploadPurgeRequest is the body of POST /v1/uploads/purge.
type UploadPurgeRequest struct {
	OlderThan string `json:"older_than"`
}

// UploadPurged is the answer of POST /v1/uploads/purge.
type UploadPurged struct {
	Purged     []UploadInfo `json:"purged"`
	BytesFreed int64        `json:"bytes_freed"`
}
