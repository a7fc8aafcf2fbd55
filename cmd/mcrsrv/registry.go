package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"git.wntrmute.dev/kyle/mcr/blobserve"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // upstream driver, selectable
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"   // tests
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"     // "s3": shared blobs for replicas

	registrymw "github.com/distribution/distribution/v3/registry/middleware/registry"
	"github.com/distribution/distribution/v3/registry/storage"
	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	"git.wntrmute.dev/kyle/mcr/authplugin"
	"git.wntrmute.dev/kyle/mcr/blobcache"
	"git.wntrmute.dev/kyle/mcr/config"
	"git.wntrmute.dev/kyle/mcr/notifications"
	_ "git.wntrmute.dev/kyle/mcr/storagedriver" // registers "mcrfs"
	"git.wntrmute.dev/kyle/mcr/storageguard"
)

// descriptorCache is distribution's in-memory blob descriptor cache, made
// resettable so GC can clear it after a sweep (see package blobcache). It is
// installed once per process as a registry option.
var descriptorCache = blobcache.New(10000)

func init() {
	_ = registrymw.RegisterOptions(storage.BlobDescriptorCacheProvider(descriptorCache))
}

// storageParams are the storage driver's parameters, the same for the
// server and the offline commands (reindex, gc).
func storageParams(cfg *config.Config) configuration.Parameters {
	if cfg.Storage.Driver == config.StorageS3 {
		s := cfg.Storage
		p := configuration.Parameters{
			"bucket":         s.S3Bucket,
			"region":         s.S3Region,
			"forcepathstyle": s.S3PathStyle,
			"chunksize":      s.S3ChunkSize,
			"rootdirectory":  s.S3RootDirectory,
		}
		if s.S3Endpoint != "" {
			p["regionendpoint"] = s.S3Endpoint
			p["secure"] = strings.HasPrefix(s.S3Endpoint, "https://")
		}
		if s.S3AccessKey != "" {
			p["accesskey"], p["secretkey"] = s.S3AccessKey, s.S3SecretKey
		}
		return p
	}
	p := configuration.Parameters{"rootdirectory": cfg.Storage.LayersPath}
	if cfg.Storage.Driver == config.StorageMCRFS {
		p["earlywriteback"] = cfg.Storage.EarlyWriteback
		p["directio"] = cfg.Storage.DirectIO
		if n, _ := config.ParseBytes(cfg.Storage.WriteBufferSize); n > 0 {
			p["writebuffersize"] = n
		}
	}
	return p
}

// openStorage creates the configured storage driver outside the server.
func openStorage(ctx context.Context, cfg *config.Config) (driver.StorageDriver, error) {
	d, err := factory.Create(ctx, cfg.Storage.Driver, storageParams(cfg))
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return d, nil
}

// distributionConfig builds distribution's configuration from mcr.toml, so
// operators keep one file.
func distributionConfig(cfg *config.Config, ac *authplugin.Controller, secret string, sink *notifications.Sink, capt *captured, guard *storageguard.Guard) *configuration.Configuration {
	dc := &configuration.Configuration{}
	dc.Version = "0.1"
	dc.Storage = configuration.Storage{
		cfg.Storage.Driver: storageParams(cfg),
		"delete":           configuration.Parameters{"enabled": true},
		// Blobs are served through MCR unless S3 redirects are asked for:
		// clients then need no route to the object store.
		"redirect": configuration.Parameters{"disable": cfg.Storage.Driver != config.StorageS3 || !cfg.Storage.S3Redirect},
		"maintenance": configuration.Parameters{
			"uploadpurging": map[any]any{
				"enabled":  true,
				"age":      cfg.Storage.UploadPurgeAge.String(),
				"interval": "24h",
				"dryrun":   false,
			},
		},
	}
	dc.Auth = configuration.Auth{
		authplugin.ControllerName: configuration.Parameters{
			authplugin.OptController: ac,
		},
	}
	dc.HTTP.Secret = secret
	// Location headers are relative: a client follows them on the host it
	// already reached, and the Host header it sent is never echoed back.
	dc.HTTP.RelativeURLs = true
	dc.Catalog.MaxEntries = cfg.Storage.CatalogMaxEntries
	dc.Tags.MaxTags = cfg.Storage.TagsMaxTags
	dc.Validation.Manifests.URLs.Allow = append([]string(nil), cfg.Storage.ManifestURLsAllow...)
	// distribution's own collectors join ours on /metrics.
	dc.HTTP.Debug.Prometheus.Enabled = cfg.Server.MetricsAddr != ""
	dc.Middleware = map[string][]configuration.Middleware{
		"registry":   registryMiddleware(cfg, capt),
		"repository": {notifications.Middleware(sink, capt)},
		// A full disk answers 507 without the driver's path (issue 17).
		"storage": {guard.Middleware()},
	}
	return dc
}

// registryMiddleware captures the namespace and driver, then (local
// storage only) serves blob content without distribution's 4 MiB buffer
// per request (package blobserve).
func registryMiddleware(cfg *config.Config, capt *captured) []configuration.Middleware {
	mw := []configuration.Middleware{{Name: captureName, Options: configuration.Parameters{"into": capt}}}
	if cfg.Storage.Driver != config.StorageS3 {
		mw = append(mw, blobserve.Middleware())
	}
	return append(mw, configuration.Middleware{Name: captureName, Options: configuration.Parameters{"into": capt, "served": true}})
}

// newApp builds distribution's App; NewApp panics on bad configuration, so
// the panic becomes an error naming the cause.
func newApp(ctx context.Context, dc *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("registry: %v", r)
		}
	}()
	return handlers.NewApp(ctx, dc), nil
}

// storageCheck is the health check's storage probe: the layers directory
// exists, or (S3) the bucket answers a stat of the root — through the
// driver, so credentials and reachability are what is checked. An empty
// bucket has no root yet; "not found" from S3 still means it answered.
func storageCheck(cfg *config.Config, capt *captured) error {
	if cfg.Storage.Driver != config.StorageS3 {
		_, err := os.Stat(filepath.Clean(cfg.Storage.LayersPath))
		return err
	}
	_, d, err := capt.get()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.Stat(ctx, "/"); err != nil {
		var nf driver.PathNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("storage: %w", err)
		}
	}
	return nil
}
