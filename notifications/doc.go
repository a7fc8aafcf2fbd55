// Package notifications turns distribution's registry events into MCR's
// audit log and repository index.
//
// A repository middleware ("mcr-events") wraps every repository with
// distribution's notifications.Listen and a bridge of ours that knows the
// request (principal, client IP, method). The bridge writes Events into a
// Sink: events of changes (push, delete, mount) are committed before the
// request returns, through group commit (concurrent requests share one
// SQLite transaction); pulls go through a go-events queue and are written
// asynchronously in batches. HEAD probes are not pulls. Close flushes all.
//
//	sink := notifications.NewSink(st, notifications.Options{})
//	defer sink.Close() // after the HTTP server has drained
//	dc.Middleware = map[string][]configuration.Middleware{
//		"repository": {notifications.Middleware(sink)},
//	}
package notifications
