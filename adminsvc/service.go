// Package adminsvc is the business logic of MCR's admin API: one
// implementation behind two transports, the /v1 REST API (adminapi, Echo)
// and the gRPC API (grpcapi). Every operation takes the authenticated
// caller, validates its input, applies the role and policy checks and
// returns typed errors (*Error with a Code) that each transport maps to its
// own status: an HTTP status with {"error":"..."} or a gRPC code, with the
// same message.
//
//	svc := adminsvc.New(adminsvc.Options{Store: st, Authn: authn, Policy: engine, ...})
//	p, err := svc.Authenticate(ctx, token)
//	list, err := svc.ListRepositories(ctx, adminsvc.Caller{Principal: p}, adminsvc.RepoQuery{N: 50})
package adminsvc

import (
	"context"
	"net/http"
	"net/url"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/gc"
	"git.wntrmute.dev/kyle/mcr/store"
)

// Options carries the service's dependencies.
type Options struct {
	Store *store.Store
	Authn *authplugin.Authenticator
	// Policy decides what non-admin callers may see of repositories
	// (registry:pull, exactly as on /v2); nil shows them nothing.
	Policy   authplugin.Policy
	Recorder authplugin.Recorder
	// Reload is called after every policy change so the next request sees
	// it; its failure fails the change's answer (500) and is audited.
	Reload func() error
	// Audit records an audit event of an admin operation (policy changes,
	// snapshots); its failure fails the operation's answer.
	Audit func(ctx context.Context, ev store.AuditEvent) error
	// DeleteRepository removes a repository through distribution.
	DeleteRepository RepoDeleter
	// StorageCheck reports whether blob storage is reachable (health detail).
	StorageCheck func() error
	// AuditCheck reports whether audit events are being committed (health
	// detail).
	AuditCheck func() error
	// GC runs garbage collection; nil makes GC operations Unimplemented.
	GC GCService
	// Snapshot writes a database snapshot and returns its path; nil makes
	// Snapshot Unimplemented.
	Snapshot func(ctx context.Context) (string, error)
	// SignIn checks passwords (bounds, throttle, audit); nil: the
	// provider, unthrottled.
	SignIn *authplugin.SignIn
	// Accounts unlocks sign-ins and revokes tokens; nil makes those
	// operations Unimplemented.
	Accounts Accounts
	// Uploads lists and purges blob uploads; nil makes those operations
	// Unimplemented.
	Uploads UploadService
	// ReconcileIndex brings the repository index in line with storage and
	// returns what it changed; nil makes it Unimplemented.
	ReconcileIndex func(ctx context.Context) (any, error)
}

// Service is the admin API's logic. It is safe for concurrent use.
type Service struct{ opts Options }

// New returns a service over opts.
func New(opts Options) *Service { return &Service{opts: opts} }

// HasGC reports whether garbage collection is wired (REST registers the
// routes only then).
func (s *Service) HasGC() bool { return s.opts.GC != nil }

// HasAccounts reports whether account unlock and revocation are wired.
func (s *Service) HasAccounts() bool { return s.opts.Accounts != nil }

// HasSnapshot reports whether snapshots are wired.
func (s *Service) HasSnapshot() bool { return s.opts.Snapshot != nil }

// HasUploads reports whether upload listing and purging are wired.
func (s *Service) HasUploads() bool { return s.opts.Uploads != nil }

// HasReconcileIndex reports whether the index reconcile is wired.
func (s *Service) HasReconcileIndex() bool { return s.opts.ReconcileIndex != nil }

// Caller is who asks: the authenticated principal (nil before
// authentication) and the client's address, for the audit log.
type Caller struct {
	Principal *identity.Principal
	IP        string
	// Request is the HTTP request when the caller came over REST; the
	// Recorder's events take one. gRPC callers leave it nil and get a
	// request naming only the method and address (see request).
	Request *http.Request
	// Method names the operation for gRPC callers ("/mcr.v1.X/Y").
	Method string
}

// request is what the Recorder (an HTTP-shaped interface) is given.
func (c Caller) request() *http.Request {
	if c.Request != nil {
		return c.Request
	}
	return &http.Request{Method: "POST", URL: &url.URL{Path: c.Method}, RemoteAddr: c.IP, Header: http.Header{}}
}

func (c Caller) actor() (id, name string) {
	if c.Principal == nil {
		return "", ""
	}
	return c.Principal.Subject, c.Principal.Username
}

// RepoDeleter removes a repository (every manifest and tag) through
// distribution and records repo_deleted for actor.
type RepoDeleter func(ctx context.Context, name string, actor *identity.Principal, ip string) error

// GCService runs garbage collection; *gc.Runner implements it.
type GCService interface {
	// Start begins a run in the background and returns its id, or an
	// error wrapping gc.ErrRunning.
	Start(req gc.Request) (int64, error)
	// Status reports whether a run is in progress and the newest run.
	Status(ctx context.Context) (bool, *store.GCRun, error)
}
