package adminsvc

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/mattn/go-sqlite3"
)

func TestCheckPage(t *testing.T) {
	for _, c := range []struct {
		err             string
		n, offset, want int
	}{
		{"", 0, 0, 50}, {"", 1, 0, 1}, {"", 1000, 5, 1000},
		{"n: must be a positive integer", -1, 0, 0}, {"n: must be at most 1000", 1001, 0, 0},
		{"offset: must be a non-negative integer", 10, -1, 0},
	} {
		got, err := CheckPage(c.n, c.offset, 50, 1000)
		if c.err != "" {
			if code, msg, _ := Classify(err); code != InvalidArgument || msg != c.err {
				t.Errorf("CheckPage(%d, %d) = %v, want InvalidArgument %q", c.n, c.offset, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("CheckPage(%d, %d) = %d, %v; want %d", c.n, c.offset, got, err, c.want)
		}
	}
}

func TestCheckRepoName(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"app", true}, {"team/app", true}, {"a/b/c-d_e.f", true},
		{"", false}, {"a..b", false}, {"/abs", false}, {"trailing/", false}, {"sp ace", false},
		{strings.Repeat("x", 300) + "!", false},
	} {
		err := CheckRepoName(c.name)
		if (err == nil) != c.ok {
			t.Errorf("CheckRepoName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil {
			if code, msg, _ := Classify(err); code != InvalidArgument || len(msg) > 300 {
				t.Errorf("CheckRepoName(%q): %v %q", c.name, code, msg)
			}
		}
	}
}

func TestClassifyAndHTTPStatus(t *testing.T) {
	cause := errors.New("open /srv/mcr/mcr.db: permission denied")
	for _, c := range []struct {
		err        error
		msg        string
		code       Code
		status     int
		unexpected bool
	}{
		{Errorf(InvalidArgument, "bad %s", "x"), "bad x", InvalidArgument, 400, false},
		{Errorf(Unauthenticated, "who"), "who", Unauthenticated, 401, false},
		{Errorf(PermissionDenied, "no"), "no", PermissionDenied, 403, false},
		{Errorf(NotFound, "gone"), "gone", NotFound, 404, false},
		{Errorf(FailedPrecondition, "busy"), "busy", FailedPrecondition, 409, false},
		{Errorf(TooLarge, "big"), "big", TooLarge, 413, false},
		{Errorf(Unimplemented, "n/a"), "n/a", Unimplemented, 501, false},
		{Errorf(Unavailable, "down"), "down", Unavailable, 502, false},
		// A cause is logged, never shown: no server path in the message.
		{internal("reading the audit log failed", cause), "reading the audit log failed", Internal, 500, true},
		{fmt.Errorf("wrapped: %w", Errorf(NotFound, "gone")), "gone", NotFound, 404, false},
		{cause, "internal error", Internal, 500, true},
		// A write the database's full disk refused: 507 with a fixed
		// message, whichever operation it was, and logged (unexpected).
		{internal("creating the policy rule failed", fmt.Errorf("insert: %w", sqlite3.Error{Code: sqlite3.ErrFull})),
			StorageFullMessage, StorageFull, 507, true},
		{fmt.Errorf("write /srv/mcr/mcr.db-wal: %w", syscall.ENOSPC), StorageFullMessage, StorageFull, 507, true},
		{internal("creating the account failed", syscall.EDQUOT), StorageFullMessage, StorageFull, 507, true},
	} {
		code, msg, unexpected := Classify(c.err)
		if code != c.code || msg != c.msg || unexpected != c.unexpected || code.HTTPStatus() != c.status {
			t.Errorf("Classify(%v) = %v %q %v (HTTP %d), want %v %q %v (HTTP %d)", c.err, code, msg, unexpected,
				code.HTTPStatus(), c.code, c.msg, c.unexpected, c.status)
		}
		if strings.Contains(msg, "/srv/") {
			t.Errorf("message %q names a server path", msg)
		}
	}
	for code := Internal; code <= StorageFull; code++ {
		if code.HTTPStatus() < http.StatusBadRequest {
			t.Errorf("code %d has no HTTP status", code)
		}
	}
}
