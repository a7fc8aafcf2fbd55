package grpcclient

import (
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
	mcrv1 "git.wntrmute.dev/kyle/mcr/gen/mcr/v1"
)

// Conversions from mcr.v1 messages to the /v1 wire types: what /v1 would
// have answered, field for field (an unset time is the zero time, as the
// server's zero values serialise).

func t(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime().UTC()
}

func details(s *structpb.Struct) map[string]any {
	if s == nil || len(s.GetFields()) == 0 {
		return nil
	}
	return s.AsMap()
}

func repoSummary(r *mcrv1.Repository) apitypes.RepoSummary {
	return apitypes.RepoSummary{Name: r.GetName(), TagCount: r.GetTagCount(), ManifestCount: r.GetManifestCount(),
		TotalSize: r.GetTotalSize(), CreatedAt: t(r.GetCreatedAt()), LastPush: t(r.GetLastPush())}
}

func repoList(r *mcrv1.ListRepositoriesResponse) *apitypes.RepoList {
	out := &apitypes.RepoList{Repositories: make([]apitypes.RepoSummary, 0, len(r.GetRepositories())),
		Total: int(r.GetTotal()), N: int(r.GetN()), Offset: int(r.GetOffset()), Next: r.GetNext()}
	for _, s := range r.GetRepositories() {
		out.Repositories = append(out.Repositories, repoSummary(s))
	}
	return out
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func repoDetail(r *mcrv1.GetRepositoryResponse) *apitypes.RepoDetail {
	out := &apitypes.RepoDetail{RepoSummary: repoSummary(r.GetRepository()),
		Tags: make([]apitypes.TagInfo, 0, len(r.GetTags())), Manifests: make([]apitypes.ManifestInfo, 0, len(r.GetManifests()))}
	for _, tg := range r.GetTags() {
		out.Tags = append(out.Tags, apitypes.TagInfo{Name: tg.GetName(), Digest: tg.GetDigest(), UpdatedAt: t(tg.GetUpdatedAt())})
	}
	for _, m := range r.GetManifests() {
		mi := apitypes.ManifestInfo{Digest: m.GetDigest(), MediaType: m.GetMediaType(), Size: m.GetSize(),
			ArtifactType: m.GetArtifactType(), Subject: m.GetSubject(), CreatedAt: t(m.GetCreatedAt()),
			Tags: orEmpty(m.GetTags()), Layers: make([]apitypes.Ref, 0, len(m.GetLayers()))}
		for _, l := range m.GetLayers() {
			mi.Layers = append(mi.Layers, apitypes.Ref{Digest: l.GetDigest(), MediaType: l.GetMediaType(), Size: l.GetSize()})
		}
		out.Manifests = append(out.Manifests, mi)
	}
	return out
}

func gcRun(r *mcrv1.GCRun) *apitypes.GCRun {
	if r == nil {
		return nil
	}
	out := &apitypes.GCRun{ID: r.GetId(), Kind: r.GetKind(), Started: t(r.GetStarted()), BlobsRemoved: r.GetBlobsRemoved(),
		BytesFreed: r.GetBytesFreed(), ManifestsRemoved: r.GetManifestsRemoved(), Error: r.GetError(), DryRun: r.GetDryRun(),
		RemoveUntagged: r.GetRemoveUntagged(), Actor: r.GetActor(), Details: details(r.GetDetails())}
	if r.GetCompleted() != nil {
		c := t(r.GetCompleted())
		out.Completed = &c
	}
	return out
}

func rule(r *mcrv1.PolicyRule) apitypes.PolicyRule {
	m := r.GetMatch()
	return apitypes.PolicyRule{ID: r.GetId(), Priority: int(r.GetPriority()), Description: r.GetDescription(),
		Effect: m.GetEffect(), Roles: m.GetRoles(), AccountTypes: m.GetAccountTypes(), SubjectUUID: m.GetSubjectUuid(),
		Actions: m.GetActions(), Repositories: m.GetRepositories(), Enabled: r.GetEnabled(),
		CreatedBy: r.GetCreatedBy(), CreatedAt: t(r.GetCreatedAt()), UpdatedBy: r.GetUpdatedBy(), UpdatedAt: t(r.GetUpdatedAt())}
}

func ruleMatchPB(m apitypes.RuleMatch) *mcrv1.RuleMatch {
	return &mcrv1.RuleMatch{Effect: m.Effect, Roles: m.Roles, AccountTypes: m.AccountTypes, SubjectUuid: m.SubjectUUID,
		Actions: m.Actions, Repositories: m.Repositories}
}

func auditEvent(e *mcrv1.AuditEvent) apitypes.AuditEvent {
	return apitypes.AuditEvent{ID: e.GetId(), Time: t(e.GetEventTime()), Type: e.GetEventType(), ActorID: e.GetActorId(),
		Actor: e.GetActor(), Repository: e.GetRepository(), Digest: e.GetDigest(), Tag: e.GetTag(), IP: e.GetIp(),
		Details: details(e.GetDetails())}
}
