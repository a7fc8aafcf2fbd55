package grpcapi

import (
	"encoding/json"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"git.wntrmute.dev/kyle/mcr/adminsvc"
	mcrv1 "git.wntrmute.dev/kyle/mcr/gen/mcr/v1"
	"git.wntrmute.dev/kyle/mcr/policyplugin"
	"git.wntrmute.dev/kyle/mcr/store"
)

// Conversions between the service's (store) types and mcr.v1 messages.
// Field for field what /v1 serialises; a zero time is unset.

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// details converts free-form details through JSON, as /v1 shows them.
func details(m map[string]any) *structpb.Struct {
	if len(m) == 0 {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	s := &structpb.Struct{}
	if err := s.UnmarshalJSON(b); err != nil {
		return nil
	}
	return s
}

func repoPB(r *store.RepoSummary) *mcrv1.Repository {
	return &mcrv1.Repository{Name: r.Name, TagCount: r.TagCount, ManifestCount: r.ManifestCount,
		TotalSize: r.TotalSize, CreatedAt: ts(r.CreatedAt), LastPush: ts(r.LastPush)}
}

func repoDetailPB(d *store.RepoDetail) *mcrv1.GetRepositoryResponse {
	out := &mcrv1.GetRepositoryResponse{Repository: repoPB(&d.RepoSummary),
		Tags: make([]*mcrv1.Tag, 0, len(d.Tags)), Manifests: make([]*mcrv1.Manifest, 0, len(d.Manifests))}
	for _, t := range d.Tags {
		out.Tags = append(out.Tags, &mcrv1.Tag{Name: t.Name, Digest: t.Digest, UpdatedAt: ts(t.UpdatedAt)})
	}
	for _, m := range d.Manifests {
		pm := &mcrv1.Manifest{Digest: m.Digest, MediaType: m.MediaType, Size: m.Size, ArtifactType: m.ArtifactType,
			Subject: m.Subject, CreatedAt: ts(m.CreatedAt), Tags: m.Tags, Layers: make([]*mcrv1.Descriptor, 0, len(m.Refs))}
		for _, r := range m.Refs {
			pm.Layers = append(pm.Layers, &mcrv1.Descriptor{Digest: r.Digest, MediaType: r.MediaType, Size: r.Size})
		}
		out.Manifests = append(out.Manifests, pm)
	}
	return out
}

func gcRunPB(r *store.GCRun) *mcrv1.GCRun {
	if r == nil {
		return nil
	}
	out := &mcrv1.GCRun{Id: r.ID, Kind: r.Kind, Started: ts(r.Started), BlobsRemoved: r.BlobsRemoved,
		BytesFreed: r.BytesFreed, ManifestsRemoved: r.ManifestsRemoved, Error: r.Error, DryRun: r.DryRun,
		RemoveUntagged: r.RemoveUntagged, Actor: r.Actor, Details: details(r.Details)}
	if r.Completed != nil {
		out.Completed = timestamppb.New(*r.Completed)
	}
	return out
}

func strs[S ~string](in []S) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}

func ruleMatchPB(r *policyplugin.Rule) *mcrv1.RuleMatch {
	return &mcrv1.RuleMatch{Effect: string(r.Effect), Roles: r.Roles, AccountTypes: r.AccountTypes,
		SubjectUuid: r.SubjectUUID, Actions: strs(r.Actions), Repositories: r.Repositories}
}

func rulePB(r *store.PolicyRule) *mcrv1.PolicyRule {
	return &mcrv1.PolicyRule{Id: r.ID, Priority: int32(r.Priority), Description: r.Description, //nolint:gosec // priorities are small
		Match: ruleMatchPB(&r.Rule), Enabled: r.Enabled, CreatedBy: r.CreatedBy, CreatedAt: ts(r.CreatedAt),
		UpdatedBy: r.UpdatedBy, UpdatedAt: ts(r.UpdatedAt)}
}

func ruleMatchFromPB(m *mcrv1.RuleMatch) adminsvc.RuleMatch {
	acts := make([]policyplugin.Action, 0, len(m.GetActions()))
	for _, a := range m.GetActions() {
		acts = append(acts, policyplugin.Action(a))
	}
	if m.GetActions() == nil {
		acts = nil
	}
	return adminsvc.RuleMatch{Effect: policyplugin.Effect(m.GetEffect()), Roles: m.GetRoles(),
		AccountTypes: m.GetAccountTypes(), SubjectUUID: m.GetSubjectUuid(), Actions: acts, Repositories: m.GetRepositories()}
}

func auditEventPB(e *store.AuditEvent) *mcrv1.AuditEvent {
	return &mcrv1.AuditEvent{Id: e.ID, EventTime: ts(e.Time), EventType: e.Type, ActorId: e.ActorID, Actor: e.Actor,
		Repository: e.Repository, Digest: e.Digest, Tag: e.Tag, Ip: e.IP, Details: details(e.Details)}
}
