package notifications

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"git.wntrmute.dev/kyle/mcr/authplugin/identity"
	"git.wntrmute.dev/kyle/mcr/edge/exchange"
	"git.wntrmute.dev/kyle/mcr/store"
)

// Audit event types from registry events.
const (
	ManifestPushed  = "manifest_pushed"
	ManifestPulled  = "manifest_pulled"
	ManifestDeleted = "manifest_deleted"
	TagDeleted      = "tag_deleted"
	BlobUploaded    = "blob_uploaded"
	BlobMounted     = "blob_mounted"
	BlobDeleted     = "blob_deleted"
	RepoDeleted     = "repo_deleted"
)

// bridge implements distribution's notifications.Listener for one
// request. distribution's listener only logs what a Listener method
// returns, so the bridge also keeps the error of a change it could not
// record, and the services in durable.go turn it into the request's error.
type bridge struct {
	ctx    context.Context // the request's: bounds the commit
	sink   *Sink
	actor  *identity.Principal
	ip     string
	err    error // the first change not recorded since the last take; guarded by mu
	method string
	mu     sync.Mutex // guards err
}

func newBridge(ctx context.Context, sink *Sink) *bridge {
	x := exchange.From(ctx)
	if x == nil {
		return &bridge{ctx: ctx, sink: sink}
	}
	return &bridge{ctx: ctx, sink: sink, actor: x.Principal, ip: x.IP, method: x.Method}
}

// take returns and clears the error of a change not recorded.
func (b *bridge) take() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.err
	b.err = nil
	return err
}

func (b *bridge) audit(typ, repo string, dgst digest.Digest, tag string, details map[string]any) store.AuditEvent {
	ev := store.AuditEvent{Time: time.Now(), Type: typ, Repository: repo, Digest: dgst.String(), Tag: tag, IP: b.ip, Details: details}
	if b.actor != nil {
		ev.ActorID, ev.Actor = b.actor.Subject, b.actor.Username
	}
	return ev
}

func (b *bridge) write(ev Event) error {
	if err := b.sink.WriteContext(b.ctx, ev); err != nil {
		slog.Error("recording registry event", "type", ev.Audit.Type, "repository", ev.Audit.Repository, "err", err)
		if !ev.Async {
			b.mu.Lock()
			if b.err == nil {
				b.err = err
			}
			b.mu.Unlock()
		}
		return err
	}
	return nil
}

func tagOf(options []distribution.ManifestServiceOption) string {
	for _, o := range options {
		if t, ok := o.(distribution.WithTagOption); ok {
			return t.Tag
		}
	}
	return ""
}

// manifestFields are the parts of an OCI/Docker manifest the index keeps.
type manifestFields struct {
	Config *struct {
		MediaType string `json:"mediaType"`
	} `json:"config"`
	Subject *struct {
		Digest string `json:"digest"`
	} `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
	ArtifactType string            `json:"artifactType"`
}

// IndexOpFor describes a manifest for the repository index.
func IndexOpFor(repo string, sm distribution.Manifest, tag string, at time.Time) (*store.IndexOp, error) {
	mt, payload, err := sm.Payload()
	if err != nil {
		return nil, err
	}
	op := &store.IndexOp{Kind: store.OpManifestPut, Repository: repo, Digest: digest.FromBytes(payload).String(),
		MediaType: mt, Size: int64(len(payload)), Tag: tag, Time: at}
	var f manifestFields
	if json.Unmarshal(payload, &f) == nil {
		op.ArtifactType = f.ArtifactType
		if op.ArtifactType == "" && f.Config != nil && mt == v1.MediaTypeImageManifest {
			op.ArtifactType = f.Config.MediaType
		}
		if f.Subject != nil {
			op.Subject = f.Subject.Digest
		}
		if len(f.Annotations) > 0 {
			if a, err := json.Marshal(f.Annotations); err == nil {
				op.Annotations = string(a)
			}
		}
	}
	for _, d := range sm.References() {
		op.Refs = append(op.Refs, store.Ref{Digest: d.Digest.String(), MediaType: d.MediaType, Size: d.Size})
	}
	return op, nil
}

func (b *bridge) ManifestPushed(repo reference.Named, sm distribution.Manifest, options ...distribution.ManifestServiceOption) error {
	tag := tagOf(options)
	op, err := IndexOpFor(repo.Name(), sm, tag, time.Now())
	if err != nil {
		return err
	}
	ev := b.audit(ManifestPushed, repo.Name(), digest.Digest(op.Digest), tag, map[string]any{"media_type": op.MediaType, "size": op.Size})
	return b.write(Event{Audit: ev, Op: op})
}

func (b *bridge) ManifestPulled(repo reference.Named, sm distribution.Manifest, options ...distribution.ManifestServiceOption) error {
	if b.method != "GET" || b.sink.opts.SkipPulls {
		return nil // HEAD probes are not pulls
	}
	mt, payload, err := sm.Payload()
	if err != nil {
		return err
	}
	ev := b.audit(ManifestPulled, repo.Name(), digest.FromBytes(payload), tagOf(options), map[string]any{"media_type": mt})
	return b.write(Event{Audit: ev, Async: true})
}

func (b *bridge) ManifestDeleted(repo reference.Named, dgst digest.Digest) error {
	return b.write(Event{
		Audit: b.audit(ManifestDeleted, repo.Name(), dgst, "", nil),
		Op:    &store.IndexOp{Kind: store.OpManifestDelete, Repository: repo.Name(), Digest: dgst.String()},
	})
}

func (b *bridge) BlobPushed(repo reference.Named, desc v1.Descriptor) error {
	return b.write(Event{Audit: b.audit(BlobUploaded, repo.Name(), desc.Digest, "", map[string]any{"size": desc.Size})})
}

// BlobPulled is not audited: a manifest pull already records the pull, and
// a row per layer would dominate the log.
func (b *bridge) BlobPulled(reference.Named, v1.Descriptor) error { return nil }

func (b *bridge) BlobMounted(repo reference.Named, desc v1.Descriptor, from reference.Named) error {
	return b.write(Event{Audit: b.audit(BlobMounted, repo.Name(), desc.Digest, "", map[string]any{"size": desc.Size, "from": from.Name()})})
}

func (b *bridge) BlobDeleted(repo reference.Named, dgst digest.Digest) error {
	return b.write(Event{Audit: b.audit(BlobDeleted, repo.Name(), dgst, "", nil)})
}

func (b *bridge) TagDeleted(repo reference.Named, tag string) error {
	return b.write(Event{
		Audit: b.audit(TagDeleted, repo.Name(), "", tag, nil),
		Op:    &store.IndexOp{Kind: store.OpTagDelete, Repository: repo.Name(), Tag: tag},
	})
}

func (b *bridge) RepoDeleted(repo reference.Named) error {
	return b.write(Event{
		Audit: b.audit(RepoDeleted, repo.Name(), "", "", nil),
		Op:    &store.IndexOp{Kind: store.OpRepoDelete, Repository: repo.Name()},
	})
}
