package grpcapi

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"git.wntrmute.dev/kyle/mcr/adminsvc"
	mcrv1 "git.wntrmute.dev/kyle/mcr/gen/mcr/v1"
)

// Each handler converts the request, calls the service function its /v1
// endpoint calls, and converts the answer or maps the error (toStatus).

type adminServer struct {
	mcrv1.UnimplementedAdminServiceServer
	*api
}

func (s *adminServer) Health(ctx context.Context, req *mcrv1.HealthRequest) (*mcrv1.HealthResponse, error) {
	h := s.svc.Health(ctx, req.GetDetail())
	return &mcrv1.HealthResponse{Status: h.Status, Checks: h.Checks}, nil
}

func (s *adminServer) Login(ctx context.Context, req *mcrv1.LoginRequest) (*mcrv1.LoginResponse, error) {
	r, err := s.svc.Login(ctx, caller(ctx), req.GetUsername(), req.GetPassword())
	if err != nil {
		return nil, toStatus(mcrv1.AdminService_Login_FullMethodName, err)
	}
	return &mcrv1.LoginResponse{Token: r.Token, ExpiresAt: timestamppb.New(r.ExpiresAt), Username: r.Principal.Username,
		Roles: r.Principal.Roles, AccountType: r.Principal.AccountType}, nil
}

func (s *adminServer) Logout(ctx context.Context, _ *mcrv1.LogoutRequest) (*mcrv1.LogoutResponse, error) {
	if err := s.svc.Logout(ctx, bearer(ctx)); err != nil {
		return nil, toStatus(mcrv1.AdminService_Logout_FullMethodName, err)
	}
	return &mcrv1.LogoutResponse{}, nil
}

func (s *adminServer) UnlockAccount(ctx context.Context, req *mcrv1.UnlockAccountRequest) (*mcrv1.UnlockAccountResponse, error) {
	had, err := s.svc.UnlockAccount(ctx, caller(ctx), req.GetUsername())
	if err != nil {
		return nil, toStatus(mcrv1.AdminService_UnlockAccount_FullMethodName, err)
	}
	return &mcrv1.UnlockAccountResponse{Username: req.GetUsername(), Unlocked: had}, nil
}

func (s *adminServer) RevokeAccount(ctx context.Context, req *mcrv1.RevokeAccountRequest) (*mcrv1.RevokeAccountResponse, error) {
	sub, err := s.svc.RevokeAccount(ctx, caller(ctx), req.GetUsername(), req.GetSubject())
	if err != nil {
		return nil, toStatus(mcrv1.AdminService_RevokeAccount_FullMethodName, err)
	}
	return &mcrv1.RevokeAccountResponse{Username: req.GetUsername(), Subject: sub}, nil
}

type registryServer struct {
	mcrv1.UnimplementedRegistryServiceServer
	*api
}

func (s *registryServer) ListRepositories(ctx context.Context, req *mcrv1.ListRepositoriesRequest) (*mcrv1.ListRepositoriesResponse, error) {
	l, err := s.svc.ListRepositories(ctx, caller(ctx), adminsvc.RepoQuery{Q: req.GetQ(), Last: req.GetLast(),
		N: int(req.GetN()), Offset: int(req.GetOffset())})
	if err != nil {
		return nil, toStatus(mcrv1.RegistryService_ListRepositories_FullMethodName, err)
	}
	out := &mcrv1.ListRepositoriesResponse{Total: int32(l.Total), N: int32(l.N), Offset: int32(l.Offset), Next: l.Next, //nolint:gosec // bounded by the page limits and the index size
		Repositories: make([]*mcrv1.Repository, 0, len(l.Repositories))}
	for i := range l.Repositories {
		out.Repositories = append(out.Repositories, repoPB(&l.Repositories[i]))
	}
	return out, nil
}

func (s *registryServer) GetRepository(ctx context.Context, req *mcrv1.GetRepositoryRequest) (*mcrv1.GetRepositoryResponse, error) {
	d, err := s.svc.GetRepository(ctx, caller(ctx), req.GetName())
	if err != nil {
		return nil, toStatus(mcrv1.RegistryService_GetRepository_FullMethodName, err)
	}
	return repoDetailPB(d), nil
}

func (s *registryServer) DeleteRepository(ctx context.Context, req *mcrv1.DeleteRepositoryRequest) (*mcrv1.DeleteRepositoryResponse, error) {
	if err := s.svc.DeleteRepository(ctx, caller(ctx), req.GetName()); err != nil {
		return nil, toStatus(mcrv1.RegistryService_DeleteRepository_FullMethodName, err)
	}
	return &mcrv1.DeleteRepositoryResponse{}, nil
}

func (s *registryServer) GarbageCollect(ctx context.Context, req *mcrv1.GarbageCollectRequest) (*mcrv1.GarbageCollectResponse, error) {
	id, err := s.svc.StartGC(ctx, caller(ctx), false, adminsvc.GCOptions{DryRun: req.GetDryRun(),
		RemoveUntagged: req.GetRemoveUntagged(), Grace: req.GetGrace()})
	if err != nil {
		return nil, toStatus(mcrv1.RegistryService_GarbageCollect_FullMethodName, err)
	}
	return &mcrv1.GarbageCollectResponse{Id: id}, nil
}

func (s *registryServer) Reconcile(ctx context.Context, req *mcrv1.ReconcileRequest) (*mcrv1.ReconcileResponse, error) {
	id, err := s.svc.StartGC(ctx, caller(ctx), true, adminsvc.GCOptions{DryRun: req.GetDryRun(), RemoveUntagged: req.GetRemoveUntagged()})
	if err != nil {
		return nil, toStatus(mcrv1.RegistryService_Reconcile_FullMethodName, err)
	}
	return &mcrv1.ReconcileResponse{Id: id}, nil
}

func (s *registryServer) GetGCStatus(ctx context.Context, _ *mcrv1.GetGCStatusRequest) (*mcrv1.GetGCStatusResponse, error) {
	st, err := s.svc.GCStatus(ctx, caller(ctx))
	if err != nil {
		return nil, toStatus(mcrv1.RegistryService_GetGCStatus_FullMethodName, err)
	}
	return &mcrv1.GetGCStatusResponse{Running: st.Running, LastRun: gcRunPB(st.LastRun)}, nil
}

func (s *registryServer) Snapshot(ctx context.Context, _ *mcrv1.SnapshotRequest) (*mcrv1.SnapshotResponse, error) {
	path, err := s.svc.Snapshot(ctx, caller(ctx))
	if err != nil {
		return nil, toStatus(mcrv1.RegistryService_Snapshot_FullMethodName, err)
	}
	return &mcrv1.SnapshotResponse{Path: path}, nil
}

type policyServer struct {
	mcrv1.UnimplementedPolicyServiceServer
	*api
}

func (s *policyServer) ListPolicyRules(ctx context.Context, req *mcrv1.ListPolicyRulesRequest) (*mcrv1.ListPolicyRulesResponse, error) {
	l, err := s.svc.ListRules(ctx, caller(ctx), int(req.GetN()), int(req.GetOffset()))
	if err != nil {
		return nil, toStatus(mcrv1.PolicyService_ListPolicyRules_FullMethodName, err)
	}
	out := &mcrv1.ListPolicyRulesResponse{Total: int32(l.Total), N: int32(l.N), Offset: int32(l.Offset), //nolint:gosec // bounded by the page limits
		Rules: make([]*mcrv1.PolicyRule, 0, len(l.Rules))}
	for i := range l.Rules {
		out.Rules = append(out.Rules, rulePB(&l.Rules[i]))
	}
	return out, nil
}

func (s *policyServer) GetPolicyRule(ctx context.Context, req *mcrv1.GetPolicyRuleRequest) (*mcrv1.GetPolicyRuleResponse, error) {
	r, err := s.svc.GetRule(ctx, caller(ctx), req.GetId())
	if err != nil {
		return nil, toStatus(mcrv1.PolicyService_GetPolicyRule_FullMethodName, err)
	}
	return &mcrv1.GetPolicyRuleResponse{Rule: rulePB(r)}, nil
}

func (s *policyServer) CreatePolicyRule(ctx context.Context, req *mcrv1.CreatePolicyRuleRequest) (*mcrv1.CreatePolicyRuleResponse, error) {
	r, err := s.svc.CreateRule(ctx, caller(ctx), adminsvc.RuleCreate{Priority: int(req.GetPriority()),
		Description: req.GetDescription(), Enabled: req.Enabled, RuleMatch: ruleMatchFromPB(req.GetMatch())})
	if err != nil {
		return nil, toStatus(mcrv1.PolicyService_CreatePolicyRule_FullMethodName, err)
	}
	return &mcrv1.CreatePolicyRuleResponse{Rule: rulePB(r)}, nil
}

func (s *policyServer) UpdatePolicyRule(ctx context.Context, req *mcrv1.UpdatePolicyRuleRequest) (*mcrv1.UpdatePolicyRuleResponse, error) {
	p := adminsvc.RulePatch{Description: req.Description, Enabled: req.Enabled}
	if req.Priority != nil {
		n := int(req.GetPriority())
		p.Priority = &n
	}
	if req.Match != nil {
		m := ruleMatchFromPB(req.GetMatch())
		p.Rule = &m
	}
	r, err := s.svc.PatchRule(ctx, caller(ctx), req.GetId(), p)
	if err != nil {
		return nil, toStatus(mcrv1.PolicyService_UpdatePolicyRule_FullMethodName, err)
	}
	return &mcrv1.UpdatePolicyRuleResponse{Rule: rulePB(r)}, nil
}

func (s *policyServer) DeletePolicyRule(ctx context.Context, req *mcrv1.DeletePolicyRuleRequest) (*mcrv1.DeletePolicyRuleResponse, error) {
	if err := s.svc.DeleteRule(ctx, caller(ctx), req.GetId()); err != nil {
		return nil, toStatus(mcrv1.PolicyService_DeletePolicyRule_FullMethodName, err)
	}
	return &mcrv1.DeletePolicyRuleResponse{}, nil
}

type auditServer struct {
	mcrv1.UnimplementedAuditServiceServer
	*api
}

func (s *auditServer) ListAuditEvents(ctx context.Context, req *mcrv1.ListAuditEventsRequest) (*mcrv1.ListAuditEventsResponse, error) {
	page, err := s.svc.ListAudit(ctx, caller(ctx), adminsvc.AuditQuery{EventType: req.GetEventType(), ActorID: req.GetActorId(),
		Repository: req.GetRepository(), Since: req.GetSince(), Until: req.GetUntil(), Before: req.GetBefore(),
		N: int(req.GetN()), Offset: int(req.GetOffset())})
	if err != nil {
		return nil, toStatus(mcrv1.AuditService_ListAuditEvents_FullMethodName, err)
	}
	out := &mcrv1.ListAuditEventsResponse{Next: page.Next, Events: make([]*mcrv1.AuditEvent, 0, len(page.Events))}
	for i := range page.Events {
		out.Events = append(out.Events, auditEventPB(&page.Events[i]))
	}
	return out, nil
}
