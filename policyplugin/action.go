package policyplugin

import "fmt"

// Action is an operation a principal asks to perform.
type Action string

// The actions MCR knows about.
const (
	ActionVersionCheck Action = "registry:version_check"
	ActionPull         Action = "registry:pull"
	ActionPush         Action = "registry:push"
	ActionDelete       Action = "registry:delete"
	ActionCatalog      Action = "registry:catalog"
	ActionPolicyManage Action = "policy:manage"
)

// numActions is the number of known actions; actionIndex maps each to
// 0..numActions-1.
const numActions = 6

// AllActions returns every known action, in a fixed order. The slice is
// freshly allocated and may be modified by the caller.
func AllActions() []Action {
	return []Action{
		ActionVersionCheck,
		ActionPull,
		ActionPush,
		ActionDelete,
		ActionCatalog,
		ActionPolicyManage,
	}
}

// actionIndex returns the dense index of a known action, or -1.
func actionIndex(a Action) int {
	switch a {
	case ActionVersionCheck:
		return 0
	case ActionPull:
		return 1
	case ActionPush:
		return 2
	case ActionDelete:
		return 3
	case ActionCatalog:
		return 4
	case ActionPolicyManage:
		return 5
	}
	return -1
}

// Valid reports whether a is one of the known actions.
func (a Action) Valid() bool { return actionIndex(a) >= 0 }

// String returns the action's wire form, e.g. "registry:pull".
func (a Action) String() string { return string(a) }

// ParseAction returns the known action spelled s, or an error.
func ParseAction(s string) (Action, error) {
	a := Action(s)
	if !a.Valid() {
		return "", fmt.Errorf("policyplugin: unknown action %q", s)
	}
	return a, nil
}

// ActionFor maps a distribution-style access record (the resource type,
// name and action of a token scope such as "repository:library/alpine:pull")
// to a policy action and the repository it concerns.
//
//	repository:<name>:pull   -> ActionPull,    <name>
//	repository:<name>:push   -> ActionPush,    <name>
//	repository:<name>:delete -> ActionDelete,  <name>
//	registry:catalog:*       -> ActionCatalog, ""
//
// Anything else (including repository:<name>:*) is not mapped and ok is
// false; callers must treat an unmapped record as denied.
func ActionFor(resourceType, resourceName, action string) (Action, string, bool) {
	switch resourceType {
	case "repository":
		if resourceName == "" {
			return "", "", false
		}
		switch action {
		case "pull":
			return ActionPull, resourceName, true
		case "push":
			return ActionPush, resourceName, true
		case "delete":
			return ActionDelete, resourceName, true
		}
	case "registry":
		if resourceName == "catalog" && action == "*" {
			return ActionCatalog, "", true
		}
	}
	return "", "", false
}
