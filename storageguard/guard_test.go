package storageguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"

	"git.wntrmute.dev/kyle/mcr/edge/exchange"
)

func TestIsFull(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{syscall.ENOSPC, true},
		{&os.PathError{Op: "write", Path: "/x", Err: syscall.EDQUOT}, true},
		{fmt.Errorf("wrapped: %w", ErrFull), true},
		{syscall.EIO, false},
		{errors.New("no space left on device"), false}, // only real errnos count
	} {
		if got := IsFull(tc.err); got != tc.want {
			t.Errorf("IsFull(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestWrapRewritesOnlyFullFailures: a 5xx after the driver reported a full
// disk becomes 507 with an OCI body and no path; other answers pass.
func TestWrapRewritesOnlyFullFailures(t *testing.T) {
	g := New("", 0)
	d := g.Driver(inmemory.New())
	full := &failingDriver{}
	fd := g.Driver(full)
	for _, tc := range []struct {
		handler  func(w http.ResponseWriter, r *http.Request)
		name     string
		wantCode int
	}{
		{func(w http.ResponseWriter, r *http.Request) {
			err := fd.PutContent(r.Context(), "/p", []byte("x"))
			http.Error(w, "write /srv/mcr/layers/x: "+err.Error(), http.StatusInternalServerError)
		}, "full", http.StatusInsufficientStorage},
		{func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}, "other 500", http.StatusInternalServerError},
		{func(w http.ResponseWriter, r *http.Request) {
			_ = fd.PutContent(r.Context(), "/p", []byte("x"))
			http.Error(w, "bad", http.StatusBadRequest)
		}, "full but answered 4xx", http.StatusBadRequest},
		{func(w http.ResponseWriter, r *http.Request) {
			if err := d.PutContent(r.Context(), "/p", []byte("x")); err != nil {
				t.Error(err)
			}
			w.WriteHeader(http.StatusCreated)
		}, "ok", http.StatusCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			// Inside the exchange, as the edge places it: Wrap amends the
			// answer through the exchange's one writer.
			exchange.Begin(Wrap(http.HandlerFunc(tc.handler))).ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/v2/a/blobs/uploads/x", nil))
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantCode)
			}
			if tc.wantCode == http.StatusInsufficientStorage {
				var body struct {
					Errors []struct{ Code, Message string } `json:"errors"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 ||
					body.Errors[0].Code != "UNKNOWN" || body.Errors[0].Message != Message {
					t.Fatalf("body %q (%v)", rec.Body.String(), err)
				}
				if strings.Contains(rec.Body.String(), "/srv") {
					t.Fatalf("body leaks a path: %s", rec.Body.String())
				}
			}
		})
	}
}

// failingDriver answers every write with ENOSPC.
type failingDriver struct{ inmemoryDriver }

type inmemoryDriver = *inmemory.Driver

func (failingDriver) PutContent(context.Context, string, []byte) error {
	return &os.PathError{Op: "write", Path: "/srv/mcr/layers/x", Err: syscall.ENOSPC}
}
