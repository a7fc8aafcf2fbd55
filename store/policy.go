package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"git.wntrmute.dev/kyle/mcr/policyplugin"
)

// PolicyRule is a stored rule with its bookkeeping columns.
type PolicyRule struct {
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedBy string    `json:"updated_by"`
	UpdatedAt time.Time `json:"updated_at"`
	policyplugin.Rule
}

// ruleBody is what rule_json holds: the matching fields. Priority, effect,
// description and enabled have their own columns.
type ruleBody struct {
	Roles        []string              `json:"roles,omitempty"`
	AccountTypes []string              `json:"account_types,omitempty"`
	SubjectUUID  string                `json:"subject_uuid,omitempty"`
	Actions      []policyplugin.Action `json:"actions"`
	Repositories []string              `json:"repositories,omitempty"`
}

const ruleCols = `id, priority, description, effect, rule_json, enabled, created_by, created_at, updated_by, updated_at`

func scanRule(row interface{ Scan(...any) error }) (*PolicyRule, error) {
	var r PolicyRule
	var body, c, u string
	var enabled int
	if err := row.Scan(&r.ID, &r.Priority, &r.Description, &r.Effect, &body, &enabled, &r.CreatedBy, &c, &r.UpdatedBy, &u); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	var b ruleBody
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		return nil, fmt.Errorf("rule %d: corrupt rule_json: %w", r.ID, err)
	}
	r.Roles, r.AccountTypes, r.SubjectUUID, r.Actions, r.Repositories = b.Roles, b.AccountTypes, b.SubjectUUID, b.Actions, b.Repositories
	r.Enabled = enabled != 0
	r.CreatedAt, _ = time.Parse(time.RFC3339Nano, c)
	r.UpdatedAt, _ = time.Parse(time.RFC3339Nano, u)
	return &r, nil
}

func bodyOf(r policyplugin.Rule) (string, error) {
	b, err := json.Marshal(ruleBody{Roles: r.Roles, AccountTypes: r.AccountTypes, SubjectUUID: r.SubjectUUID, Actions: r.Actions, Repositories: r.Repositories})
	return string(b), err
}

// CreatePolicyRule stores a new rule and sets its ID.
func (s *Store) CreatePolicyRule(ctx context.Context, r *PolicyRule, by string) error {
	body, err := bodyOf(r.Rule)
	if err != nil {
		return fmt.Errorf("store: create rule: %w", err)
	}
	now := time.Now().UTC()
	err = s.db.QueryRowContext(ctx, `INSERT INTO policy_rules(priority, description, effect, rule_json, enabled, created_by, created_at, updated_by, updated_at)
		VALUES (?,?,?,?,?,?,?,?,?) RETURNING id`, r.Priority, r.Description, string(r.Effect), body, boolInt(r.Enabled), by, now.Format(time.RFC3339Nano), by, now.Format(time.RFC3339Nano)).Scan(&r.ID)
	if err != nil {
		return fmt.Errorf("store: create rule: %w", err)
	}
	r.CreatedBy, r.UpdatedBy, r.CreatedAt, r.UpdatedAt = by, by, now, now
	return nil
}

// UpdatePolicyRule overwrites a rule's fields.
func (s *Store) UpdatePolicyRule(ctx context.Context, r *PolicyRule, by string) error {
	body, err := bodyOf(r.Rule)
	if err != nil {
		return fmt.Errorf("store: update rule: %w", err)
	}
	now := time.Now().UTC()
	res, err := s.db.ExecContext(ctx, `UPDATE policy_rules SET priority=?, description=?, effect=?, rule_json=?, enabled=?, updated_by=?, updated_at=? WHERE id=?`,
		r.Priority, r.Description, string(r.Effect), body, boolInt(r.Enabled), by, now.Format(time.RFC3339Nano), r.ID)
	if err != nil {
		return fmt.Errorf("store: update rule %d: %w", r.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: rule %d: %w", r.ID, ErrNotFound)
	}
	r.UpdatedBy, r.UpdatedAt = by, now
	return nil
}

// DeletePolicyRule removes a rule.
func (s *Store) DeletePolicyRule(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM policy_rules WHERE id=?`, id)
	if err != nil {
		return fmt.Errorf("store: delete rule %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: rule %d: %w", id, ErrNotFound)
	}
	return nil
}

// PolicyRule returns one rule.
func (s *Store) PolicyRule(ctx context.Context, id int64) (*PolicyRule, error) {
	r, err := scanRule(s.db.QueryRowContext(ctx, `SELECT `+ruleCols+` FROM policy_rules WHERE id=?`, id))
	if err != nil {
		return nil, fmt.Errorf("store: rule %d: %w", id, err)
	}
	return r, nil
}

// ListPolicyRules returns rules ordered by priority then id, paginated.
func (s *Store) ListPolicyRules(ctx context.Context, limit, offset int) ([]PolicyRule, int, error) {
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM policy_rules`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: list rules: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+ruleCols+` FROM policy_rules ORDER BY priority, id LIMIT ? OFFSET ?`, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list rules: %w", err)
	}
	defer rows.Close()
	out := []PolicyRule{}
	for rows.Next() {
		r, err := scanRule(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("store: list rules: %w", err)
		}
		out = append(out, *r)
	}
	return out, total, rows.Err()
}

// EnabledRules implements policyplugin.RuleSource.
func (s *Store) EnabledRules(ctx context.Context) ([]policyplugin.Rule, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+ruleCols+` FROM policy_rules WHERE enabled=1 ORDER BY priority, id`)
	if err != nil {
		return nil, fmt.Errorf("store: enabled rules: %w", err)
	}
	defer rows.Close()
	var out []policyplugin.Rule
	for rows.Next() {
		r, err := scanRule(rows)
		if err != nil {
			return nil, fmt.Errorf("store: enabled rules: %w", err)
		}
		out = append(out, r.Rule)
	}
	return out, rows.Err()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
