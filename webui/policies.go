package webui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
)

// The choices the policy form offers (DESIGN §5).
var (
	policyActions = []string{"registry:pull", "registry:push", "registry:delete", "registry:catalog",
		"registry:version_check", "policy:manage"}
	policyRoles        = []string{"admin", "user", "guest"}
	policyAccountTypes = []string{"human", "system"}
)

// ruleForm is the create form's values, kept to show the form again.
type ruleForm struct {
	Priority     string
	Description  string
	Effect       string
	Actions      []string
	Roles        []string
	SubjectUUID  string
	Repositories string
	Error        string
	AccountTypes []string
	Enabled      bool
}

// policiesData is the policies page's content.
type policiesData struct {
	Rules        []PolicyRule
	Form         *ruleForm
	EditError    string
	Rows         []*ruleRow
	Actions      []string
	Roles        []string
	AccountTypes []string
	EditID       int64
	DeleteID     int64
}

// ruleRow is what the rule-row partial receives.
type ruleRow struct {
	CSRF     string
	Error    string
	Priority string
	Desc     string
	R        PolicyRule
	Edit     bool
	Confirm  bool
}

// fill sets the edit form's values from the rule when none were posted.
func (row *ruleRow) fill() {
	if row.Edit && row.Priority == "" && row.Desc == "" {
		row.Priority, row.Desc = strconv.Itoa(row.R.Priority), row.R.Description
	}
}

func newPoliciesData() *policiesData {
	return &policiesData{
		Form:    &ruleForm{Priority: "100", Effect: "deny", Enabled: true},
		Actions: policyActions, Roles: policyRoles, AccountTypes: policyAccountTypes,
	}
}

func (srv *Server) renderPolicies(w http.ResponseWriter, r *http.Request, s *Session, status int, d *policiesData) error {
	list, err := srv.api.Rules(r.Context(), s.Token)
	if err != nil {
		return err
	}
	d.Rules = list.Rules
	v := srv.newView(w, r, s, "Policies", "policies", d)
	for _, rule := range list.Rules {
		row := &ruleRow{CSRF: v.CSRF, R: rule, Edit: rule.ID == d.EditID, Confirm: rule.ID == d.DeleteID}
		if row.Edit {
			row.Error = d.EditError
		}
		row.fill()
		d.Rows = append(d.Rows, row)
	}
	srv.render(w, status, "policies", v)
	return nil
}

func (srv *Server) policies(w http.ResponseWriter, r *http.Request, s *Session) error {
	return srv.renderPolicies(w, r, s, http.StatusOK, newPoliciesData())
}

// splitList splits "a, b c" into ["a","b","c"].
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// onlyKnown reports whether every value is one of allowed.
func onlyKnown(values, allowed []string) bool {
	for _, v := range values {
		if !contains(allowed, v) {
			return false
		}
	}
	return true
}

// maxDescription is the longest rule description the forms accept.
const maxDescription = 500

// ruleText is the priority and description that the create and the edit
// form both post, as typed (trimmed) and checked.
type ruleText struct {
	PriorityText string
	Description  string
	Priority     int
	PriorityOK   bool // a whole number >= 1
	DescOK       bool // at most maxDescription bytes
}

// readRuleText reads and checks the priority and description fields.
func readRuleText(r *http.Request) ruleText {
	t := ruleText{
		PriorityText: strings.TrimSpace(r.PostFormValue("priority")),
		Description:  strings.TrimSpace(r.PostFormValue("description")),
	}
	prio, err := strconv.Atoi(t.PriorityText)
	t.Priority, t.PriorityOK = prio, err == nil && prio >= 1
	t.DescOK = len(t.Description) <= maxDescription
	return t
}

func (srv *Server) policyCreate(w http.ResponseWriter, r *http.Request, s *Session) error {
	_ = r.ParseForm()
	text := readRuleText(r)
	f := &ruleForm{
		Priority: text.PriorityText, Description: text.Description,
		Effect: r.PostForm.Get("effect"), Actions: r.PostForm["actions"], Roles: r.PostForm["roles"],
		AccountTypes: r.PostForm["account_types"], SubjectUUID: strings.TrimSpace(r.PostForm.Get("subject_uuid")),
		Repositories: strings.TrimSpace(r.PostForm.Get("repositories")), Enabled: r.PostForm.Get("enabled") != "",
	}
	again := func(msg string) error {
		f.Error = msg
		d := newPoliciesData()
		d.Form = f
		return srv.renderPolicies(w, r, s, http.StatusUnprocessableEntity, d)
	}
	switch {
	case !text.PriorityOK:
		return again("Priority must be a whole number of 1 or more (lower numbers are evaluated first).")
	case f.Effect != "allow" && f.Effect != "deny":
		return again("Choose whether the rule allows or denies.")
	case len(f.Actions) == 0:
		return again("Choose at least one action the rule applies to.")
	case !onlyKnown(f.Actions, policyActions) || !onlyKnown(f.Roles, policyRoles) || !onlyKnown(f.AccountTypes, policyAccountTypes):
		return again("The form held an unknown action, role or account type; reload the page and try again.")
	case !text.DescOK:
		return again("The description is too long (500 characters at most).")
	}
	enabled := f.Enabled
	rule, err := srv.api.CreateRule(r.Context(), s.Token, RuleCreate{
		Priority: text.Priority, Description: f.Description, Enabled: &enabled,
		RuleMatch: apitypes.RuleMatch{Effect: f.Effect, Roles: f.Roles, AccountTypes: f.AccountTypes,
			SubjectUUID: f.SubjectUUID, Actions: f.Actions, Repositories: splitList(f.Repositories)},
	})
	if err != nil {
		if statusOf(err) == http.StatusBadRequest {
			return again("The registry rejected the rule: " + messageOf(err) + ".")
		}
		return err
	}
	srv.redirect(w, r, "/policies?"+url.Values{"done": {"rule-created"}, "name": {"#" + strconv.FormatInt(rule.ID, 10)}}.Encode())
	return nil
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, &pageError{Status: http.StatusNotFound, Title: "Rule not found", Message: "“" + r.PathValue("id") + "” is not a policy rule id.",
			Hint: "Pick a rule from the policies page."}
	}
	return id, nil
}

func ruleNotFound(id int64) *pageError {
	return &pageError{Status: http.StatusNotFound, Title: "Rule not found",
		Message: "There is no policy rule #" + strconv.FormatInt(id, 10) + "; it may have been deleted.", Hint: "Reload the policies page."}
}

// rule fetches one rule, mapping 404 to a clear page.
func (srv *Server) rule(r *http.Request, s *Session, id int64) (*PolicyRule, error) {
	rule, err := srv.api.Rule(r.Context(), s.Token, id)
	if statusOf(err) == http.StatusNotFound {
		return nil, ruleNotFound(id)
	}
	return rule, err
}

// pathRule is the rule the request's path names.
func (srv *Server) pathRule(r *http.Request, s *Session) (*PolicyRule, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	return srv.rule(r, s, id)
}

// ruleChanged answers a successful change of a rule: its new row to htmx,
// the list with a notice to a plain form post.
func (srv *Server) ruleChanged(w http.ResponseWriter, r *http.Request, s *Session, updated *PolicyRule) error {
	if !isHTMX(r) {
		srv.redirect(w, r, "/policies?"+url.Values{"done": {"rule-updated"}, "name": {"#" + strconv.FormatInt(updated.ID, 10)}}.Encode())
		return nil
	}
	return srv.rowOrPage(w, r, s, http.StatusOK, &ruleRow{R: *updated})
}

// rowOrPage answers an htmx row operation with the row, and a plain
// request with the policies page.
func (srv *Server) rowOrPage(w http.ResponseWriter, r *http.Request, s *Session, status int, row *ruleRow) error {
	if isHTMX(r) {
		row.CSRF = srv.csrfFor(w, r, s.ID)
		row.fill()
		srv.partial(w, status, "policies", "rule-row", row)
		return nil
	}
	d := newPoliciesData()
	if row.Edit {
		d.EditID, d.EditError = row.R.ID, row.Error
	}
	if row.Confirm {
		d.DeleteID = row.R.ID
	}
	return srv.renderPolicies(w, r, s, status, d)
}

func (srv *Server) policyRow(w http.ResponseWriter, r *http.Request, s *Session) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if !isHTMX(r) {
		srv.redirect(w, r, "/policies")
		return nil
	}
	rule, err := srv.rule(r, s, id)
	if err != nil {
		return err
	}
	return srv.rowOrPage(w, r, s, http.StatusOK, &ruleRow{R: *rule})
}

func (srv *Server) policyEdit(w http.ResponseWriter, r *http.Request, s *Session) error {
	rule, err := srv.pathRule(r, s)
	if err != nil {
		return err
	}
	return srv.rowOrPage(w, r, s, http.StatusOK, &ruleRow{R: *rule, Edit: true})
}

func (srv *Server) policyUpdate(w http.ResponseWriter, r *http.Request, s *Session) error {
	rule, err := srv.pathRule(r, s)
	if err != nil {
		return err
	}
	id := rule.ID
	text := readRuleText(r)
	again := func(msg string) error {
		return srv.rowOrPage(w, r, s, http.StatusUnprocessableEntity, &ruleRow{R: *rule, Edit: true,
			Priority: text.PriorityText, Desc: text.Description, Error: msg})
	}
	switch {
	case !text.PriorityOK:
		return again("Priority must be a whole number of 1 or more.")
	case !text.DescOK:
		return again("The description is too long (500 characters at most).")
	}
	updated, err := srv.api.PatchRule(r.Context(), s.Token, id, RulePatch{Priority: &text.Priority, Description: &text.Description})
	if err != nil {
		if statusOf(err) == http.StatusBadRequest {
			return again("The registry rejected the change: " + messageOf(err) + ".")
		}
		if statusOf(err) == http.StatusNotFound {
			return ruleNotFound(id)
		}
		return err
	}
	return srv.ruleChanged(w, r, s, updated)
}

func (srv *Server) policyToggle(w http.ResponseWriter, r *http.Request, s *Session) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var enabled bool
	switch r.PostFormValue("enabled") {
	case "true":
		enabled = true
	case "false":
	default:
		return &pageError{Status: http.StatusBadRequest, Title: "Bad request", Message: "The toggle form must say enabled=true or enabled=false."}
	}
	updated, err := srv.api.PatchRule(r.Context(), s.Token, id, RulePatch{Enabled: &enabled})
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return ruleNotFound(id)
		}
		return err
	}
	return srv.ruleChanged(w, r, s, updated)
}

func (srv *Server) policyDeleteConfirm(w http.ResponseWriter, r *http.Request, s *Session) error {
	rule, err := srv.pathRule(r, s)
	if err != nil {
		return err
	}
	return srv.rowOrPage(w, r, s, http.StatusOK, &ruleRow{R: *rule, Confirm: true})
}

func (srv *Server) policyDelete(w http.ResponseWriter, r *http.Request, s *Session) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := srv.api.DeleteRule(r.Context(), s.Token, id); err != nil {
		if statusOf(err) == http.StatusNotFound {
			return ruleNotFound(id)
		}
		return err
	}
	if isHTMX(r) {
		// The row is swapped for nothing: it disappears.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	srv.redirect(w, r, "/policies?"+url.Values{"done": {"rule-deleted"}, "name": {"#" + strconv.FormatInt(id, 10)}}.Encode())
	return nil
}
