// Package authplugin is the top of MCR's authentication tree: the
// Authenticator that turns a bearer credential into an identity, the
// edge's authentication layer (Edge.Authenticate: every /v2 request, once,
// before anything else acts on it), the `mcr` access controller
// distribution calls to evaluate the policy with that identity, and the
// token endpoint (/v2/token).
//
// Dependencies point one way, downwards:
//
//	authplugin                 edge, access controller, token HTTP handler
//	├── identity/local         local accounts (store + token issuer)
//	├── identity/mcias         MCIAS client
//	├── token                  JWT signing/verification, scopes (leaf)
//	└── identity               Principal, Provider contract, errors (bottom)
//
// Only this package knows distribution's auth API; the identity providers
// and the token issuer never import distribution.
package authplugin
