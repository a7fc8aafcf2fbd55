package grpcapi

import (
	"context"
	"encoding/json"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"git.wntrmute.dev/kyle/mcr/gc"
	mcrv1 "git.wntrmute.dev/kyle/mcr/gen/mcr/v1"
)

func uploadsPB(ups []gc.Upload, now time.Time) ([]*mcrv1.Upload, int64) {
	out := make([]*mcrv1.Upload, 0, len(ups))
	var total int64
	for _, u := range ups {
		out = append(out, &mcrv1.Upload{Repository: u.Repository, Id: u.ID, Size: u.Size, Started: ts(u.Started),
			Modified: ts(u.Modified), AgeSeconds: int64(u.Age(now).Seconds())})
		total += u.Size
	}
	return out, total
}

func (s *registryServer) ListUploads(ctx context.Context, _ *mcrv1.ListUploadsRequest) (*mcrv1.ListUploadsResponse, error) {
	ups, err := s.svc.ListUploads(ctx, caller(ctx))
	if err != nil {
		return nil, toStatus(mcrv1.RegistryService_ListUploads_FullMethodName, err)
	}
	pb, total := uploadsPB(ups, time.Now())
	return &mcrv1.ListUploadsResponse{Uploads: pb, TotalBytes: total}, nil
}

func (s *registryServer) PurgeUploads(ctx context.Context, req *mcrv1.PurgeUploadsRequest) (*mcrv1.PurgeUploadsResponse, error) {
	ups, err := s.svc.PurgeUploads(ctx, caller(ctx), req.GetOlderThan())
	if err != nil {
		return nil, toStatus(mcrv1.RegistryService_PurgeUploads_FullMethodName, err)
	}
	pb, freed := uploadsPB(ups, time.Now())
	return &mcrv1.PurgeUploadsResponse{Purged: pb, BytesFreed: freed}, nil
}

func (s *registryServer) ReconcileIndex(ctx context.Context, _ *mcrv1.ReconcileIndexRequest) (*mcrv1.ReconcileIndexResponse, error) {
	res, err := s.svc.ReconcileIndex(ctx, caller(ctx))
	if err != nil {
		return nil, toStatus(mcrv1.RegistryService_ReconcileIndex_FullMethodName, err)
	}
	out := &mcrv1.ReconcileIndexResponse{}
	if b, err := json.Marshal(res); err == nil {
		st := &structpb.Struct{}
		if st.UnmarshalJSON(b) == nil {
			out.Result = st
		}
	}
	return out, nil
}
