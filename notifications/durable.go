package notifications

import (
	"context"
	"errors"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"git.wntrmute.dev/kyle/mcr/storageguard"
	"git.wntrmute.dev/kyle/mcr/store"
)

// The services below wrap distribution's listener services and fail a
// change whose audit event (and index row) could not be committed:
// distribution's listener only logs a Listener's error, which would answer
// 201 for a push the audit log never saw. Storage already holds the change
// when the event is written; a retry of the request writes it again
// (idempotently) and records it. The answer is 503 UNAVAILABLE, which
// clients retry, or, when the database's disk is full, storageguard's 507
// (storage is full: retrying before space is freed fails the same way).

// errNotRecorded is the registry's answer to a change it could not record.
// It carries no detail: the database error may name server paths.
var errNotRecorded = errcode.ErrorCodeUnavailable.WithMessage(
	"the registry could not record this change in its audit log; retry the request")

// checked turns the bridge's error of a change not recorded into the
// operation's error, unless the operation failed by itself.
func checked(b *bridge, err error) error {
	if rerr := b.take(); err == nil && rerr != nil {
		return b.notRecorded(rerr)
	}
	return err
}

// notRecorded is the answer to a change whose commit failed with err. When
// the database's disk is full, the request is marked as having hit full
// storage, and storageguard.Wrap answers it with its 507 (the one place
// that writes that error) instead of a 503 that invites an immediate
// retry.
func (b *bridge) notRecorded(err error) error {
	if store.IsFull(err) {
		storageguard.MarkFull(b.ctx)
	}
	return errNotRecorded
}

// manifests fails a manifest put or delete that was not recorded.
type manifests struct {
	distribution.ManifestService
	b *bridge
}

func (m *manifests) Put(ctx context.Context, sm distribution.Manifest, options ...distribution.ManifestServiceOption) (digest.Digest, error) {
	d, err := m.ManifestService.Put(ctx, sm, options...)
	return d, checked(m.b, err)
}

func (m *manifests) Delete(ctx context.Context, d digest.Digest) error {
	return checked(m.b, m.ManifestService.Delete(ctx, d))
}

// blobs fails a blob put, mount or delete that was not recorded, and
// wraps upload writers so that their commit is checked too.
type blobs struct {
	distribution.BlobStore
	b *bridge
}

func (s *blobs) Put(ctx context.Context, mediaType string, p []byte) (v1.Descriptor, error) {
	desc, err := s.BlobStore.Put(ctx, mediaType, p)
	return desc, checked(s.b, err)
}

func (s *blobs) Create(ctx context.Context, options ...distribution.BlobCreateOption) (distribution.BlobWriter, error) {
	w, err := s.BlobStore.Create(ctx, options...)
	var mounted distribution.ErrBlobMounted
	if errors.As(err, &mounted) {
		// A mount answers through this error: keep it only if recorded.
		if rerr := s.b.take(); rerr != nil {
			return nil, s.b.notRecorded(rerr)
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return &blobWriter{BlobWriter: w, b: s.b}, nil
}

func (s *blobs) Resume(ctx context.Context, id string) (distribution.BlobWriter, error) {
	w, err := s.BlobStore.Resume(ctx, id)
	if err != nil {
		return nil, err
	}
	return &blobWriter{BlobWriter: w, b: s.b}, nil
}

func (s *blobs) Delete(ctx context.Context, d digest.Digest) error {
	return checked(s.b, s.BlobStore.Delete(ctx, d))
}

// blobWriter fails an upload's commit that was not recorded.
type blobWriter struct {
	distribution.BlobWriter
	b *bridge
}

func (w *blobWriter) Commit(ctx context.Context, desc v1.Descriptor) (v1.Descriptor, error) {
	committed, err := w.BlobWriter.Commit(ctx, desc)
	return committed, checked(w.b, err)
}

// tags fails an untag that was not recorded (distribution's listener
// already returns that error; the bridge's copy is cleared here).
type tags struct {
	distribution.TagService
	b *bridge
}

func (t *tags) Untag(ctx context.Context, tag string) error {
	return checked(t.b, t.TagService.Untag(ctx, tag))
}
