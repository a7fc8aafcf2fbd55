package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
	"git.wntrmute.dev/kyle/mcr/store"
)

// wirePair is a type the server serialises (or decodes) and the
// apitypes type its clients use for the same JSON.
type wirePair struct {
	server any // a value of the server's type
	client any // a value of the apitypes type
	// fill, when set, populates the server value (for fields the generic
	// filler cannot, such as an interface).
	fill    func() any
	name    string
	request bool
}

// wirePairs lists every JSON body of /v1 but the health check (a map)
// and the error body (TestWireErrorBody).
var wirePairs = []wirePair{
	{name: "login request", server: loginRequest{}, client: apitypes.LoginRequest{}, request: true},
	{name: "login", server: loginResponse{}, client: apitypes.LoginResult{}},
	{name: "repository summary", server: store.RepoSummary{}, client: apitypes.RepoSummary{}},
	{name: "repository list", server: repoList{}, client: apitypes.RepoList{}, fill: func() any {
		var r store.RepoSummary
		fillValue(reflect.ValueOf(&r).Elem(), "Repositories")
		l := repoList{Repositories: []store.RepoSummary{r}}
		fillValue(reflect.ValueOf(&l).Elem(), "")
		return l
	}},
	{name: "tag", server: store.TagInfo{}, client: apitypes.TagInfo{}},
	{name: "ref", server: store.Ref{}, client: apitypes.Ref{}},
	{name: "manifest", server: store.ManifestInfo{}, client: apitypes.ManifestInfo{}},
	{name: "repository detail", server: store.RepoDetail{}, client: apitypes.RepoDetail{}},
	{name: "audit event", server: store.AuditEvent{}, client: apitypes.AuditEvent{}},
	{name: "audit page", server: auditPage{}, client: apitypes.AuditPage{}},
	{name: "policy rule", server: store.PolicyRule{}, client: apitypes.PolicyRule{}},
	{name: "rule list", server: ruleList{}, client: apitypes.RuleList{}},
	{name: "rule match", server: ruleFields{}, client: apitypes.RuleMatch{}, request: true},
	{name: "rule create", server: createRuleRequest{}, client: apitypes.RuleCreate{}, request: true},
	{name: "rule patch", server: patchRuleRequest{}, client: apitypes.RulePatch{}, request: true},
	{name: "gc request", server: gcRequest{}, client: apitypes.GCRequest{}, request: true},
	{name: "gc started", server: gcStarted{}, client: apitypes.GCStarted{}},
	{name: "gc run", server: store.GCRun{}, client: apitypes.GCRun{}},
	{name: "gc status", server: gcStatus{}, client: apitypes.GCStatus{}},
	{name: "snapshot", server: snapshotCreated{}, client: apitypes.SnapshotCreated{}},
	{name: "account unlocked", server: accountUnlocked{}, client: apitypes.AccountUnlocked{}},
	{name: "tokens revoked", server: tokensRevoked{}, client: apitypes.TokensRevoked{}},
	{name: "upload", server: uploadInfo{}, client: apitypes.UploadInfo{}},
	{name: "upload list", server: uploadList{}, client: apitypes.UploadList{}},
	{name: "upload purge request", server: uploadPurgeRequest{}, client: apitypes.UploadPurgeRequest{}, request: true},
	{name: "upload purged", server: uploadPurged{}, client: apitypes.UploadPurged{}},
}

// wireField is one JSON member as encoding/json sees a struct field.
type wireField struct {
	Kind      string // string, number, bool, time, array, object, any
	OmitEmpty bool
}

// jsonKind is the JSON shape a Go type encodes to.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[time.Time]() {
		return "time"
	}
	if t == reflect.TypeFor[json.RawMessage]() {
		return "any"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array of " + jsonKind(t.Elem())
	case reflect.Map:
		return "object"
	case reflect.Struct:
		return "object"
	case reflect.Interface:
		return "any"
	}
	return t.Kind().String()
}

// wireFields returns the JSON members of struct type t by encoding/json's
// rules: exported fields, json:"-" left out, untagged embedded structs
// flattened (a shallower field wins over a deeper one of the same name).
func wireFields(t reflect.Type) map[string]wireField {
	out := map[string]wireField{}
	depth := map[string]int{}
	var walk func(t reflect.Type, d int)
	walk = func(t reflect.Type, d int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			ft := f.Type
			if f.Anonymous && name == "" {
				for ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft, d+1) // unexported embedded structs still promote their fields
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if old, ok := depth[name]; ok && old <= d {
				continue
			}
			depth[name] = d
			out[name] = wireField{Kind: jsonKind(f.Type), OmitEmpty: strings.Contains(","+opts+",", ",omitempty,")}
		}
	}
	walk(t, 0)
	return out
}

func compatibleKinds(a, b string) bool {
	return a == b || strings.HasSuffix(a, "any") && strings.HasPrefix(b, strings.TrimSuffix(a, "any")) ||
		strings.HasSuffix(b, "any") && strings.HasPrefix(a, strings.TrimSuffix(b, "any"))
}

// TestWireTypesMatchServer compares, member by member, the JSON of every
// type the server serialises with the apitypes type its clients decode it
// into: a field added to one side only fails here.
func TestWireTypesMatchServer(t *testing.T) {
	for _, p := range wirePairs {
		t.Run(p.name, func(t *testing.T) {
			st, ct := reflect.TypeOf(p.server), reflect.TypeOf(p.client)
			sf, cf := wireFields(st), wireFields(ct)
			names := map[string]bool{}
			for n := range sf {
				names[n] = true
			}
			for n := range cf {
				names[n] = true
			}
			sorted := make([]string, 0, len(names))
			for n := range names {
				sorted = append(sorted, n)
			}
			sort.Strings(sorted)
			for _, n := range sorted {
				s, inS := sf[n]
				c, inC := cf[n]
				switch {
				case !inC:
					t.Errorf("%q: the server's %v has it, %v (the clients' type) does not", n, st, ct)
				case !inS:
					t.Errorf("%q: %v (the clients' type) has it, the server's %v does not", n, ct, st)
				case !compatibleKinds(s.Kind, c.Kind):
					t.Errorf("%q: the server's %v encodes it as %s, %v as %s", n, st, s.Kind, ct, c.Kind)
				case !p.request && s.OmitEmpty != c.OmitEmpty:
					// Answers: omitempty decides whether the member appears.
					// Requests: the server only decodes, so it may differ.
					t.Errorf("%q: omitempty is %v on the server's %v, %v on %v", n, s.OmitEmpty, st, c.OmitEmpty, ct)
				}
			}
		})
	}
}

// TestWirePairsCoverAPITypes keeps wirePairs complete: every struct type
// of apitypes is paired with a server type (or checked elsewhere).
func TestWirePairsCoverAPITypes(t *testing.T) {
	paired := map[string]bool{"Error": true} // TestWireErrorBody
	for _, p := range wirePairs {
		paired[reflect.TypeOf(p.client).Name()] = true
	}
	files, err := filepath.Glob(filepath.Join("apitypes", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("apitypes sources: %v %v", files, err)
	}
	fset := token.NewFileSet()
	for _, fname := range files {
		if strings.HasSuffix(fname, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, fname, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, s := range gd.Specs {
				ts, ok := s.(*ast.TypeSpec)
				if !ok {
					continue // a TYPE declaration holds only type specs
				}
				if _, isStruct := ts.Type.(*ast.StructType); isStruct && ts.Name.IsExported() && !paired[ts.Name.Name] {
					t.Errorf("apitypes.%s is not in wirePairs: pair it with the server type it mirrors", ts.Name.Name)
				}
			}
		}
	}
}

// fillValue sets every field of v to a non-zero value derived from its
// path, so a field lost on the way shows.
func fillValue(v reflect.Value, path string) {
	if v.Kind() != reflect.Struct && !v.CanSet() {
		return
	}
	n := 0
	for _, c := range path {
		n = n*31 + int(c)
	}
	if n < 0 {
		n = -n
	}
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillValue(v.Elem(), path)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, n%1e9, time.UTC).Add(time.Duration(n%1e6) * time.Second)))
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			// The exported fields of an unexported embedded struct are
			// settable although the struct itself is not.
			if f.IsExported() || f.Anonymous {
				fillValue(v.Field(i), path+"."+f.Name)
			}
		}
	case reflect.String:
		v.SetString("s" + path)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(1 + n%100))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(1 + n%100))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(1 + n%100))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fillValue(s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fillValue(k, path+".key")
		e := reflect.New(v.Type().Elem()).Elem()
		if e.Kind() == reflect.Interface {
			e.Set(reflect.ValueOf("v" + path)) // a JSON string decodes back to the same any
		} else {
			fillValue(e, path+".value")
		}
		m.SetMapIndex(k, e)
		v.Set(m)
	}
}

// strictDecode decodes as the server's decodeJSON does: unknown members
// are an error.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// TestWireRoundTrip marshals a fully populated server value, decodes it
// into the apitypes type (refusing unknown members) and marshals it again:
// the JSON must be the same. And the other way round: what a client sends
// the server decodes without loss.
func TestWireRoundTrip(t *testing.T) {
	for _, p := range wirePairs {
		t.Run(p.name, func(t *testing.T) {
			var server any
			if p.fill != nil {
				server = p.fill()
			} else {
				sv := reflect.New(reflect.TypeOf(p.server))
				fillValue(sv.Elem(), "")
				server = sv.Interface()
			}
			sj, err := json.Marshal(server)
			if err != nil {
				t.Fatal(err)
			}
			cv := reflect.New(reflect.TypeOf(p.client))
			if err := strictDecode(sj, cv.Interface()); err != nil {
				t.Fatalf("decoding the server's JSON into %v: %v\n%s", cv.Type().Elem(), err, sj)
			}
			cj, err := json.Marshal(cv.Interface())
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(sj, cj) {
				t.Errorf("server → client lost or changed something:\nserver %s\nclient %s", sj, cj)
			}

			// Client → server.
			cv = reflect.New(reflect.TypeOf(p.client))
			fillValue(cv.Elem(), "")
			cj, err = json.Marshal(cv.Interface())
			if err != nil {
				t.Fatal(err)
			}
			sv := reflect.New(reflect.TypeOf(p.server))
			if err := strictDecode(cj, sv.Interface()); err != nil {
				t.Fatalf("decoding the client's JSON into %v: %v\n%s", sv.Type().Elem(), err, cj)
			}
			if sj, err = json.Marshal(sv.Interface()); err != nil {
				t.Fatal(err)
			}
			if !sameJSON(sj, cj) {
				t.Errorf("client → server lost or changed something:\nclient %s\nserver %s", cj, sj)
			}
		})
	}
}

// TestWireRoundTripValues spells out the round trip of the richest
// answers with values as the server produces them (zero and nil fields
// included, which omitempty drops).
func TestWireRoundTripValues(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)
	done := now.Add(90 * time.Second)
	cases := []struct {
		server, client any
		name           string
	}{
		{&store.RepoDetail{
			RepoSummary: store.RepoSummary{Name: "team/app", TagCount: 1, ManifestCount: 2, TotalSize: 1234, CreatedAt: now, LastPush: done},
			Tags:        []store.TagInfo{{Name: "1.0", Digest: "sha256:aa", UpdatedAt: done}},
			Manifests: []store.ManifestInfo{
				{Digest: "sha256:aa", MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 700, CreatedAt: now,
					Tags: []string{"1.0"}, Refs: []store.Ref{{Digest: "sha256:bb", MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: 534}},
					Annotations: `{"not":"sent"}`},
				{Digest: "sha256:cc", MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 400, ArtifactType: "application/vnd.dev.cosign.signature",
					Subject: "sha256:aa", CreatedAt: done, Tags: []string{}, Refs: []store.Ref{}},
			},
		}, &apitypes.RepoDetail{}, "repository detail"},
		{&store.AuditEvent{ID: 42, Time: now, Type: "manifest_pushed", ActorID: "uuid-1", Actor: "alice",
			Repository: "team/app", Digest: "sha256:aa", Tag: "1.0", IP: "192.0.2.1", Details: map[string]any{"size": 700.0, "media_type": "x"}}, &apitypes.AuditEvent{},
			"audit event"},
		{&store.AuditEvent{ID: 43, Time: now, Type: "gc_started"}, &apitypes.AuditEvent{}, "audit event, sparse"},
		{func() *store.PolicyRule {
			r := &store.PolicyRule{CreatedBy: "admin", CreatedAt: now, UpdatedBy: "root", UpdatedAt: done}
			r.ID, r.Priority, r.Description, r.Effect, r.Enabled = 7, 10, "no pushes to production", policyplugin.EffectDeny, true
			r.Roles, r.AccountTypes, r.SubjectUUID = []string{"user"}, []string{"human"}, "uuid-2"
			r.Actions = []policyplugin.Action{policyplugin.ActionPush, policyplugin.ActionDelete}
			r.Repositories = []string{"production/*"}
			return r
		}(), &apitypes.PolicyRule{}, "policy rule"},
		{&store.GCRun{ID: 9, Kind: store.GCKindGC, Started: now, Completed: &done, BlobsRemoved: 3, BytesFreed: 4096,
			ManifestsRemoved: 1, DryRun: true, RemoveUntagged: true, Actor: "admin", Details: map[string]any{"gate_wait_ms": 12.0}}, &apitypes.GCRun{},
			"gc run, completed"},
		{&store.GCRun{ID: 10, Kind: store.GCKindReconcile, Started: now}, &apitypes.GCRun{}, "gc run, running"},
		{&store.GCRun{ID: 11, Kind: store.GCKindGC, Started: now, Completed: &done, Error: "disk full"}, &apitypes.GCRun{}, "gc run, failed"},
		{&gcStatus{}, &apitypes.GCStatus{}, "gc status, never ran"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sj, err := json.Marshal(c.server)
			if err != nil {
				t.Fatal(err)
			}
			if err := strictDecode(sj, c.client); err != nil {
				t.Fatalf("%v\n%s", err, sj)
			}
			cj, err := json.Marshal(c.client)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sj, cj) {
				t.Errorf("round trip changed the JSON:\nserver %s\nclient %s", sj, cj)
			}
		})
	}

	// The times and the pointer survive as values, not only as text.
	var g apitypes.GCRun
	b, _ := json.Marshal(&store.GCRun{ID: 9, Started: now, Completed: &done})
	if err := json.Unmarshal(b, &g); err != nil || g.ID != 9 || !g.Started.Equal(now) || g.Completed == nil || !g.Completed.Equal(done) ||
		g.Duration() != 90*time.Second || g.Running() {
		t.Errorf("gc run decoded as %+v (%v)", g, err)
	}
	b, _ = json.Marshal(&store.GCRun{ID: 10, Started: now})
	g = apitypes.GCRun{}
	if err := json.Unmarshal(b, &g); err != nil || g.Completed != nil || !g.Running() || g.Duration() != 0 {
		t.Errorf("running gc run decoded as %+v (%v)", g, err)
	}
}

// TestWireErrorBody checks that errors are apitypes.Error.
func TestWireErrorBody(t *testing.T) {
	e := echo.New()
	for _, err := range []error{errorf(http.StatusConflict, "garbage collection already running"), echo.ErrNotFound, errors.New("boom")} {
		rec := httptest.NewRecorder()
		errorHandler(err, e.NewContext(httptest.NewRequest(http.MethodGet, "/v1/x", nil), rec))
		var body apitypes.Error
		if derr := strictDecode(rec.Body.Bytes(), &body); derr != nil || body.Error == "" {
			t.Errorf("%v: body %s does not decode as apitypes.Error: %v", err, rec.Body, derr)
		}
	}
}

// TestAPITypesImportOnlyTheStandardLibrary keeps apitypes linkable by the
// clients without the server.
func TestAPITypesImportOnlyTheStandardLibrary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./apitypes").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != "git.wntrmute.dev/kyle/mcr/adminapi/apitypes" {
			t.Errorf("apitypes depends on %s: it must import only the standard library", dep)
		}
	}
}
