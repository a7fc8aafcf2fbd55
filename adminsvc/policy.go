package adminsvc

import (
	"context"
	"errors"
	"log/slog"

	"git.wntrmute.dev/kyle/mcr/policyplugin"
	"git.wntrmute.dev/kyle/mcr/store"
)

// Rule list paging: default and maximum page size.
const (
	RulePageDefault = 100
	RulePageMax     = 1000
)

// RuleMatch is a rule's matching fields as clients send them.
type RuleMatch struct {
	Effect       policyplugin.Effect
	Roles        []string
	AccountTypes []string
	SubjectUUID  string
	Actions      []policyplugin.Action
	Repositories []string
}

func (m RuleMatch) apply(r *policyplugin.Rule) {
	r.Effect, r.Roles, r.AccountTypes, r.SubjectUUID, r.Actions, r.Repositories =
		m.Effect, m.Roles, m.AccountTypes, m.SubjectUUID, m.Actions, m.Repositories
}

// RuleCreate is a new rule; a nil Enabled means enabled.
type RuleCreate struct {
	Description string
	Enabled     *bool
	RuleMatch
	Priority int
}

// RulePatch changes only the fields given; Rule replaces every matching
// field at once.
type RulePatch struct {
	Priority    *int
	Description *string
	Enabled     *bool
	Rule        *RuleMatch
}

// RuleList is a page of rules ordered by priority then id.
type RuleList struct {
	Rules     []store.PolicyRule
	Total     int
	N, Offset int
}

// CheckRuleID validates a rule id.
func CheckRuleID(id int64) error {
	if id < 1 {
		return Errorf(InvalidArgument, "id: must be a positive integer")
	}
	return nil
}

func validateRule(r *policyplugin.Rule) error {
	if err := r.Validate(); err != nil {
		return Errorf(InvalidArgument, "%s", err.Error())
	}
	return nil
}

// ListRules returns a page of rules (admins only).
func (s *Service) ListRules(ctx context.Context, c Caller, n, offset int) (*RuleList, error) {
	if err := RequireAdmin(c.Principal); err != nil {
		return nil, err
	}
	n, err := CheckPage(n, offset, RulePageDefault, RulePageMax)
	if err != nil {
		return nil, err
	}
	rules, total, err := s.opts.Store.ListPolicyRules(ctx, n, offset)
	if err != nil {
		return nil, internal("listing policy rules failed", err)
	}
	return &RuleList{Rules: rules, Total: total, N: n, Offset: offset}, nil
}

// GetRule returns one rule (admins only).
func (s *Service) GetRule(ctx context.Context, c Caller, id int64) (*store.PolicyRule, error) {
	if err := RequireAdmin(c.Principal); err != nil {
		return nil, err
	}
	if err := CheckRuleID(id); err != nil {
		return nil, err
	}
	r, err := s.opts.Store.PolicyRule(ctx, id)
	if err != nil {
		return nil, storeErr(err, "policy rule")
	}
	return r, nil
}

// CreateRule stores a rule, reloads the policy and audits the change.
func (s *Service) CreateRule(ctx context.Context, c Caller, req RuleCreate) (*store.PolicyRule, error) {
	if err := RequireAdmin(c.Principal); err != nil {
		return nil, err
	}
	r := store.PolicyRule{Rule: policyplugin.Rule{Priority: req.Priority, Description: req.Description, Enabled: true}}
	if req.Enabled != nil {
		r.Enabled = *req.Enabled
	}
	req.apply(&r.Rule)
	if err := validateRule(&r.Rule); err != nil {
		return nil, err
	}
	if err := s.opts.Store.CreatePolicyRule(ctx, &r, c.Principal.Username); err != nil {
		return nil, internal("storing the policy rule failed", err)
	}
	if err := s.policyChanged(ctx, c, "policy_rule_created", r.ID, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// PatchRule updates a rule, reloads the policy and audits the change.
func (s *Service) PatchRule(ctx context.Context, c Caller, id int64, p RulePatch) (*store.PolicyRule, error) {
	if err := RequireAdmin(c.Principal); err != nil {
		return nil, err
	}
	if err := CheckRuleID(id); err != nil {
		return nil, err
	}
	r, err := s.opts.Store.PolicyRule(ctx, id)
	if err != nil {
		return nil, storeErr(err, "policy rule")
	}
	if p.Priority != nil {
		r.Priority = *p.Priority
	}
	if p.Description != nil {
		r.Description = *p.Description
	}
	if p.Enabled != nil {
		r.Enabled = *p.Enabled
	}
	if p.Rule != nil {
		p.Rule.apply(&r.Rule)
	}
	if err := validateRule(&r.Rule); err != nil {
		return nil, err
	}
	if err := s.opts.Store.UpdatePolicyRule(ctx, r, c.Principal.Username); err != nil {
		return nil, storeErr(err, "policy rule")
	}
	if err := s.policyChanged(ctx, c, "policy_rule_updated", r.ID, r); err != nil {
		return nil, err
	}
	return r, nil
}

// DeleteRule removes a rule, reloads the policy and audits the change.
func (s *Service) DeleteRule(ctx context.Context, c Caller, id int64) error {
	if err := RequireAdmin(c.Principal); err != nil {
		return err
	}
	if err := CheckRuleID(id); err != nil {
		return err
	}
	if err := s.opts.Store.DeletePolicyRule(ctx, id); err != nil {
		return storeErr(err, "policy rule")
	}
	return s.policyChanged(ctx, c, "policy_rule_deleted", id, nil)
}

// policyChanged reloads the engine so the next request sees the change,
// and records the change. The change is already stored, so it is audited
// whatever the reload does; a failed reload is audited too
// (policy_reload_failed) and answers Internal: the server keeps enforcing
// the previous rules until a reload succeeds, and the caller must know.
func (s *Service) policyChanged(ctx context.Context, c Caller, typ string, id int64, r *store.PolicyRule) error {
	var reloadErr error
	if s.opts.Reload != nil {
		reloadErr = s.opts.Reload()
	}
	actorID, actor := c.actor()
	details := map[string]any{"rule_id": id}
	if r != nil {
		details["rule"] = r.Rule
	}
	slog.Info(typ, "actor", actor, "rule", id)
	auditErr := s.audit(ctx, store.AuditEvent{Type: typ, ActorID: actorID, Actor: actor, IP: c.IP, Details: details})
	if reloadErr != nil {
		slog.Error("policy reload failed after a rule change; the previous rules stay in force", "change", typ, "rule", id, "err", reloadErr)
		if err := s.audit(ctx, store.AuditEvent{Type: "policy_reload_failed", ActorID: actorID, Actor: actor, IP: c.IP,
			Details: map[string]any{"rule_id": id, "change": typ, "error": reloadErr.Error()}}); err != nil {
			auditErr = err
		}
		return &Error{Code: Internal, Err: errors.Join(reloadErr, auditErr), Message: "policy rule " + itoa(id) +
			" was saved, but reloading the policy failed: the previous rules are still enforced (see the server log)"}
	}
	return auditErr
}

// audit records ev; a failure is the operation's failure.
func (s *Service) audit(ctx context.Context, ev store.AuditEvent) error {
	if s.opts.Audit == nil {
		return nil
	}
	if err := s.opts.Audit(ctx, ev); err != nil {
		return internal("recording the audit event failed", err)
	}
	return nil
}
