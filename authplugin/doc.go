// Package authplugin is MCR's authentication for distribution: the token
// service (/v2/token, /v1/auth), the identity providers (local accounts,
// MCIAS) and the access controller that checks a bearer token and asks the
// policy engine for each scope distribution requests.
package authplugin
