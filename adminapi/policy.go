package adminapi

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/adminsvc"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
	"git.wntrmute.dev/kyle/mcr/store"
)

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
	Description string `json:"description"`
	Enabled     *bool  `json:"enabled"`
	ruleFields
	Priority int `json:"priority"`
}

type patchRuleRequest struct {
	Priority    *int        `json:"priority"`
	Description *string     `json:"description"`
	Enabled     *bool       `json:"enabled"`
	Rule        *ruleFields `json:"rule"`
}

func (f ruleFields) match() adminsvc.RuleMatch {
	return adminsvc.RuleMatch{Effect: f.Effect, Roles: f.Roles, AccountTypes: f.AccountTypes,
		SubjectUUID: f.SubjectUUID, Actions: f.Actions, Repositories: f.Repositories}
}

func ruleID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return 0, adminsvc.CheckRuleID(0)
	}
	return id, nil
}

type ruleList struct {
	Rules  []store.PolicyRule `json:"rules"`
	Total  int                `json:"total"`
	N      int                `json:"n"`
	Offset int                `json:"offset"`
}

func (a *API) listRules(c echo.Context) error {
	n, offset, err := pageParams(c)
	if err != nil {
		return err
	}
	l, err := a.svc.ListRules(c.Request().Context(), caller(c), n, offset)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ruleList{Rules: l.Rules, Total: l.Total, N: l.N, Offset: l.Offset})
}

func (a *API) createRule(c echo.Context) error {
	var req createRuleRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	r, err := a.svc.CreateRule(c.Request().Context(), caller(c), adminsvc.RuleCreate{
		Priority: req.Priority, Description: req.Description, Enabled: req.Enabled, RuleMatch: req.match()})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, r)
}

func (a *API) getRule(c echo.Context) error {
	id, err := ruleID(c)
	if err != nil {
		return err
	}
	r, err := a.svc.GetRule(c.Request().Context(), caller(c), id)
	if err != nil {
		return err
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
	p := adminsvc.RulePatch{Priority: req.Priority, Description: req.Description, Enabled: req.Enabled}
	if req.Rule != nil {
		m := req.Rule.match()
		p.Rule = &m
	}
	r, err := a.svc.PatchRule(c.Request().Context(), caller(c), id, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

func (a *API) deleteRule(c echo.Context) error {
	id, err := ruleID(c)
	if err != nil {
		return err
	}
	if err := a.svc.DeleteRule(c.Request().Context(), caller(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// pageParams reads n and offset; absent is 0 (the service's default). A
// given n must be a positive integer.
func pageParams(c echo.Context) (n, offset int, err error) {
	if s := c.QueryParam("n"); s != "" {
		n, err = strconv.Atoi(s)
		if err != nil || n < 1 {
			return 0, 0, adminsvc.Errorf(adminsvc.InvalidArgument, "n: must be a positive integer")
		}
	}
	if s := c.QueryParam("offset"); s != "" {
		offset, err = strconv.Atoi(s)
		if err != nil || offset < 0 {
			return 0, 0, adminsvc.Errorf(adminsvc.InvalidArgument, "offset: must be a non-negative integer")
		}
	}
	return n, offset, nil
}
