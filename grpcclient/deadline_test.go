package grpcclient

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// CallTimeout gives a call without a deadline one, and leaves a caller's
// own deadline alone.
func TestDeadlineInterceptor(t *testing.T) {
	own := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		ctx  func() (context.Context, context.CancelFunc)
		want func(time.Time) bool
		name string
	}{
		{func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			func(d time.Time) bool { return time.Until(d) > 0 && time.Until(d) <= 5*time.Second }, "no deadline: bounded by the timeout"},
		{func() (context.Context, context.CancelFunc) { return context.WithDeadline(context.Background(), own) },
			func(d time.Time) bool { return d.Equal(own) }, "the caller's deadline is kept"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			var got time.Time
			var had bool
			err := deadline(5*time.Second)(ctx, "/mcr.v1.AdminService/Health", nil, nil, nil,
				func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
					got, had = ctx.Deadline()
					return nil
				})
			if err != nil || !had || !tc.want(got) {
				t.Fatalf("deadline %v (set %v), err %v", got, had, err)
			}
		})
	}
}
