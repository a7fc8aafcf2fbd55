package notifications

import (
	"context"
	"errors"
	"testing"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/reference"
)

// fakeRepo is a repository with a name and nothing else.
type fakeRepo struct {
	distribution.Repository
	name reference.Named
}

func (r *fakeRepo) Named() reference.Named { return r.name }

type opener struct {
	repo  distribution.Repository
	err   error
	asked string
}

func (o *opener) Repository(_ context.Context, name reference.Named) (distribution.Repository, error) {
	o.asked = name.Name()
	return o.repo, o.err
}

// With an opener, the middleware wraps the repository it reopens, not the
// App's (which carries the App's own, sink-less event listener).
func TestInitRepoReopens(t *testing.T) {
	name, err := reference.WithName("team/app")
	if err != nil {
		t.Fatal(err)
	}
	apps := &fakeRepo{name: name}
	reopened := &fakeRepo{name: name}
	sink := &Sink{}
	for _, c := range []struct {
		opener  RepositoryOpener
		want    distribution.Repository
		wantErr bool
	}{
		{nil, apps, false},
		{&opener{repo: reopened}, reopened, false},
		{&opener{err: errors.New("no namespace")}, nil, true},
	} {
		r, err := initRepo(context.Background(), apps, Middleware(sink, c.opener).Options)
		if c.wantErr {
			if err == nil {
				t.Errorf("opener %v: no error", c.opener)
			}
			continue
		}
		if err != nil {
			t.Fatalf("opener %v: %v", c.opener, err)
		}
		got, ok := r.(*repository)
		if !ok || got.Repository != c.want || got.sink != sink {
			t.Errorf("opener %v: wraps %#v, want %#v", c.opener, got.Repository, c.want)
		}
		if o, ok := c.opener.(*opener); ok && o.asked != "team/app" {
			t.Errorf("opener asked for %q, want team/app", o.asked)
		}
	}
}
