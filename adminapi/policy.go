package adminapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/policyplugin"
	"git.wntrmute.dev/kyle/mcr/store"
)

// PolicyEvent is what the API reports after a rule change, for the audit
// log (policy_rule_created|updated|deleted).
type PolicyEvent struct {
	Type    string
	ActorID string
	Actor   string
	RuleID  int64
	Rule    *store.PolicyRule
}

// ruleFields are the matching fields of a rule as clients send them.
type ruleFields struct {
	Effect       policyplugin.Effect   `json:"effect"`
	Roles        []string              `json:"roles"`
	AccountTypes []string              `json:"account_types"`
	SubjectUUID  string                `json:"subject_uuid"`
	Actions      []policyplugin.Action `json:"actions"`
	Repositories []string              `json:"repositories"`
}

type createRuleRequest struct {
	Priority    int    `json:"priority"`
	Description string `json:"description"`
	Enabled     *bool  `json:"enabled"`
	ruleFields
}

type patchRuleRequest struct {
	Priority    *int        `json:"priority"`
	Description *string     `json:"description"`
	Enabled     *bool       `json:"enabled"`
	Rule        *ruleFields `json:"rule"`
}

func (f ruleFields) apply(r *policyplugin.Rule) {
	r.Effect, r.Roles, r.AccountTypes, r.SubjectUUID, r.Actions, r.Repositories =
		f.Effect, f.Roles, f.AccountTypes, f.SubjectUUID, f.Actions, f.Repositories
}

func validateRule(r *policyplugin.Rule) error {
	if err := r.Validate(); err != nil {
		return errorf(http.StatusBadRequest, err.Error())
	}
	return nil
}

func ruleID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, errorf(http.StatusBadRequest, "id: must be a positive integer")
	}
	return id, nil
}

func storeErr(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, what+" not found")
	}
	return err
}

type ruleList struct {
	Rules  []store.PolicyRule `json:"rules"`
	Total  int                `json:"total"`
	N      int                `json:"n"`
	Offset int                `json:"offset"`
}

func (a *API) listRules(c echo.Context) error {
	n, offset, err := pageParams(c, 100, 1000)
	if err != nil {
		return err
	}
	rules, total, err := a.opts.Store.ListPolicyRules(c.Request().Context(), n, offset)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ruleList{Rules: rules, Total: total, N: n, Offset: offset})
}

func (a *API) createRule(c echo.Context) error {
	var req createRuleRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	r := store.PolicyRule{Rule: policyplugin.Rule{Priority: req.Priority, Description: req.Description, Enabled: true}}
	if req.Enabled != nil {
		r.Enabled = *req.Enabled
	}
	req.apply(&r.Rule)
	if err := validateRule(&r.Rule); err != nil {
		return err
	}
	actor := principalOf(c).Username
	if err := a.opts.Store.CreatePolicyRule(c.Request().Context(), &r, actor); err != nil {
		return err
	}
	a.policyChanged(c, "policy_rule_created", r.ID, &r)
	return c.JSON(http.StatusCreated, r)
}

func (a *API) getRule(c echo.Context) error {
	id, err := ruleID(c)
	if err != nil {
		return err
	}
	r, err := a.opts.Store.PolicyRule(c.Request().Context(), id)
	if err != nil {
		return storeErr(err, "policy rule")
	}
	return c.JSON(http.StatusOK, r)
}

func (a *API) patchRule(c echo.Context) error {
	id, err := ruleID(c)
	if err != nil {
		return err
	}
	var req patchRuleRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	r, err := a.opts.Store.PolicyRule(ctx, id)
	if err != nil {
		return storeErr(err, "policy rule")
	}
	if req.Priority != nil {
		r.Priority = *req.Priority
	}
	if req.Description != nil {
		r.Description = *req.Description
	}
	if req.Enabled != nil {
		r.Enabled = *req.Enabled
	}
	if req.Rule != nil {
		req.Rule.apply(&r.Rule)
	}
	if err := validateRule(&r.Rule); err != nil {
		return err
	}
	if err := a.opts.Store.UpdatePolicyRule(ctx, r, principalOf(c).Username); err != nil {
		return storeErr(err, "policy rule")
	}
	a.policyChanged(c, "policy_rule_updated", r.ID, r)
	return c.JSON(http.StatusOK, r)
}

func (a *API) deleteRule(c echo.Context) error {
	id, err := ruleID(c)
	if err != nil {
		return err
	}
	if err := a.opts.Store.DeletePolicyRule(c.Request().Context(), id); err != nil {
		return storeErr(err, "policy rule")
	}
	a.policyChanged(c, "policy_rule_deleted", id, nil)
	return c.NoContent(http.StatusNoContent)
}

// policyChanged reloads the engine (so the next request sees the change)
// and records the event.
func (a *API) policyChanged(c echo.Context, typ string, id int64, r *store.PolicyRule) {
	if a.opts.Reload != nil {
		if err := a.opts.Reload(); err != nil {
			c.Logger().Error(err)
		}
	}
	if a.opts.OnPolicyChange != nil {
		a.opts.OnPolicyChange(c.Request(), PolicyEvent{Type: typ, ActorID: principalOf(c).Subject, Actor: principalOf(c).Username, RuleID: id, Rule: r})
	}
}

// pageParams reads n and offset with a default and a maximum.
func pageParams(c echo.Context, def, limit int) (n, offset int, err error) {
	n = def
	if s := c.QueryParam("n"); s != "" {
		n, err = strconv.Atoi(s)
		if err != nil || n < 1 {
			return 0, 0, errorf(http.StatusBadRequest, "n: must be a positive integer")
		}
		if n > limit {
			return 0, 0, errorf(http.StatusBadRequest, "n: must be at most "+strconv.Itoa(limit))
		}
	}
	if s := c.QueryParam("offset"); s != "" {
		offset, err = strconv.Atoi(s)
		if err != nil || offset < 0 {
			return 0, 0, errorf(http.StatusBadRequest, "offset: must be a non-negative integer")
		}
	}
	return n, offset, nil
}
