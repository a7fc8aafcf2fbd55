package grpcapi

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"git.wntrmute.dev/kyle/mcr/adminapi/apitypes"
	"git.wntrmute.dev/kyle/mcr/adminsvc"
	mcrv1 "git.wntrmute.dev/kyle/mcr/gen/mcr/v1"
)

// Every RPC has a deliberate access class, the one its /v1 route has: a
// new RPC fails here until it is given one.
func TestEveryMethodHasAnAccessClass(t *testing.T) {
	want := map[string]string{
		"/mcr.v1.AdminService/Health": "public", "/mcr.v1.AdminService/Login": "public", "/mcr.v1.AdminService/Logout": "public",
		"/mcr.v1.AdminService/UnlockAccount": "admin", "/mcr.v1.AdminService/RevokeAccount": "admin",
		"/mcr.v1.RegistryService/ListRepositories": "user", "/mcr.v1.RegistryService/GetRepository": "user",
		"/mcr.v1.RegistryService/DeleteRepository": "admin", "/mcr.v1.RegistryService/GarbageCollect": "admin",
		"/mcr.v1.RegistryService/Reconcile": "admin", "/mcr.v1.RegistryService/GetGCStatus": "admin",
		"/mcr.v1.RegistryService/Snapshot": "admin", "/mcr.v1.RegistryService/ListUploads": "admin",
		"/mcr.v1.RegistryService/PurgeUploads": "admin", "/mcr.v1.RegistryService/ReconcileIndex": "admin",
		"/mcr.v1.PolicyService/ListPolicyRules": "admin", "/mcr.v1.PolicyService/GetPolicyRule": "admin",
		"/mcr.v1.PolicyService/CreatePolicyRule": "admin", "/mcr.v1.PolicyService/UpdatePolicyRule": "admin",
		"/mcr.v1.PolicyService/DeletePolicyRule": "admin",
		"/mcr.v1.AuditService/ListAuditEvents":   "admin",
	}
	seen := 0
	for _, sd := range []grpc.ServiceDesc{mcrv1.AdminService_ServiceDesc, mcrv1.RegistryService_ServiceDesc,
		mcrv1.PolicyService_ServiceDesc, mcrv1.AuditService_ServiceDesc} {
		if len(sd.Streams) != 0 {
			t.Errorf("%s has streams: give them an access class in authStream", sd.ServiceName)
		}
		for _, m := range sd.Methods {
			full := "/" + sd.ServiceName + "/" + m.MethodName
			seen++
			got := "user"
			switch {
			case isPublic(full):
				got = "public"
			case adminMethods[full]:
				got = "admin"
			}
			if w, ok := want[full]; !ok {
				t.Errorf("%s: no access class decided (public, user or admin)", full)
			} else if got != w {
				t.Errorf("%s: access %s, want %s", full, got, w)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("%d methods registered, %d classified", seen, len(want))
	}
	for _, m := range []string{"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"} {
		if !isPublic(m) {
			t.Errorf("%s must need no credentials (probes, grpcurl)", m)
		}
	}
}

func TestEveryServiceCodeMapsToGRPC(t *testing.T) {
	want := map[adminsvc.Code]codes.Code{
		adminsvc.Internal: codes.Internal, adminsvc.InvalidArgument: codes.InvalidArgument,
		adminsvc.Unauthenticated: codes.Unauthenticated, adminsvc.PermissionDenied: codes.PermissionDenied,
		adminsvc.NotFound: codes.NotFound, adminsvc.FailedPrecondition: codes.FailedPrecondition,
		adminsvc.TooLarge: codes.ResourceExhausted, adminsvc.Unimplemented: codes.Unimplemented,
		adminsvc.Unavailable: codes.Unavailable, adminsvc.TooManyRequests: codes.ResourceExhausted,
		adminsvc.StorageFull: codes.ResourceExhausted,
	}
	for c := adminsvc.Internal; c <= adminsvc.StorageFull; c++ {
		got, ok := grpcCode[c]
		if !ok || got != want[c] {
			t.Errorf("service code %d maps to %v (present %v), want %v", c, got, ok, want[c])
		}
	}
}

// RESOURCE_EXHAUSTED carries a detail saying which of its meanings it has.
func TestResourceExhaustedDetails(t *testing.T) {
	for _, c := range []struct {
		err        error
		reason     string
		retryAfter bool
	}{
		{&adminsvc.Error{Code: adminsvc.TooManyRequests, Message: "too many failed sign-ins", RetryAfter: "30"}, "", true},
		{fmt.Errorf("insert rule: %w", syscall.ENOSPC), apitypes.ReasonStorageFull, false},
		{adminsvc.Errorf(adminsvc.TooLarge, "body too large"), "", false},
	} {
		st, _ := status.FromError(toStatus("/mcr.v1.PolicyService/CreatePolicyRule", c.err))
		if st.Code() != codes.ResourceExhausted {
			t.Fatalf("%v: code %v, want ResourceExhausted", c.err, st.Code())
		}
		var reason string
		var retry bool
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *errdetails.ErrorInfo:
				if d.GetDomain() != apitypes.ErrorDomain {
					t.Errorf("%v: ErrorInfo domain %q", c.err, d.GetDomain())
				}
				reason = d.GetReason()
			case *errdetails.RetryInfo:
				retry = d.GetRetryDelay().AsDuration() == 30*time.Second
			}
		}
		if reason != c.reason || retry != c.retryAfter {
			t.Errorf("%v: reason %q retry %v, want %q %v", c.err, reason, retry, c.reason, c.retryAfter)
		}
		if strings.Contains(st.Message(), "ENOSPC") || strings.Contains(st.Message(), "no space") {
			t.Errorf("%v: message shows the cause: %q", c.err, st.Message())
		}
	}
}
