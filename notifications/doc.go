// Package notifications turns distribution's registry events into MCR's
// audit log and repository index.
//
// A repository middleware ("mcr-events") wraps every repository with
// distribution's notifications.Listen and a bridge of ours that knows the
// request (principal, client IP, method). Given a RepositoryOpener, it
// wraps a repository reopened from the registry instead of the App's: the
// App puts its own listener around every repository, whose events (with
// no endpoints configured) go nowhere, but which re-parses every pulled
// manifest to build them, about an eighth of a manifest GET's CPU. The bridge writes Events into a
// Sink: events of changes (push, delete, mount) are committed before the
// request returns, through group commit (concurrent requests share one
// SQLite transaction); pulls go through a go-events queue and are written
// asynchronously in batches. HEAD probes are not pulls. Close flushes all.
//
// A change whose event cannot be committed fails its request (durable.go:
// distribution's listener only logs a listener's error). Commits are
// bounded by the request's context and Options.CommitTimeout; a batch that
// fails for a bad event is retried event by event, so one bad event never
// fails the others.
//
//	sink := notifications.NewSink(st, notifications.Options{})
//	defer sink.Close() // after the HTTP server has drained
//	dc.Middleware = map[string][]configuration.Middleware{
//		"repository": {notifications.Middleware(sink, opener)},
//	}
package notifications
