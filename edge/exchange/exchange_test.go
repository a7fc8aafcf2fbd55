package exchange

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

func TestClassify(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	for _, tc := range []struct {
		method, path string
		want         Route
	}{
		{"GET", "/v2/", Route{Name: "base"}},
		{"GET", "/v2/_catalog", Route{Name: "catalog"}},
		{"GET", "/v2/team/app/tags/list", Route{Name: "tags", Repository: "team/app"}},
		{"PUT", "/v2/team/app/manifests/v1", Route{Name: "manifest", Repository: "team/app", Reference: "v1"}},
		{"GET", "/v2/a/manifests/" + d, Route{Name: "manifest", Repository: "a", Reference: d}},
		{"HEAD", "/v2/a/b/c/blobs/" + d, Route{Name: "blob", Repository: "a/b/c", Digest: d}},
		{"POST", "/v2/a/blobs/uploads/", Route{Name: "blob-upload", Repository: "a"}},
		{"PATCH", "/v2/a/blobs/uploads/abc-123", Route{Name: "blob-upload-chunk", Repository: "a", UUID: "abc-123"}},
		{"GET", "/v2/a/referrers/" + d, Route{Name: RouteReferrers, Repository: "a", Digest: d}},
		{"GET", "/v2/a/referrers/not-a-digest", Route{Name: RouteReferrers, Repository: "a", Digest: "not-a-digest"}},
		{"GET", "/v2/token", Route{Name: RouteToken}},
		{"GET", "/v2/UPPER/manifests/v1", Route{Name: RouteV2Other}},
		{"GET", "/v2/a/blobs/not-a-digest", Route{Name: RouteV2Other}},
		{"GET", "/v2/a/unknown/x", Route{Name: RouteV2Other}},
		{"GET", "/v1/repositories/a/b", Route{Name: "v1_repositories"}},
		{"GET", "/v1/rnd115531", Route{Name: "v1_other"}},
		{"GET", "/", Route{Name: RouteOther}},
		{"GET", "/v2x", Route{Name: RouteOther}},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			if got := Classify(httptest.NewRequest(tc.method, tc.path, nil)); got != tc.want {
				t.Fatalf("Classify = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Every name Classify returns is in Names, and Names is small.
func TestRouteNamesFixed(t *testing.T) {
	names := Names()
	if len(names) > 25 {
		t.Fatalf("%d route names", len(names))
	}
	for _, p := range []string{"/v2/", "/v2/_catalog", "/v2/a/tags/list", "/v2/a/manifests/x", "/v2/a/blobs/uploads/",
		"/v2/a/blobs/uploads/u", "/v2/token", "/v2/zz", "/v1/zz", "/v1/health", "/zz", "/v1/gc/status", "/v1/policy/rules/3"} {
		if n := Classify(httptest.NewRequest("GET", p, nil)).Name; !slices.Contains(names, n) {
			t.Errorf("%s classified as %q, not in Names()", p, n)
		}
	}
}

func TestLabels(t *testing.T) {
	for in, want := range map[string]string{"GET": "GET", "PATCH": "PATCH", "OPTIONS": "OPTIONS", "FOOBAR": "other", "get": "other", "": "other"} {
		if got := MethodLabel(in); got != want {
			t.Errorf("MethodLabel(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int]string{200: "200", 599: "599", 99: "other", 600: "other", 0: "other"} {
		if got := StatusLabel(in); got != want {
			t.Errorf("StatusLabel(%d) = %q, want %q", in, got, want)
		}
	}
}

// The one writer: hooks see the status first and may change headers; a
// hook's error replaces the response and discards the handler's body.
func TestWriterHooks(t *testing.T) {
	for _, tc := range []struct {
		name       string
		handler    func(w http.ResponseWriter)
		hook       HeaderHook
		wantBody   string
		wantHeader string
		wantStatus int
	}{
		{"implicit 200 seen", func(w http.ResponseWriter) { _, _ = w.Write([]byte("hi")) },
			func(s int, h http.Header) error { h.Set("X-Seen", http.StatusText(s)); return nil }, "hi", "OK", 200},
		{"explicit 201 seen", func(w http.ResponseWriter) { w.WriteHeader(201) },
			func(s int, h http.Header) error { h.Set("X-Seen", http.StatusText(s)); return nil }, "", "Created", 201},
		{"replaced", func(w http.ResponseWriter) { w.WriteHeader(401); _, _ = w.Write([]byte("original")) },
			func(s int, _ http.Header) error {
				if s == 401 {
					return errcode.ErrorCodeDenied.WithMessage("no")
				}
				return nil
			}, `{"errors":[{"code":"DENIED","message":"no"}]}` + "\n", "", 403},
		{"replaced with a status of its own", func(w http.ResponseWriter) { w.WriteHeader(500); _, _ = w.Write([]byte("/srv/path")) },
			func(int, http.Header) error {
				return WithStatus(507, errcode.ErrorCodeUnknown.WithMessage("full"))
			}, `{"errors":[{"code":"UNKNOWN","message":"full"}]}` + "\n", "", 507},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var x *Exchange
			h := Begin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				x = From(r.Context())
				x.OnHeader(tc.hook)
				tc.handler(w)
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/v2/", nil))
			if rec.Code != tc.wantStatus || rec.Body.String() != tc.wantBody || rec.Header().Get("X-Seen") != tc.wantHeader {
				t.Fatalf("got %d %q X-Seen=%q", rec.Code, rec.Body.String(), rec.Header().Get("X-Seen"))
			}
			if x.Status() != tc.wantStatus {
				t.Fatalf("Status() = %d, want %d", x.Status(), tc.wantStatus)
			}
		})
	}
}

// The writer keeps what http.ResponseController needs (Unwrap).
func TestWriterUnwraps(t *testing.T) {
	h := Begin(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err := http.NewResponseController(w).Flush(); errors.Is(err, http.ErrNotSupported) {
			t.Error("Flush not reachable through the exchange writer")
		}
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
}

func TestCheckInput(t *testing.T) {
	up := "/v2/a/blobs/uploads/u1"
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		wantCode           string // "" = accepted
	}{
		{"catalog last ok", "GET", "/v2/_catalog?last=team/app", nil, ""},
		{"catalog last NUL", "GET", "/v2/_catalog?last=%00", nil, "NAME_INVALID"},
		{"catalog last upper", "GET", "/v2/_catalog?last=Team", nil, "NAME_INVALID"},
		{"tags last ok", "GET", "/v2/a/tags/list?last=v1.2", nil, ""},
		{"tags last NUL", "GET", "/v2/a/tags/list?last=%00", nil, "TAG_INVALID"},
		{"patch octet-stream", "PATCH", up, map[string]string{"Content-Type": "application/octet-stream"}, ""},
		{"patch no type", "PATCH", up, nil, ""},
		{"patch text/plain", "PATCH", up, map[string]string{"Content-Type": "text/plain"}, "CONTENT_TYPE_INVALID"},
		{"put text/plain is distribution's", "PUT", up + "?digest=x", map[string]string{"Content-Type": "text/plain"}, ""},
		{"range ok", "PATCH", up, map[string]string{"Content-Range": "0-99"}, ""},
		{"range bytes=", "PATCH", up, map[string]string{"Content-Range": "bytes=a-b"}, "RANGE_INVALID"},
		{"range overflow", "PUT", up, map[string]string{"Content-Range": "0-99999999999999999999"}, "RANGE_INVALID"},
		{"manifest untouched", "PUT", "/v2/a/manifests/v1", map[string]string{"Content-Type": "text/plain"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			err := checkInput(Classify(r), r)
			var got string
			var ec errcode.Error
			if errors.As(err, &ec) {
				got = ec.Code.String()
			} else if err != nil {
				t.Fatalf("not an errcode.Error: %v", err)
			}
			if got != tc.wantCode {
				t.Fatalf("checkInput = %v, want %q", err, tc.wantCode)
			}
		})
	}
}

// Below NoBodyForms, FormValue reads the query only and never the body.
func TestNoBodyForms(t *testing.T) {
	body := strings.NewReader("from=body-repo&x=1")
	r := httptest.NewRequest("POST", "/v2/a/blobs/uploads/?from=query-repo", body)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	NoBodyForms(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if got := r.FormValue("from"); got != "query-repo" {
			t.Errorf("FormValue(from) = %q", got)
		}
		if got := r.FormValue("x"); got != "" {
			t.Errorf("FormValue(x) = %q: the body was parsed", got)
		}
	})).ServeHTTP(httptest.NewRecorder(), r)
	if body.Len() != len("from=body-repo&x=1") {
		t.Fatal("the body was read")
	}
}
